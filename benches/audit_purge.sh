#!/usr/bin/env bash
# Retention without bloat: BENCH_PURGE_CYCLES cycles (default 12) of BENCH_PURGE_ROWS audited
# row changes (default 100,000), a seal, audit_purge of what the previous cycle wrote and a plain
# VACUUM (what autovacuum does); after each cycle, the log's size (heap and index) against the
# same live rows packed (a fresh copy with its index). Goal: at most 1.2x.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
CYCLES=${BENCH_PURGE_CYCLES:-12}
ROWS=${BENCH_PURGE_ROWS:-100000}
DB=encml_bench_purge
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
q "CREATE EXTENSION pg_encrypt_ml" >/dev/null
q "CREATE TABLE events (id bigserial PRIMARY KEY, account int, email text, amount numeric)"
q "SELECT encml.classify('events', 'email', 'pii')" >/dev/null
q "SELECT encml.audit_enable('events')" >/dev/null
echo
echo "### Audit log size over $CYCLES purge cycles of $ROWS rows"
echo
echo "| cycle | live rows | log size | packed size | ratio |"
echo "|---|---|---|---|---|"
worst=0
for c in $(seq 1 "$CYCLES"); do
  cut=$(q "SELECT clock_timestamp()")
  q "INSERT INTO events (account, email, amount) SELECT g % 1000, 'user' || g || '@example.com', g * 0.01 FROM generate_series(1, $ROWS) g"
  q "SELECT encml.audit_seal()" >/dev/null
  [ "$c" -gt 1 ] && q "SELECT encml.audit_purge('$prev')" >/dev/null
  q "VACUUM encml.audit_log"
  prev=$cut
  live=$(q "SELECT count(*) FROM encml.audit_log")
  # (All partitions: the unsealed rows and each range of sealed ones.)
  size=$(q "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('encml.audit_log')")
  q "DROP TABLE IF EXISTS packed; CREATE TABLE packed AS SELECT * FROM encml.audit_log; CREATE UNIQUE INDEX ON packed (seq)"
  packed=$(q "SELECT pg_total_relation_size('packed')")
  ratio=$(awk -v a="$size" -v b="$packed" 'BEGIN {printf "%.2f", a / b}')
  worst=$(awk -v a="$ratio" -v w="$worst" 'BEGIN {print (a > w) ? a : w}')
  echo "| $c | $live | $((size / 1024)) kB | $((packed / 1024)) kB | $ratio |"
done
echo
echo "Largest ratio: $worst."
dropdb "$DB"
