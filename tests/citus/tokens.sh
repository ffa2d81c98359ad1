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

# Issue 27: a token holds only when set inside a transaction block, for the local transaction it
# arrived in, within its lifetime, and while the role is still a member of the tenant.
WORKER=$((PORT + 1))
fresh_token() { # a token the coordinator sends now, as citus_app
  psql_as citus_app "$PORT" postgres <<'SQL' | { grep -o "encml-tenant\.v1\.[A-Za-z0-9._-]*" || true; } | head -1
BEGIN;
SELECT encml.set_tenant('acme', true);
SET citus.log_remote_commands = on;
SELECT count(*) FROM docs;
COMMIT;
SQL
}
out=$(echo "SET encml.tenant = '$token';" | psql_as citus_app "$WORKER" postgres)
grep -q "accepted only from SET LOCAL inside a transaction block" <<<"$out" \
  || fail "a SET outside a transaction block took a token: $out"
echo "ok: a token is refused outside a transaction block"
out=$(psql_as citus_app "$WORKER" postgres <<SQL
BEGIN;
SET encml.tenant = '$token';
SELECT 'in=' || coalesce(encml.current_tenant(), '(none)');
COMMIT;
SELECT 'after=' || coalesce(encml.current_tenant(), '(none)');
SQL
)
grep -q "in=acme" <<<"$out" || fail "the token did not hold in its own transaction: $out"
grep -q "after=(none)" <<<"$out" || fail "a session-wide SET of a token outlived its transaction: $out"
echo "ok: a token holds for the transaction it arrived in, not the next one"

echo "ALTER SYSTEM SET encml.tenant_token_lifetime = 5; SELECT pg_reload_conf();" | psql_as postgres "$WORKER" postgres >/dev/null
sleep 1
short=$(fresh_token)
out=$(psql_as citus_app "$WORKER" postgres <<SQL
BEGIN;
SET LOCAL encml.tenant = '$short';
SELECT 'before=' || coalesce(encml.current_tenant(), '(none)');
SELECT pg_sleep(6);
SELECT 'expired=' || coalesce(encml.current_tenant(), '(none)');
COMMIT;
SQL
)
echo "ALTER SYSTEM RESET encml.tenant_token_lifetime; SELECT pg_reload_conf();" | psql_as postgres "$WORKER" postgres >/dev/null
grep -q "before=acme" <<<"$out" || fail "a fresh token was refused: $out"
grep -q "expired=(none)" <<<"$out" || fail "a token held past its lifetime inside a transaction: $out"
echo "ok: a token stops holding when its lifetime ends, inside the transaction too"

kept=$(fresh_token)
echo "SELECT encml.revoke_tenant('acme', 'citus_app')" | psql_as postgres "$PORT" postgres >/dev/null
out=$(psql_as citus_app "$WORKER" postgres <<SQL
BEGIN;
SET LOCAL encml.tenant = '$kept';
SELECT 'tenant=' || coalesce(encml.current_tenant(), '(none)');
COMMIT;
SQL
)
echo "SELECT encml.grant_tenant('acme', 'citus_app')" | psql_as postgres "$PORT" postgres >/dev/null
grep -q "tenant=(none)" <<<"$out" || fail "a revoked member's token still gave tenant acme: $out"
echo "ok: a revoked member's token is refused at once"
