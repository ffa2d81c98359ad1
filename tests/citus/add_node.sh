#!/usr/bin/env bash
# A worker added after encml.citus_setup(): Citus copies the replicated catalog to it byte for
# byte from another node, role oids included; encml.citus_resync_node() rewrites the new copy
# with roles by name. Afterwards the catalog is the same on every node, keys decrypt on shards
# moved to the new worker, and grants and revocations hold there for the right role. The worker
# is drained and removed at the end. Runs after tests/citus/sql against scripts/citus-cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${ENCML_CITUS_PORT:-54430}
DIR=${ENCML_CITUS_DIR:-/tmp/pg_encrypt_ml-citus}
NEW_PORT=$((PORT + 3))
as_postgres() { runuser -u postgres -- env -u RUST_BACKTRACE "$@"; }
q() { # SQL on the coordinator (or on port $2); prints the result, or the ERROR line
  as_postgres psql -X -q -At -h 127.0.0.1 -p "${2:-$PORT}" -U postgres -d postgres -c "$1" 2>&1 \
    | grep -v "^NOTICE\|^HINT\|^DETAIL\|^CONTEXT\|^WARNING" || true
}
fail() { echo "FAIL: $*"; exit 1; }

bash scripts/citus-cluster.sh stop-extra worker3
rm -rf "$DIR/worker3"
bash scripts/citus-cluster.sh start-extra worker3 "$NEW_PORT"
trap 'bash scripts/citus-cluster.sh stop-extra worker3' EXIT

q "CREATE ROLE citus_newnode_reader LOGIN" >/dev/null
k=$(q "SELECT encml.create_key('citus-add-node')")
q "SELECT encml.grant_key('$k', 'citus_newnode_reader', 'decrypt')" >/dev/null
q "CREATE TABLE newnode_secrets (id int, v encml.enc_bytea)" >/dev/null
q "SELECT create_distributed_table('newnode_secrets', 'id', shard_count => 6)" >/dev/null
q "INSERT INTO newnode_secrets SELECT i, encml.encrypt('secret ' || i, '$k') FROM generate_series(1, 60) i" >/dev/null
q "GRANT SELECT ON newnode_secrets TO citus_newnode_reader" >/dev/null

q "SELECT citus_add_node('127.0.0.1', $NEW_PORT)" >/dev/null
[ "$(q "SELECT count(*) FROM pg_extension WHERE extname = 'pg_encrypt_ml'" "$NEW_PORT")" = 1 ] \
  || fail "Citus did not create pg_encrypt_ml on the new worker"
# What the resync repairs: once Citus has copied the catalog to the new worker, its grant holds
# another node's role oid (shown, not asserted: the oids could coincide).
q "SELECT replicate_reference_tables('block_writes')" >/dev/null
reader_oid=$(q "SELECT 'citus_newnode_reader'::regrole::oid" "$NEW_PORT")
echo "info: before the resync the new worker's grant names role oid" \
  "$(q "SELECT grantee::oid FROM encml.key_grants WHERE key_id = '$k'" "$NEW_PORT"), its reader role is $reader_oid;" \
  "catalog in sync: $(q "SELECT catalog_in_sync()")"
rows=$(q "SELECT encml.citus_resync_node('127.0.0.1', $NEW_PORT)")
[[ "$rows" =~ ^[0-9]+$ ]] && [ "$rows" -gt 0 ] || fail "resync: $rows"
[ "$(q "SELECT catalog_in_sync()")" = t ] || fail "catalog differs between nodes after the resync"
[ "$(q "SELECT count(*) FROM encml.key_grants WHERE key_id = '$k' AND grantee = $reader_oid" "$NEW_PORT")" = 1 ] \
  || fail "the new worker's grant does not name its own reader role"
echo "ok: citus_resync_node rewrote $rows catalog rows on the new worker; every node agrees"

q "SELECT rebalance_table_shards('newnode_secrets', shard_transfer_mode => 'block_writes')" >/dev/null
moved=$(q "SELECT count(*) FROM citus_shards WHERE table_name = 'newnode_secrets'::regclass AND nodeport = $NEW_PORT")
[ "$moved" -gt 0 ] || fail "no shard moved to the new worker"
as_reader() { q "SET ROLE citus_newnode_reader; $1"; }
[ "$(as_reader "SELECT count(*) FILTER (WHERE encml.decrypt_text(v) = 'secret ' || id) FROM newnode_secrets")" = 60 ] \
  || fail "the reader cannot decrypt every row"
echo "ok: $moved shards on the new worker, the granted role decrypts all 60 rows"
shards=$(q "SELECT string_agg(shardid::text, ',') FROM citus_shards WHERE table_name = 'newnode_secrets'::regclass AND nodeport = $NEW_PORT")
ids=$(q "SELECT string_agg(id::text, ',') FROM newnode_secrets WHERE get_shard_id_for_distribution_column('newnode_secrets', id) IN ($shards)")
[ -n "$ids" ] || fail "no rows on the new worker"
[ "$(as_reader "SELECT count(encml.decrypt_text(v)) FROM newnode_secrets WHERE id IN ($ids)")" -gt 0 ] \
  || fail "the rows on the new worker do not decrypt"
q "SELECT encml.revoke_key('$k', 'citus_newnode_reader', 'decrypt')" >/dev/null
on_new=$(as_reader "SELECT count(encml.decrypt_text(v)) FROM newnode_secrets WHERE id IN ($ids)")
grep -q "ERROR" <<<"$on_new" || fail "revoked grant still decrypts on the new worker: $on_new"
echo "ok: the revocation holds on the new worker"

q "SELECT citus_drain_node('127.0.0.1', $NEW_PORT, shard_transfer_mode => 'block_writes')" >/dev/null
out=$(q "SELECT citus_remove_node('127.0.0.1', $NEW_PORT)")
grep -q "ERROR" <<<"$out" && fail "removing the new worker: $out"
q "DROP TABLE newnode_secrets" >/dev/null
echo "ok: the new worker drained and removed"
