#!/usr/bin/env bash
# Installs the released install scripts (sql/install, frozen) and the upgrade scripts
# (sql/upgrade) beside the install script cargo pgrx generates for the current version, so that
# `CREATE EXTENSION pg_encrypt_ml VERSION '<released>'` and `ALTER EXTENSION pg_encrypt_ml UPDATE`
# work with the installed library. Run by `make install` and `make install-dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DEST="$("$PG_CONFIG" --sharedir)/extension"
CURRENT=$(bash scripts/version.sh)
SUDO=""; [ -w "$DEST" ] || SUDO="sudo"
for f in sql/install/pg_encrypt_ml--*.sql; do
  v=${f##*--}; v=${v%.sql}
  # The current version's install script is generated from the source; a frozen copy of it
  # means Cargo.toml was not moved on to the next version after a release.
  if [ "$v" = "$CURRENT" ]; then
    echo "sql/install holds a frozen script for $CURRENT, the version being developed: bump Cargo.toml's version" >&2
    exit 1
  fi
done
$SUDO install -m 644 sql/install/pg_encrypt_ml--*.sql sql/upgrade/pg_encrypt_ml--*--*.sql "$DEST/"
