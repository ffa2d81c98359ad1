#!/usr/bin/env bash
# Verification of a long audit log: BENCH_VERIFY_ROWS rows (default 10,000,000) written straight
# into encml.audit_log (as a restore would; row changes of a small table's shape), sealed, then a
# full walk (audit_verify_full) and an incremental verification after 10,000 more rows
# (audit_verify, from the checkpoint the full walk left). Reports rows per second. Run alone:
# it writes a few GB.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
N=${BENCH_VERIFY_ROWS:-10000000}
DB=encml_bench_verify
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
ms() { psql -X -At -d "$DB" -c "\\timing on" -c "$1" | awk '/^Time/ {print $2}'; }
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION pg_encrypt_ml" >/dev/null
fill_ms=$(ms "INSERT INTO encml.audit_log (effective_role, kind, operation, table_oid, table_name, new_row)
              SELECT 'bench', 'row', 'INSERT', 16384, 'public.events',
                     jsonb_build_object('id', g, 'account', g % 1000, 'email', 'hmac:' || md5(g::text))
                FROM generate_series(1, $N) g")
seal_ms=$(ms "SELECT encml.audit_seal()")
# What autovacuum does after such a batch (sealing updates every row; the index keeps the old
# versions' entries until then).
vacuum_ms=$(ms "VACUUM ANALYZE encml.audit_log")
size=$(psql -X -At -d "$DB" -c "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree('encml.audit_log')")
full_out=$(psql -X -At -d "$DB" -c "\\timing on" -c "SELECT ok, rows_checked FROM encml.audit_verify_full()")
full_ms=$(echo "$full_out" | awk '/^Time/ {print $2}')
full_rows=$(echo "$full_out" | grep '|' | head -1 | cut -d'|' -f2)
psql -X -q -d "$DB" -c "INSERT INTO encml.audit_log (effective_role, kind, operation, new_row)
                         SELECT 'bench', 'row', 'INSERT', jsonb_build_object('id', g) FROM generate_series(1, 10000) g" >/dev/null
psql -X -q -d "$DB" -c "SELECT encml.audit_seal()" >/dev/null
inc_out=$(psql -X -At -d "$DB" -c "\\timing on" -c "SELECT ok, rows_checked FROM encml.audit_verify()")
inc_ms=$(echo "$inc_out" | awk '/^Time/ {print $2}')
inc_rows=$(echo "$inc_out" | grep '|' | head -1 | cut -d'|' -f2)
echo
echo "### Audit verification of a $N-row log ($size)"
echo
echo "| step | time | rows/s |"
echo "|---|---|---|"
echo "| write $N rows (INSERT ... SELECT) | $(awk -v m="$fill_ms" 'BEGIN {printf "%.1f s", m / 1000}') | |"
echo "| seal them | $(awk -v m="$seal_ms" 'BEGIN {printf "%.1f s", m / 1000}') | $(awk -v m="$seal_ms" -v n="$N" 'BEGIN {printf "%.0f", n / (m / 1000)}') |"
echo "| VACUUM ANALYZE the log | $(awk -v m="$vacuum_ms" 'BEGIN {printf "%.1f s", m / 1000}') | |"
echo "| full walk (audit_verify_full, $full_rows rows) | $(awk -v m="$full_ms" 'BEGIN {printf "%.1f s", m / 1000}') | $(awk -v m="$full_ms" -v n="$full_rows" 'BEGIN {printf "%.0f", n / (m / 1000)}') |"
echo "| incremental (audit_verify after 10,000 more rows: $inc_rows rows) | $(awk -v m="$inc_ms" 'BEGIN {printf "%.0f ms", m}') | |"
dropdb "$DB"
