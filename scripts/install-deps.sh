#!/usr/bin/env bash
# Installs what building and testing pg_encrypt_ml needs on Debian 12, skipping what is present:
# PostgreSQL 15 server, contrib and headers, clang for bindgen, sudo (cargo pgrx test --runas),
# openssl (the TLS test's throw-away CA), pgbouncer (the pooler test; its service is not started),
# softhsm2 and opensc (the PKCS#11 test's token and its pkcs11-tool), clippy and rustfmt, cargo-pgrx 0.18.1, and cargo-pgrx's registration of the system PostgreSQL 15.
set -euo pipefail
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(postgresql-15 postgresql-contrib postgresql-server-dev-15 libclang-dev clang pkg-config sudo python3 openssl pgbouncer softhsm2 opensc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# clippy and rustfmt: make test-architecture runs both (docs/architecture.md).
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  echo "==> rustup component add clippy rustfmt"
  rustup component add clippy rustfmt
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
  echo "==> cargo install cargo-pgrx 0.18.1 (about 5 minutes)"
  cargo install cargo-pgrx --version 0.18.1 --locked
fi

if ! grep -q "^pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
  cargo pgrx init --pg15="$PG_CONFIG" >/dev/null
fi
