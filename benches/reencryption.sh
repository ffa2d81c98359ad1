#!/usr/bin/env bash
# A background re-encryption job (docs/keys.md "Rotation policies and re-encryption jobs")
# against a concurrent workload: BENCH_REENC_ROWS enc_bytea values (default 10,000,000) are moved
# to a new key version by one job with the default throttle (encml.reencrypt_duty_cycle 0.25),
# while pgbench runs its TPC-B-like read/write script on its own tables from 4 clients.
# Reports the job's rows/s and the workload's tps in BENCH_REENC_WINDOW-second windows during the
# job against the same workload alone (windows before and after the job). Target: during / alone
# at least 0.8. Needs the release build installed (make install) and the cluster of
# scripts/cluster.sh (library preloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
ROWS=${BENCH_REENC_ROWS:-10000000}
WINDOW=${BENCH_REENC_WINDOW:-20}
CLIENTS=4
DB=encml_bench_reenc
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$*"; }
q "CREATE EXTENSION pg_encrypt_ml" >/dev/null
k=$(PGOPTIONS="-c client_min_messages=error" q "SELECT encml.create_key('bench-reencrypt')")
start=$(date +%s.%N)
q "CREATE TABLE vault (id bigint PRIMARY KEY, secret encml.enc_bytea);
   INSERT INTO vault SELECT i, encml.encrypt(md5(i::text) || md5((i + 1)::text), '$k') FROM generate_series(1, $ROWS) i"
q "VACUUM ANALYZE vault"
load_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
pgbench -i -q -s 10 "$DB" >/dev/null 2>&1
tps() { pgbench -n -c "$CLIENTS" -j 2 -T "$WINDOW" "$DB" 2>/dev/null | awk '/^tps/ {printf "%.0f", $3; exit}'; }
alone1=$(tps)
q "SELECT encml.rotate_key('$k')" >/dev/null
job=$(q "SELECT job FROM encml.reencrypt_table('vault', 'secret')")
during=()
while [ "$(q "SELECT state FROM encml.reencryption_jobs WHERE id = $job")" = running ] \
   || [ "$(q "SELECT state FROM encml.reencryption_jobs WHERE id = $job")" = queued ]; do
  during+=("$(tps)")
done
alone2=$(tps)
read -r state rows secs passes <<<"$(q "SELECT state, rows_done, round(extract(epoch FROM finished_at - started_at)::numeric, 1), pass
  FROM encml.reencryption_jobs WHERE id = $job" | tr '|' ' ')"
left=$(q "SELECT count(*) FROM vault WHERE encml.key_version(secret) < 2")
alone=$(awk -v a="$alone1" -v b="$alone2" 'BEGIN {printf "%.0f", (a + b) / 2}')
median=$(printf '%s\n' "${during[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
echo "rows: $ROWS (loaded in ${load_s} s); job: $state, $rows values in $secs s ($(awk -v r="$rows" -v s="$secs" 'BEGIN {printf "%.0f", r / s}') rows/s), $passes passes; left on version 1: $left"
echo "pgbench alone: $alone1 and $alone2 tps; during the job (${#during[@]} windows of $WINDOW s): ${during[*]} tps"
echo "during / alone: $(awk -v d="$median" -v a="$alone" 'BEGIN {printf "%.2f", d / a}') (median window)"
dropdb "$DB"
