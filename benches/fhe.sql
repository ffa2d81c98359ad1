-- Benchmark of homomorphic aggregation: :fheupdates encrypted updates of :fhedim parameters each
-- summed by encml.fhe_vector_sum, against the plaintext sum of the same numbers (float8[] rows
-- unnested and summed per position) in the same run. Updates are made with the test-only
-- in-database encryption (same code as the client tool).
\set QUIET on
SET client_min_messages = warning;
SET encml.fhe_client_functions = on;
SELECT public_material AS pk, secret_key AS sk FROM encml.fhe_keygen() \gset
SELECT encml.fhe_register_keyset('bench-fhe-' || md5(random()::text), :'pk') AS ks \gset
CREATE TEMP TABLE fparams AS SELECT :runs::int AS runs;
CREATE TABLE fhe_plain AS
SELECT i, array_agg(round(((random() - 0.5) * 1000)::numeric * 256) / 256 ORDER BY j)::float8[] AS v
  FROM generate_series(1, :fheupdates) i, generate_series(1, :fhedim) j GROUP BY i;
SELECT clock_timestamp() AS t0 \gset
CREATE TABLE fhe_updates AS SELECT i, encml.fhe_encrypt(v, :'ks', 20, 8, :fheupdates) AS u FROM fhe_plain;
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000 / :fheupdates AS encrypt_ms \gset
VACUUM ANALYZE fhe_plain, fhe_updates;
CREATE TEMP TABLE ftimings (kind int, ms float8);
CREATE FUNCTION pg_temp.timed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r float8[]; e encml.fhe_vector;
BEGIN
    IF kind = 1 THEN
        SELECT array_agg(s ORDER BY j) INTO r
          FROM (SELECT j, sum(x) AS s FROM fhe_plain, unnest(v) WITH ORDINALITY AS t(x, j) GROUP BY j) p;
    ELSE
        SELECT encml.fhe_vector_sum(u) INTO e FROM fhe_updates;
    END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.timed(k) FROM generate_series(1, 2) k;   -- warm-up
    FOR r IN 1 .. (SELECT runs FROM fparams) LOOP
        INSERT INTO ftimings SELECT 1 + (k + r) % 2, pg_temp.timed(1 + (k + r) % 2) FROM generate_series(0, 1) k;
    END LOOP;
END $$;
SELECT clock_timestamp() AS t0 \gset
SELECT encml.fhe_decrypt((SELECT encml.fhe_vector_sum(u) FROM fhe_updates), :'sk')
       = (SELECT array_agg(s ORDER BY j) FROM (SELECT j, sum(x) AS s FROM fhe_plain,
            unnest(v) WITH ORDINALITY AS t(x, j) GROUP BY j) p) AS exact \gset
SELECT (SELECT avg(octet_length(u::bytea)) FROM fhe_updates) / :fhedim AS bytes_per_param,
       pg_total_relation_size('fhe_updates') / 1048576.0 AS table_mb \gset
\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Homomorphic aggregation:' :fheupdates 'updates x' :fhedim 'parameters (20-bit fixed point); median of' :runs 'rounds (target: fhe_vector_sum < 3000 ms, <= 32 B/param)'
SELECT round(p.ms::numeric, 1) AS plain_sum_ms, round(f.ms::numeric, 1) AS fhe_vector_sum_ms,
       round((f.ms / p.ms)::numeric, 2) AS x_plain, round(:bytes_per_param::numeric, 1) AS bytes_per_param,
       round(:table_mb::numeric, 1) AS table_mb, round(:encrypt_ms::numeric, 2) AS encrypt_ms_per_update,
       :'exact' AS decrypted_sum_exact
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM ftimings WHERE kind = 1) p,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM ftimings WHERE kind = 2) f;
EXPLAIN (COSTS OFF) SELECT encml.fhe_vector_sum(u) FROM fhe_updates;
\set QUIET on
\o /dev/null
DROP TABLE fhe_plain, fhe_updates;
