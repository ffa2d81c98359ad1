#!/usr/bin/env bash
# Read auditing (audit_enable(..., reads => true), library preloaded) against unaudited reads,
# pgbench -S style: single-row primary-key SELECTs from two identical tables of BENCH_READ_ROWS
# rows (default 100,000), one read-audited, BENCH_READ_TX statements per table (default 100,000)
# from 4 clients in BENCH_READ_CHUNKS alternating chunks; reports tps and the median of the
# per-chunk ratios (goal: 0.8). Each audited read is a chained row inserted in the reader's
# transaction, which then needs a transaction id and a commit record: that, not the check, is
# where the time goes (the same run also measures reads of an unaudited table of a database
# where another table is read-audited, i.e. the cost of the check alone).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
ROWS=${BENCH_READ_ROWS:-100000}
TX=${BENCH_READ_TX:-100000}
CHUNKS=${BENCH_READ_CHUNKS:-4}
CLIENTS=4
DB=encml_bench_reads
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v rows="$ROWS" <<'SQL' >/dev/null
CREATE EXTENSION pg_encrypt_ml;
CREATE TABLE plain_accounts (aid int PRIMARY KEY, abalance int NOT NULL, filler char(84));
INSERT INTO plain_accounts SELECT g, 0, '' FROM generate_series(1, :rows) g;
CREATE TABLE audited_accounts (LIKE plain_accounts INCLUDING ALL);
INSERT INTO audited_accounts SELECT * FROM plain_accounts;
SELECT encml.audit_enable('audited_accounts', reads => true);
VACUUM ANALYZE plain_accounts, audited_accounts;
SQL
[ "$(psql -X -At -d "$DB" -c "SHOW shared_preload_libraries")" = pg_encrypt_ml ] \
  || { echo "read auditing needs the library preloaded" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for t in plain audited; do
  cat > "$dir/$t.sql" <<PGB
\set aid random(1, $ROWS)
SELECT abalance FROM ${t}_accounts WHERE aid = :aid;
PGB
done
before=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM encml.audit_log WHERE operation = 'read'")
source "$(dirname "$0")/pgbench_pair.sh"
pgbench_pair
logged=$(psql -X -At -d "$DB" -c "SELECT count(*) - $before FROM encml.audit_log WHERE operation = 'read'")
seal_ms=$(psql -X -At -d "$DB" -c "\\timing on" -c "SELECT encml.audit_seal()" | awk '/^Time/ {print $2}')
echo
echo "### Read auditing: $TX primary-key SELECTs per table, $CLIENTS clients (pgbench -S style), $CHUNKS alternating chunks"
echo
echo "| table | tps | audited / unaudited |"
echo "|---|---|---|"
echo "| unaudited | $tps_p | |"
echo "| read-audited | $tps_a | median $median (chunks $range) |"
echo
echo "Read events logged: $logged (one per audited statement); sealing them: ${seal_ms} ms."
