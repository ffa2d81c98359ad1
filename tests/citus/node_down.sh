#!/usr/bin/env bash
# Key changes reach every node or none: with a worker down, rotation, destruction and a master
# key rewrap fail as a whole and leave every node's catalog as it was; once the worker is back
# they succeed everywhere. Runs against scripts/citus-cluster.sh's cluster after tests/citus/sql.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${ENCML_CITUS_PORT:-54430}
DIR=${ENCML_CITUS_DIR:-/tmp/pg_encrypt_ml-citus}
q() { # SQL on the coordinator; prints the result, or the ERROR line
  runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -At -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1" 2>&1 | grep -v "^NOTICE\|^HINT\|^DETAIL\|^CONTEXT\|^WARNING" || true
}
fail() { echo "FAIL: $*"; exit 1; }
versions() { q "SELECT string_agg(result, ',' ORDER BY nodeid) FROM run_command_on_all_nodes(\$\$SELECT count(*) || ':' || count(*) FILTER (WHERE wrapped_key IS NULL) FROM encml.data_key_versions WHERE key_id = '$k'\$\$)"; }

k=$(q "SELECT encml.create_key('citus-node-down-' || md5(random()::text))")
before=$(versions)
[ "$before" = "1:0,1:0,1:0" ] || fail "key not on every node: $before"

runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -m fast -w stop >/dev/null
trap 'runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -l "$DIR/worker2.log" -w start >/dev/null 2>&1 || true' EXIT
out=$(q "SELECT encml.rotate_key('$k')")
grep -q "ERROR" <<<"$out" || fail "rotation succeeded with a worker down: $out"
out=$(q "SELECT encml.destroy_key('$k')")
grep -q "ERROR" <<<"$out" || fail "destruction succeeded with a worker down: $out"
after=$(q "SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) || ':' || count(*) FILTER (WHERE wrapped_key IS NULL) FROM encml.data_key_versions WHERE key_id = '$k'\$\$)")
local_after=$(q "SELECT count(*) || ':' || count(*) FILTER (WHERE wrapped_key IS NULL) FROM encml.data_key_versions WHERE key_id = '$k'")
[ "$local_after" = "1:0" ] || fail "the coordinator kept part of a failed change: $local_after"
grep -q "^1:0" <<<"$after" || fail "worker1 kept part of a failed change: $after"
echo "ok: with a worker down, rotation and destruction fail and change nothing"

runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -l "$DIR/worker2.log" -w start >/dev/null
trap - EXIT
[ "$(q "SELECT encml.rotate_key('$k')")" = "2" ] || fail "rotation after the worker came back"
[ "$(versions)" = "2:0,2:0,2:0" ] || fail "rotation did not reach every node: $(versions)"
q "SELECT encml.destroy_key('$k')" >/dev/null
[ "$(versions)" = "2:2,2:2,2:2" ] || fail "destruction did not reach every node: $(versions)"
[ "$(q "SELECT catalog_in_sync()")" = "t" ] || fail "catalog out of sync"
echo "ok: with every worker up, rotation and destruction reach every node"

# Master-key rotation: the operator puts the new key first in every node's provider (here one
# file shared by the three nodes), then rewraps on the coordinator; all nodes or none.
old_key=$(head -1 "$DIR/master.key")
new_key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
runuser -u postgres -- sh -c "printf '%s\n%s\n' '$new_key' '$old_key' > '$DIR/master.key'"
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -m fast -w stop >/dev/null
trap 'runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -l "$DIR/worker2.log" -w start >/dev/null 2>&1 || true' EXIT
out=$(q "SELECT encml.rotate_master_key()")
grep -q "ERROR" <<<"$out" || fail "master key rotation succeeded with a worker down: $out"
[ "$(q "SELECT count(DISTINCT master_key_fingerprint) FROM encml.data_key_versions WHERE wrapped_key IS NOT NULL")" = "1" ] \
  || fail "a failed master key rotation rewrapped some keys"
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -l "$DIR/worker2.log" -w start >/dev/null
trap - EXIT
n=$(q "SELECT encml.rotate_master_key()")
[ "$n" -gt 0 ] 2>/dev/null || fail "master key rotation: $n"
[ "$(q "SELECT catalog_in_sync()")" = "t" ] || fail "catalog out of sync after the master key rotation"
# The old key leaves the provider: every node decrypts with the rewrapped keys alone.
runuser -u postgres -- sh -c "printf '%s\n' '$new_key' > '$DIR/master.key'"
[ "$(q "SELECT count(encml.decrypt_text(body)) FROM notes")" = "100" ] || fail "decrypt after the master key rotation"
echo "ok: a master key rotation rewraps on every node or on none"
