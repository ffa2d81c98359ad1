#!/usr/bin/env bash
# make bench: times encml.encrypt/decrypt against plaintext and pgcrypto baselines, the
# searchable types against plaintext twins, tenant isolation against a literal tenant filter and
# the zero-trust checks on decryption against their trivial case,
# in one run; prints tables with ratios (also saved to
# target/bench/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
ROWS=${BENCH_ROWS:-200000}
PGP_ROWS=${BENCH_PGP_ROWS:-20000}
RUNS=${BENCH_RUNS:-11}
mkdir -p target/bench
dropdb --if-exists encml_bench 2>/dev/null && createdb encml_bench
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v rows="$ROWS" -v pgp_rows="$PGP_ROWS" -v runs="$RUNS" -f benches/bench.sql | tee target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v srows="${BENCH_SEARCH_ROWS:-1000000}" -v lookups="${BENCH_LOOKUPS:-1000}" -v ranges="${BENCH_RANGES:-100}" \
  -f benches/search.sql | tee -a target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v trows="${BENCH_TENANT_ROWS:-100000}" -v tlookups="${BENCH_TENANT_LOOKUPS:-2000}" \
  -v tscans="${BENCH_TENANT_SCANS:-50}" -v runs="$RUNS" \
  -f benches/tenancy.sql | tee -a target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v dprows="${BENCH_DP_ROWS:-10000000}" -v runs="${BENCH_DP_RUNS:-7}" \
  -f benches/dp.sql | tee -a target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v tokrows="${BENCH_TOKEN_ROWS:-200000}" -v runs="${BENCH_TOKEN_RUNS:-5}" \
  -f benches/tokenize.sql | tee -a target/bench/results.md
bash benches/audit.sh | tee -a target/bench/results.md
bash benches/audit_reads.sh | tee -a target/bench/results.md
bash benches/audit_purge.sh | tee -a target/bench/results.md
# (benches/audit_verify.sh writes a 10M-row log, about 5 GB: run it on its own.)
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v fheupdates="${BENCH_FHE_UPDATES:-1000}" -v fhedim="${BENCH_FHE_DIM:-1000}" -v runs="${BENCH_FHE_RUNS:-7}" \
  -f benches/fhe.sql | tee -a target/bench/results.md
bash benches/fhe_uint32.sh | tee -a target/bench/results.md
bash benches/fhe_proven.sh | tee -a target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v zrows="${BENCH_ZT_ROWS:-200000}" -v runs="$RUNS" \
  -f benches/zero_trust.sql | tee -a target/bench/results.md
bash benches/ml.sh | tee -a target/bench/results.md
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench \
  -v grows="${BENCH_GDPR_ROWS:-1000000}" -v gusers="${BENCH_GDPR_SUBJECTS:-10000}" -v runs="${BENCH_GDPR_RUNS:-7}" \
  -f benches/gdpr.sql | tee -a target/bench/results.md
