-- Issue 27: work whose length the caller controls checks for interrupts, so statement_timeout,
-- pg_cancel_backend and pg_terminate_backend stop it. One test per family whose single call can
-- run long (FF1 is bounded instead: 4,096 characters take about 20 ms, tokenization.sql; fhe_sum
-- runs on a helper thread, fhe_uint32.sql; a tensor is one AES-GCM call over at most 1 GB).
-- Each would run well past a second without the checks (times measured on the dev build); with
-- them a 200 ms timeout ends it within 0.6 s.
SELECT encml.create_key('timeouts') AS k \gset

-- A jsonb wildcard over 600,000 values: about 1.6 s to encrypt them all.
CREATE TEMP TABLE big_doc AS SELECT jsonb_agg(i) AS d FROM generate_series(1, 600000) i;
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '200ms';
SELECT length(encml.encrypt_jsonb(d, :'k', ARRAY['{*}'])::text) FROM big_doc;
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '0.6 s' AS jsonb_walk_stopped_within_a_second;

-- jsonb_is_encrypted over 200,000 encrypted values, each of 100 wildcard paths walking them all
-- (attacker round 1: 1,000 paths ran 39 s past a 2 s timeout).
CREATE TEMP TABLE sealed_doc AS
SELECT jsonb_agg(e) AS d FROM (SELECT encml.encrypt_jsonb('{"x": 1}', :'k', ARRAY['x'])->'x' AS e) s,
       generate_series(1, 200000);
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '200ms';
SELECT encml.jsonb_is_encrypted(d, (SELECT array_agg('{*}'::text) FROM generate_series(1, 100))) FROM sealed_doc;
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '0.6 s' AS check_stopped_within_a_second;

-- A 128 MB large object: about 2.3 s to encrypt, chunk by chunk.
SELECT lo_from_bytea(0, convert_to(repeat('x', 128 * 1024 * 1024), 'UTF8')) AS lo \gset
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '200ms';
SELECT encml.lo_encrypt(:lo, :'k') IS NOT NULL;
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '0.6 s' AS lo_encrypt_stopped_within_a_second;
SELECT lo_unlink(:lo);
DROP TABLE big_doc, sealed_doc;
