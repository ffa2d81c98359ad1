#!/usr/bin/env bash
# make bench-citus: Citus (coordinator + 2 workers, scripts/citus-cluster.sh) vs a single node
# (the coordinator's local tables) in one run; see benches/citus.sql. Needs Citus installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${ENCML_CITUS_PORT:-54430}
bash scripts/citus-cluster.sh start >/dev/null
mkdir -p target/bench
runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
  -v crows="${BENCH_CITUS_ROWS:-1000000}" -v clookups="${BENCH_CITUS_LOOKUPS:-2000}" \
  -v cdprows="${BENCH_CITUS_DP_ROWS:-10000000}" -v runs="${BENCH_CITUS_RUNS:-3}" \
  -f benches/citus.sql | tee target/bench/citus.md
