#!/usr/bin/env bash
# The cost of the library's hooks on statements that read no protected table
# (docs/benchmarks.md), as a non-superuser role, in a database with the extension installed and
# one DP-only table: two identical clusters, one with shared_preload_libraries = 'pg_encrypt_ml'
# and one without, measured in turn many times.
#
# The measure is server time per statement, without a client round trip: a PL/pgSQL loop
# EXECUTEs `SELECT abalance FROM pgbench_accounts WHERE aid = $1` (parsed, analysed, planned and
# executed every time, so every hook of a query runs) N times and returns microseconds per
# statement (the faster of two loops after a warm-up). Measurements come in triplets (plain,
# preloaded, plain), so slow drift of this shared machine cancels: each triplet gives preloaded / mean(plain) and, as the noise floor (A/A), the second
# plain over the first. The hooks' cost is measurable where the median preloaded/plain ratio lies
# outside the A/A spread. Run after `make install`. Env: TRIPLETS (default 25), N (default 5000).
set -euo pipefail
TRIPLETS=${TRIPLETS:-25}
N=${N:-5000}
BIN=/usr/lib/postgresql/15/bin
cd "$(dirname "$0")/.."

setup() { # dir port preload
  export ENCML_CLUSTER_DIR=$1 ENCML_PORT=$2
  bash scripts/cluster.sh destroy >/dev/null 2>&1 || true
  bash scripts/cluster.sh start >/dev/null
  local pg="runuser -u postgres -- env PGHOST=$1/sock PGPORT=$2"
  $pg "$BIN/pgbench" -i -s 10 -q postgres >/dev/null 2>&1
  $pg psql -X -q -v ON_ERROR_STOP=1 postgres >/dev/null <<'SQL'
CREATE EXTENSION pg_encrypt_ml;
CREATE TABLE protected_t (unit int PRIMARY KEY, v int);
SELECT encml.dp_protect('protected_t', 'unit');
CREATE ROLE bench_analyst LOGIN;
GRANT SELECT ON pgbench_accounts, protected_t TO bench_analyst;
CREATE FUNCTION public.hook_bench(n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE best float8 := 'infinity'; t0 timestamptz; b int;
BEGIN
    FOR round IN 0..2 LOOP
        t0 := clock_timestamp();
        FOR i IN 1..n LOOP
            EXECUTE 'SELECT abalance FROM public.pgbench_accounts WHERE aid = $1' INTO b USING 1 + i % 1000000;
        END LOOP;
        IF round > 0 THEN
            best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
        END IF;
    END LOOP;
    RETURN best;
END $$;
SQL
  # (dp_protect needs the library preloaded: the plain cluster drops it only now.)
  sed -i "s/^shared_preload_libraries = .*/shared_preload_libraries = '$3'/" "$1/data/postgresql.conf"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$1/data" -m fast -w restart >/dev/null
}
A=/tmp/encml-hookbench-a B=/tmp/encml-hookbench-b
setup $A 54471 pg_encrypt_ml
setup $B 54472 ''

measure() { # dir port -> microseconds per statement
  runuser -u postgres -- env PGHOST="$1/sock" PGPORT="$2" psql -X -qAt -U bench_analyst \
    -c "SELECT public.hook_bench($N)" postgres
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

ratios=() aa=() pres=() plains=()
for t in $(seq 1 "$TRIPLETS"); do
  p1=$(measure $B 54472); pre=$(measure $A 54471); p2=$(measure $B 54472)
  ratios+=("$(echo "scale=4; 2 * $pre / ($p1 + $p2)" | bc)")
  aa+=("$(echo "scale=4; $p2 / $p1" | bc)")
  pres+=("$pre") plains+=("$p1" "$p2")
done
printf 'us per statement, median: preloaded %.2f, not preloaded %.2f\n' \
  "$(printf '%s\n' "${pres[@]}" | median)" "$(printf '%s\n' "${plains[@]}" | median)"
printf 'preloaded/plain: median %.3f (quartiles %.3f-%.3f); plain/plain (A/A): median %.3f (quartiles %.3f-%.3f)\n' \
  "$(printf '%s\n' "${ratios[@]}" | median)" \
  "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+3)/4)]}')" \
  "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((3*NR+3)/4)]}')" \
  "$(printf '%s\n' "${aa[@]}" | median)" \
  "$(printf '%s\n' "${aa[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+3)/4)]}')" \
  "$(printf '%s\n' "${aa[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((3*NR+3)/4)]}')"
for d in $A $B; do ENCML_CLUSTER_DIR=$d bash scripts/cluster.sh stop >/dev/null; done
