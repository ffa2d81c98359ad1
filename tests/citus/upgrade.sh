#!/usr/bin/env bash
# ALTER EXTENSION pg_encrypt_ml UPDATE on Citus (docs/upgrading.md, "Citus"): a cluster set up
# with every released version (citus_setup included) and data in distributed and reference
# tables, updated on the coordinator only. Citus carries the update to the workers; afterwards
# every node's catalog equals that of a cluster installed fresh with the current version (the
# one tests/citus/run.sh captured before its suite), and the old keys, ciphertexts, pushed-down
# searches and shard-level dp aggregates work, as do new keys replicated to every node. Runs at
# the end of tests/citus/run.sh: it replaces the suite's cluster with its own and removes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${ENCML_CITUS_PORT:-54430}
OUT=target/citus-regress
CURRENT=$(bash scripts/version.sh)
q() { # SQL on the coordinator (or on port $2), one value per line
  runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${2:-$PORT}" -U postgres -d postgres -c "$1"
}
fail() { echo "FAIL: $*"; exit 1; }
catalog() { # catalog.sql on the node of port $1
  runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres \
    -f tests/upgrade/catalog.sql
}
trap 'bash scripts/citus-cluster.sh destroy' EXIT

for script in sql/install/pg_encrypt_ml--*.sql; do
  FROM=${script##*--}; FROM=${FROM%.sql}
  echo "== Citus upgrade from $FROM"
  bash scripts/citus-cluster.sh destroy
  ENCML_CITUS_EXTENSION_VERSION=$FROM bash scripts/citus-cluster.sh start >/dev/null
  [ "$(q "SELECT string_agg(result, ',') FROM run_command_on_all_nodes(\$\$SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'\$\$)")" = "$FROM,$FROM,$FROM" ] \
    || fail "the cluster is not at $FROM on every node"
  k=$(q "SELECT encml.create_key('citus-upgrade')")
  d=$(q "SELECT encml.create_key('citus-upgrade-det', 'deterministic')")
  o=$(q "SELECT encml.create_key('citus-upgrade-ore', 'ore')")
  q "SELECT encml.rotate_key('$k')" >/dev/null
  q "CREATE TABLE up_accounts (email encml.det_text, id int, secret encml.enc_bytea, balance encml.ore_int8, amount bigint)" >/dev/null
  q "SELECT create_distributed_table('up_accounts', 'email', shard_count => 8)" >/dev/null
  q "CREATE INDEX ON up_accounts (balance)" >/dev/null
  q "INSERT INTO up_accounts SELECT encml.det_encrypt('u' || i || '@example.org', '$d'), i,
       encml.encrypt('secret ' || i, '$k', i::text), encml.ore_encrypt(i * 10, '$o'), i FROM generate_series(1, 200) i" >/dev/null
  q "CREATE TABLE up_plans (id int PRIMARY KEY, name encml.enc_bytea)" >/dev/null
  q "SELECT create_reference_table('up_plans')" >/dev/null
  q "INSERT INTO up_plans SELECT i, encml.encrypt('plan ' || i, '$k') FROM generate_series(1, 5) i" >/dev/null

  q "ALTER EXTENSION pg_encrypt_ml UPDATE" >/dev/null
  [ "$(q "SELECT string_agg(result, ',') FROM run_command_on_all_nodes(\$\$SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'\$\$)")" = "$CURRENT,$CURRENT,$CURRENT" ] \
    || fail "ALTER EXTENSION UPDATE on the coordinator did not reach $CURRENT on every node"
  echo "ok: $FROM -> $CURRENT on the coordinator and both workers"
  for node in coordinator worker1 worker2; do
    p=$PORT; [ $node = worker1 ] && p=$((PORT + 1)); [ $node = worker2 ] && p=$((PORT + 2))
    catalog "$p" > "$OUT/upgraded-$node.catalog"
    diff -u "$OUT/fresh-$node.catalog" "$OUT/upgraded-$node.catalog" | head -n 60 \
      && cmp -s "$OUT/fresh-$node.catalog" "$OUT/upgraded-$node.catalog" \
      || fail "the $node's upgraded catalog differs from a fresh install"
  done
  echo "ok: every node's catalog equals a fresh install"
  [ "$(q "SELECT count(*) FILTER (WHERE encml.decrypt_text(secret, id::text) = 'secret ' || id) FROM up_accounts")" = 200 ] \
    || fail "values on the shards do not decrypt after the upgrade"
  [ "$(q "SELECT id FROM up_accounts WHERE email = encml.det_encrypt('u42@example.org', '$d')")" = 42 ] \
    || fail "the router lookup on the det_text distribution column fails after the upgrade"
  [ "$(q "SELECT count(*) FROM up_accounts WHERE balance BETWEEN encml.ore_encrypt(100, '$o') AND encml.ore_encrypt(199, '$o')")" = 10 ] \
    || fail "the ORE range on the shards fails after the upgrade"
  [ "$(q "SELECT string_agg(encml.decrypt_text(name), ',' ORDER BY id) FROM up_plans")" = "plan 1,plan 2,plan 3,plan 4,plan 5" ] \
    || fail "the reference table does not decrypt after the upgrade"
  [ "$(q "SELECT encml.dp_sum(amount, 0, 200, 1.0) IS NOT NULL FROM up_accounts")" = t ] \
    || fail "dp_sum over the shards fails after the upgrade"
  k2=$(q "SELECT encml.create_key('citus-after-upgrade')")
  [ "$(q "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM encml.data_keys WHERE id = '$k2'\$\$)")" = "1,1" ] \
    || fail "a key created after the upgrade is not on every worker"
  q "INSERT INTO up_accounts SELECT encml.det_encrypt('u' || i || '@example.org', '$d'), i,
       encml.encrypt('secret ' || i, '$k2', i::text), encml.ore_encrypt(i * 10, '$o'), i FROM generate_series(201, 250) i" >/dev/null
  [ "$(q "SELECT count(*) FILTER (WHERE encml.decrypt_text(secret, id::text) = 'secret ' || id) FROM up_accounts")" = 250 ] \
    || fail "values written after the upgrade do not decrypt on the shards"
  echo "ok: old keys, ciphertexts, pushed-down searches, reference tables, dp_sum and new keys work on every node"
done
echo "==> Citus upgrade tests passed"
