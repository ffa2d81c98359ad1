#!/usr/bin/env bash
# A throw-away SoftHSM2 token for the PKCS#11 test and benchmark, owned by the postgres OS user:
#   softhsm-token.sh init DIR LABEL PIN     token directory and DIR/softhsm2.conf (export it as
#                                           SOFTHSM2_CONF, also in the server's environment), and
#                                           DIR/pin holding PIN (postgres, mode 0600)
#   softhsm-token.sh keygen LABEL PIN KEY   a sensitive AES-256 key labelled KEY in token LABEL
#                                           (SOFTHSM2_CONF set)
set -euo pipefail
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
case "${1:-}" in
  init)
    dir=$2 label=$3 pin=$4
    as_postgres mkdir -p "$dir/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" > "$dir/softhsm2.conf"
    printf '%s\n' "$pin" > "$dir/pin"
    chown postgres:postgres "$dir/softhsm2.conf" "$dir/pin"; chmod 600 "$dir/pin"
    as_postgres env SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label "$label" \
      --pin "$pin" --so-pin 87654321 >/dev/null
    ;;
  keygen)
    label=$2 pin=$3 key=$4
    as_postgres env SOFTHSM2_CONF="${SOFTHSM2_CONF:?}" pkcs11-tool --module "$MODULE" --token-label "$label" \
      --login --pin "$pin" --keygen --key-type AES:32 --sensitive --label "$key" >/dev/null 2>&1
    ;;
  *) echo "usage: $0 init DIR LABEL PIN | keygen LABEL PIN KEY" >&2; exit 2 ;;
esac
