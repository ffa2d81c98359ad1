#!/usr/bin/env bash
# Tenant tokens on the wire: a real token (captured with citus.log_remote_commands, as an
# eavesdropper on the coordinator's logs would) is refused for another role and in another
# database, on a worker and on the coordinator. Runs against scripts/citus-cluster.sh's cluster
# after tests/citus/sql (roles citus_app, member of tenant acme, and table docs exist).
set -euo pipefail
PORT=${ENCML_CITUS_PORT:-54430}
psql_as() { # role port db, SQL on standard input
  runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -h 127.0.0.1 -p "$2" -U "$1" -d "$3" -v ON_ERROR_STOP=0 2>&1
}
fail() { echo "FAIL: $*"; exit 1; }

echo "SELECT encml.grant_tenant('acme', 'citus_app')" | psql_as postgres "$PORT" postgres >/dev/null
token=$(psql_as citus_app "$PORT" postgres <<'SQL' | { grep -o "encml-tenant\.v1\.[A-Za-z0-9._-]*" || true; } | head -1
BEGIN;
SELECT encml.set_tenant('acme', true);
SET citus.log_remote_commands = on;
SELECT count(*) FROM docs;
COMMIT;
SQL
)
[ -n "$token" ] || fail "no token seen in the remote commands"
echo "ok: the coordinator sent a tenant token to the workers"

echo "CREATE ROLE citus_intruder LOGIN; GRANT SELECT ON docs TO citus_intruder;" | psql_as postgres "$PORT" postgres >/dev/null
for port in $((PORT + 1)) "$PORT"; do
  out=$(psql_as citus_intruder "$port" postgres <<SQL
BEGIN;
SET LOCAL encml.tenant = '$token';
SELECT 'tenant=' || coalesce(encml.current_tenant(), '(none)');
COMMIT;
SQL
)
  grep -q "invalid tenant token: tenant token does not verify for this role and database" <<<"$out" \
    || fail "another role replayed the token on port $port: $out"
  ! grep -q "tenant=acme" <<<"$out" || fail "another role got tenant acme on port $port"
  echo "ok: the token is refused for another role (port $port)"
done

echo "CREATE DATABASE other" | psql_as postgres $((PORT + 1)) postgres >/dev/null
echo "CREATE EXTENSION pg_encrypt_ml" | psql_as postgres $((PORT + 1)) other >/dev/null
out=$(psql_as citus_app $((PORT + 1)) other <<SQL
BEGIN;
SET LOCAL encml.tenant = '$token';
COMMIT;
SQL
)
grep -q "does not verify for this role and database" <<<"$out" || fail "token accepted in another database: $out"
echo "ok: the token is refused in another database"
