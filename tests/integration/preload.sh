#!/usr/bin/env bash
# With shared_preload_libraries the library is loaded in the postmaster and inherited by every
# backend; nonces must still never repeat across concurrent backends (the generator is seeded per
# process after fork). Restarts the cluster with the library preloaded, then restores it.
source "$(dirname "$0")/lib.sh"
DB=encml_it_preload
restore() {
  psql -X -q -d postgres -c "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null || true
  restart_cluster || true
}
trap restore EXIT
psql -X -q -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_encrypt_ml'" >/dev/null
restart_cluster
assert_eq "library preloaded" "pg_encrypt_ml" "$(q postgres "SHOW shared_preload_libraries")"
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml"
K=$(q "$DB" "SELECT encml.create_key('preload')")
q "$DB" "CREATE TABLE nonces (session int, nonce bytea)"
for s in 1 2 3 4; do
  q "$DB" "INSERT INTO nonces SELECT $s, substring(encml.encrypt('same', '$K')::bytea FROM 25 FOR 12) FROM generate_series(1, 25000)" &
done
wait
assert_eq "100000 nonces from 4 preloaded backends, all distinct" "100000|100000" \
  "$(q "$DB" "SELECT count(*) || '|' || count(DISTINCT nonce) FROM nonces")"
# The first nonce of every backend differs (a shared inherited seed would repeat it).
assert_eq "first nonces of 20 fresh backends are distinct" "20" \
  "$(for i in $(seq 1 20); do q "$DB" "SELECT encode(substring(encml.encrypt('x', '$K')::bytea FROM 25 FOR 12), 'hex')"; done | sort -u | wc -l | tr -d ' ')"
dropdb "$DB"

# pgrx puts a captured Rust backtrace into the DETAIL of an ERROR raised from Rust when the
# server's environment has RUST_BACKTRACE set (an attacker's find: source paths in every error
# through the hooks). The library turns capture off in _PG_init.
as_postgres env RUST_BACKTRACE=1 /usr/lib/postgresql/15/bin/pg_ctl -D "$DATA" -m fast -w restart -l "$CLUSTER_DIR/server.log" >/dev/null
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml"
q "$DB" "CREATE TABLE bt (a int)"
# (An error Postgres raises inside the extension's utility hook, and one the extension raises.)
out=$(psql -X -d "$DB" -v VERBOSITY=verbose -c "ALTER TABLE bt DETACH PARTITION bt" 2>&1 || true)
out="$out
$(psql -X -d "$DB" -v VERBOSITY=verbose -c "SELECT encml.classify('bt', 'nonexistent', 'pii')" 2>&1 || true)"
assert_eq "errors through the hooks, server started with RUST_BACKTRACE=1: no backtrace" "0" \
  "$(printf '%s\n' "$out" | grep -c 'pgrx\|pg_encrypt_ml::\|LocalKey' || true)"
assert_eq "the errors themselves are reported" "2" "$(printf '%s\n' "$out" | grep -c '^ERROR' || true)"
dropdb "$DB"
