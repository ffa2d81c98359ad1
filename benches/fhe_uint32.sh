#!/usr/bin/env bash
# fhe_sum over N fhe_uint32 values against tfhe-rs's own Sum over the same ciphertexts in plain
# Rust (crates/fhe/examples/uint32_sum.rs, same machine, same run). Target: x_tfhe <= 1.2.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
N=${BENCH_FHE_SUM_VALUES:-64}
RUNS=${BENCH_FHE_SUM_RUNS:-3}
OUT=$(mktemp -d)
chmod 755 "$OUT"
trap 'rm -rf "$OUT"' EXIT
RUST_MS=$(cargo run -q --release -p encml-fhe --features uint32 --example uint32_sum -- "$OUT" "$N" "$RUNS")
chmod 644 "$OUT"/*
psql -X -q -v ON_ERROR_STOP=1 -d encml_bench -v dir="$OUT" -v n="$N" -v runs="$RUNS" -v rust_ms="$RUST_MS" <<'SQL'
\set QUIET on
SET client_min_messages = warning;
SELECT encml.fhe_register_keyset('bench-u32-' || md5(random()::text), pg_read_binary_file(:'dir' || '/server.key')) AS ks \gset
CREATE TEMP TABLE u32_raw (clear bigint, enc bytea);
SELECT format('COPY u32_raw FROM %L', :'dir' || '/values.tsv') AS copy \gset
:copy;
CREATE TEMP TABLE u32 AS SELECT clear, enc::encml.fhe_uint32 AS enc FROM u32_raw;
CREATE TEMP TABLE u32_params AS SELECT :runs::int AS runs;
CREATE TEMP TABLE u32_timings (ms float8);
SELECT encml.fhe_sum(enc) IS NOT NULL AS warm FROM u32;     -- loads the server key once
DO $$
DECLARE t0 timestamptz; r encml.fhe_uint32;
BEGIN
    FOR i IN 1 .. (SELECT runs FROM u32_params) LOOP
        t0 := clock_timestamp();
        SELECT encml.fhe_sum(enc) INTO r FROM u32;
        INSERT INTO u32_timings VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
END $$;
\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Scalar FHE: fhe_sum over' :n 'fhe_uint32 values vs tfhe-rs Sum over the same ciphertexts in Rust; median of' :runs '(target: x_tfhe <= 1.2)'
SELECT round(:rust_ms::numeric, 1) AS tfhe_sum_ms, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS fhe_sum_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) / :rust_ms)::numeric, 2) AS x_tfhe,
       (SELECT round(avg(octet_length(enc::bytea)) / 1024.0) FROM u32) AS kb_per_value
  FROM u32_timings;
SQL
