#!/usr/bin/env bash
# pgbench -S against a cluster with pg_encrypt_ml preloaded and without, alternating, as a
# non-superuser role in a database with one DP-only table: the cost of the library's hooks on
# queries that read no protected table (docs/benchmarks.md). Run after `make install`.
set -euo pipefail
export ENCML_CLUSTER_DIR=/tmp/encml-hookbench ENCML_PORT=54470
cd "$(dirname "$0")/.."
bash scripts/cluster.sh destroy >/dev/null 2>&1 || true
bash scripts/cluster.sh start >/dev/null
CONF=/tmp/encml-hookbench/data/postgresql.conf
PG="runuser -u postgres -- env PGHOST=/tmp/encml-hookbench/sock PGPORT=54470"
$PG /usr/lib/postgresql/15/bin/pgbench -i -s 10 -q postgres >/dev/null 2>&1
$PG psql -X -qc "CREATE EXTENSION pg_encrypt_ml; CREATE TABLE protected_t (unit int PRIMARY KEY, v int); SELECT encml.dp_protect('protected_t', 'unit'); CREATE ROLE bench_analyst LOGIN; GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, protected_t TO bench_analyst;" postgres
for round in 1 2 3; do
  for mode in preloaded plain; do
    if [ $mode = plain ]; then sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = ''/" $CONF
    else sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = 'pg_encrypt_ml'/" $CONF; fi
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/encml-hookbench/data -m fast -w restart >/dev/null
    tps=$($PG /usr/lib/postgresql/15/bin/pgbench -S -n -c 2 -j 2 -T 20 -U bench_analyst postgres 2>/dev/null | awk '/^tps/ {print $3}')
    echo "round $round $mode $tps"
    [ $mode = preloaded ] && preloaded_tps=$tps
  done
  echo "round $round preloaded/plain $(echo "scale=2; $preloaded_tps / $tps" | bc)"
done
bash scripts/cluster.sh stop
