#!/usr/bin/env bash
# The master-key file provider against a PKCS#11 token (SoftHSM2), on the same data in the same
# throw-away cluster (issue 30): benches/master_key_providers.sh [KEYS] [ROUNDS].
#
# KEYS (3,000) per-subject keys (`subject_key`), one value each, read in a random order:
# - cold: a new session's first decrypt (one unwrap; the token's first use also loads the module,
#   logs in and finds the keys);
# - three passes over the values in one statement, every key fitting the cache
#   (`encml.key_cache_size` = KEYS + 1000): each key unwrapped once;
# - the same with `encml.key_cache_size` = KEYS / 3: the cache fills and is emptied again and
#   again, so most reads unwrap.
# Each figure is the median of ROUNDS (7) new sessions; file first, then the same data moved under
# the token with rotate_master_key(). Prints a table; the ratio is token / file.
set -euo pipefail
KEYS=${1:-3000}; ROUNDS=${2:-7}
cd "$(dirname "$0")/.."
PGBIN=/usr/lib/postgresql/15/bin
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
WORK=$(mktemp -d /tmp/encml-mkbench.XXXXXX)
chown postgres:postgres "$WORK"; chmod 700 "$WORK"
DATA=$WORK/data
export PGHOST=$WORK PGPORT=${BENCH_PORT:-54475} PGUSER=postgres PGOPTIONS="-c client_min_messages=error"
as() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
cleanup() { as "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

bash scripts/softhsm-token.sh init "$WORK" bench 1111
export SOFTHSM2_CONF=$WORK/softhsm2.conf
bash scripts/softhsm-token.sh keygen bench 1111 mk
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$WORK/master.keys"
chown postgres:postgres "$WORK/master.keys"; chmod 600 "$WORK/master.keys"
as "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$DATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'pg_encrypt_ml'
encml.master_key_file = '$WORK/master.keys'
CONF
as env SOFTHSM2_CONF="$SOFTHSM2_CONF" "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start >/dev/null
psql -X -q -d postgres -c "CREATE DATABASE bench"
q() { psql -X -q -v ON_ERROR_STOP=1 -At -d bench -c "$*"; }
q "CREATE EXTENSION pg_encrypt_ml" >/dev/null
q "CREATE TABLE t AS SELECT i, encml.encrypt('value ' || i, encml.subject_key('subject-' || i)) AS v
     FROM generate_series(1, $KEYS) i ORDER BY random()" >/dev/null

# Three passes over the values in one statement: with every key cached, keys are unwrapped in the
# first pass only; with a third of them, a full cache is emptied and most reads unwrap.
PASSES="SELECT count(encml.decrypt_text(v)) FROM generate_series(1, 3) g CROSS JOIN LATERAL (SELECT v FROM t OFFSET 0) s"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { # timed CACHE_SIZE SQL: the median over ROUNDS new sessions of SQL's time in ms
  for _ in $(seq 1 "$ROUNDS"); do
    psql -X -q -At -d bench -c "SET encml.key_cache_size = $1" -c "\\timing on" -c "$2" \
      | sed -n 's/^Time: \([0-9.]*\) ms.*$/\1/p' | tail -1
  done | median
}
measure() {
  local cold all over
  cold=$(timed 100000 "SELECT encml.decrypt_text(v) FROM t WHERE i = 7")
  all=$(timed $((KEYS + 1000)) "$PASSES")
  over=$(timed $((KEYS / 3)) "$PASSES")
  echo "$cold $all $over"
}
read -r f_cold f_all f_over <<< "$(measure)"
# The same data under the token: the file's key becomes a previous key, then is dropped.
as sed -i "/^encml.master_key_file/d" "$DATA/postgresql.conf"
cat >> "$DATA/postgresql.conf" <<CONF
encml.master_key_pkcs11_module = '$MODULE'
encml.master_key_pkcs11_token = 'bench'
encml.master_key_pkcs11_keys = 'mk'
encml.master_key_pkcs11_pin_file = '$WORK/pin'
encml.master_key_file = '$WORK/master.keys'
CONF
q "SELECT pg_reload_conf()" >/dev/null; sleep 0.5
q "SELECT encml.rotate_master_key()" >/dev/null
as sed -i "/^encml.master_key_file/d" "$DATA/postgresql.conf"
q "SELECT pg_reload_conf()" >/dev/null; sleep 0.5
read -r t_cold t_all t_over <<< "$(measure)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per_key() { awk -v ms="$1" -v n="$KEYS" 'BEGIN { printf "%.1f", ms * 1000 / n }'; }
printf '| workload (%s keys, median of %s sessions) | file | PKCS#11 (SoftHSM2) | token / file |\n|---|---|---|---|\n' "$KEYS" "$ROUNDS"
printf '| a new session'"'"'s first decrypt | %s ms | %s ms | %s |\n' "$f_cold" "$t_cold" "$(ratio "$t_cold" "$f_cold")"
printf '| 3 passes over %s values, every key cached after its first use | %s ms | %s ms | %s |\n' "$KEYS" \
  "$f_all" "$t_all" "$(ratio "$t_all" "$f_all")"
printf '| 3 passes over %s values, key_cache_size = %s | %s ms | %s ms | %s |\n' "$KEYS" "$((KEYS / 3))" \
  "$f_over" "$t_over" "$(ratio "$t_over" "$f_over")"
