#!/usr/bin/env bash
# Audited vs unaudited single-row INSERT throughput with pgbench: BENCH_AUDIT_TX inserts (default
# 100,000) per table from 4 clients, into two identical tables of which one is audited, in
# BENCH_AUDIT_CHUNKS alternating chunks (so the shared machine's slow moments hit both alike);
# reports total tps and the median of the per-chunk ratios. Target: audited at least 70% of
# unaudited. Also a bulk INSERT of 100,000 rows and the cost of sealing them.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
TX=${BENCH_AUDIT_TX:-100000}
CHUNKS=${BENCH_AUDIT_CHUNKS:-4}
CLIENTS=4
DB=encml_bench_audit
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL' >/dev/null
CREATE EXTENSION pg_encrypt_ml;
-- One sequence and the same default expression for both tables: the tables differ only in
-- being audited (an earlier version gave the audited table a default that looked the sequence
-- up by name on every row, about 5% of its CPU in parsing).
CREATE SEQUENCE event_ids;
CREATE TABLE plain_events (id bigint PRIMARY KEY DEFAULT nextval('event_ids'), account int NOT NULL, email text, amount numeric, note text);
CREATE TABLE audited_events (LIKE plain_events INCLUDING ALL);
SELECT encml.classify('audited_events', 'email', 'pii');
SELECT encml.audit_enable('audited_events');
SQL
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for t in plain audited; do
  cat > "$dir/$t.sql" <<PGB
\set a random(1, 100000)
INSERT INTO ${t}_events (account, email, amount, note) VALUES (:a, 'user' || :a || '@example.com', :a * 0.01, 'payment');
PGB
done
source "$(dirname "$0")/pgbench_pair.sh"
pgbench_pair
seal_ms=$(psql -X -At -d "$DB" -c "\\timing on" -c "SELECT encml.audit_seal()" | awk '/^Time/ {print $2}')
ok=$(psql -X -At -d "$DB" -c "SELECT ok FROM encml.audit_verify()")
bulk() {
  psql -X -At -d "$DB" -c "\\timing on" \
    -c "INSERT INTO $1 (account, email, amount, note) SELECT g, 'user' || g || '@example.com', g * 0.01, 'payment' FROM generate_series(1, 100000) g" \
    | awk '/^Time/ {print $2}'
}
bulk_plain=$(bulk plain_events); bulk_audited=$(bulk audited_events)
seal_bulk_ms=$(psql -X -At -d "$DB" -c "\\timing on" -c "SELECT encml.audit_seal()" | awk '/^Time/ {print $2}')
echo
echo "### Audit log: $TX single-row INSERTs per table, $CLIENTS clients (pgbench), $CHUNKS alternating chunks"
echo
echo "| table | tps | audited / unaudited |"
echo "|---|---|---|"
echo "| unaudited | $tps_p | |"
echo "| audited (email redacted) | $tps_a | median $median (chunks $range) |"
echo
echo "Sealing the $TX rows: ${seal_ms} ms; chain verifies: $ok."
echo "Bulk INSERT of 100,000 rows: ${bulk_plain} ms unaudited, ${bulk_audited} ms audited ($(awk -v a="$bulk_audited" -v p="$bulk_plain" 'BEGIN {printf "%.1f", (a - p) * 1000 / 100000}') us per audited row); sealing them: ${seal_bulk_ms} ms."
