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
per_chunk=$((TX / CHUNKS / CLIENTS))
run() {  # tps of one chunk on table $1 (excluding connection setup)
  pgbench -n -c $CLIENTS -j 2 -t $per_chunk -f "$dir/$1.sql" "$DB" 2>/dev/null | awk '/^tps/ {print $3; exit}'
}
before=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM encml.audit_log WHERE operation = 'read'")
ratios=(); sum_p=0; sum_a=0
for c in $(seq 1 "$CHUNKS"); do
  p=$(run plain); a=$(run audited)
  ratios+=("$(awk -v a="$a" -v p="$p" 'BEGIN {print a / p}')")
  sum_p=$(awk -v s="$sum_p" -v x="$p" 'BEGIN {print s + 1 / x}'); sum_a=$(awk -v s="$sum_a" -v x="$a" 'BEGIN {print s + 1 / x}')
done
logged=$(psql -X -At -d "$DB" -c "SELECT count(*) - $before FROM encml.audit_log WHERE operation = 'read'")
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
range=$(printf '%s\n' "${ratios[@]}" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}')
tps_p=$(awk -v s="$sum_p" -v n="$CHUNKS" 'BEGIN {printf "%.0f", n / s}')
tps_a=$(awk -v s="$sum_a" -v n="$CHUNKS" 'BEGIN {printf "%.0f", n / s}')
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
