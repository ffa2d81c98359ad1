-- Benchmark of card-number tokenization: tokenize_pan, detokenize_pan and fpe_encrypt over
-- :tokrows distinct 16-digit card numbers in one backend (no parallel plan), against md5() of
-- the same values as a baseline for a per-row function call. Median of :runs rounds in rotating
-- order; throughput in values a second (target: tokenize_pan >= 200,000/s on one core).
\set QUIET on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
\o /dev/null
SELECT encml.create_key('bench-tokens', 'fpe') AS tk \gset
-- Luhn-valid numbers: 15 digits and their check digit.
CREATE TABLE tok_bench AS
SELECT p || ((10 - (sum_digits % 10)) % 10)::text AS pan
  FROM (SELECT p, (SELECT sum(CASE WHEN n % 2 = 1 THEN (2 * d::int) / 10 + (2 * d::int) % 10 ELSE d::int END)
                     FROM regexp_split_to_table(reverse(p), '') WITH ORDINALITY AS x(d, n)) AS sum_digits
          FROM (SELECT (400000000000000 + i * 7919)::text AS p FROM generate_series(1, :tokrows) i) s) t;
CREATE TABLE tok_tokens AS SELECT encml.tokenize_pan(pan, :'tk') AS token FROM tok_bench;
VACUUM ANALYZE tok_bench, tok_tokens;
CREATE TEMP TABLE tparams AS SELECT :runs::int AS runs, :'tk'::uuid AS k;
CREATE TEMP TABLE ttimings (kind int, ms float8);
CREATE FUNCTION pg_temp.timed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r bigint; k uuid := (SELECT k FROM tparams);
BEGIN
    CASE kind
    WHEN 1 THEN SELECT count(md5(pan)) INTO r FROM tok_bench;
    WHEN 2 THEN SELECT count(encml.tokenize_pan(pan, k)) INTO r FROM tok_bench;
    WHEN 3 THEN SELECT count(encml.detokenize_pan(token, k)) INTO r FROM tok_tokens;
    ELSE        SELECT count(encml.fpe_encrypt(pan, k)) INTO r FROM tok_bench;
    END CASE;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.timed(k) FROM generate_series(1, 4) k;   -- warm-up
    FOR r IN 1 .. (SELECT runs FROM tparams) LOOP
        INSERT INTO ttimings SELECT 1 + (k + r) % 4, pg_temp.timed(1 + (k + r) % 4) FROM generate_series(0, 3) k;
    END LOOP;
END $$;
\o
\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Tokenization:' :tokrows 'card numbers, one backend; median of' :runs 'rounds (target: tokenize_pan >= 200000/s)'
SELECT m.name AS measure, round(t.ms::numeric, 1) AS ms,
       round(:tokrows / (t.ms / 1000))::bigint AS per_second,
       round((t.ms / b.ms)::numeric, 2) AS x_md5
  FROM (VALUES (1, 'md5(pan) (baseline)'), (2, 'tokenize_pan(pan, key)'), (3, 'detokenize_pan(token, key)'),
               (4, 'fpe_encrypt(pan, key)')) AS m(kind, name),
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM ttimings WHERE kind = m.kind) t,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM ttimings WHERE kind = 1) b
 ORDER BY m.kind;
\set QUIET on
\o /dev/null
DROP TABLE tok_bench, tok_tokens;
SELECT encml.destroy_key(:'tk');
\o

-- Masked view vs base table: :tokrows customers, three masked columns, read by a role outside
-- the unmasked roles, through a view with masks computed per value (apply_masking default) and
-- one with masks stored in generated columns (apply_masking(tbl, stored => true)), each against
-- a scan of its own table (target: x_base <= 1.3).
\o /dev/null
SET client_min_messages = warning;
DROP ROLE IF EXISTS encml_bench_masked;
CREATE ROLE encml_bench_masked;
CREATE TABLE mask_bench AS
SELECT i AS id, 'customer' || i || '@example.com' AS email, '+1 (555) ' || lpad((i % 10000000)::text, 7, '0') AS phone,
       '4111 1111 ' || lpad((i % 100000000)::text, 8, '0') AS card
  FROM generate_series(1, :tokrows) i;
CREATE TABLE mask_bench_stored AS SELECT * FROM mask_bench;
SELECT encml.set_masking_rule(t, 'email', 'email'), encml.set_masking_rule(t, 'phone', 'phone'),
       encml.set_masking_rule(t, 'card', 'pan')
  FROM (VALUES ('mask_bench'::regclass), ('mask_bench_stored')) AS v(t);
SELECT encml.apply_masking('mask_bench');
SELECT encml.apply_masking('mask_bench_stored', stored => true);
VACUUM ANALYZE mask_bench, mask_bench_stored;
GRANT SELECT ON mask_bench, mask_bench_masked, mask_bench_stored, mask_bench_stored_masked TO encml_bench_masked;
CREATE TEMP TABLE mtimings (kind int, ms float8);
GRANT ALL ON mtimings TO encml_bench_masked;
SET ROLE encml_bench_masked;
CREATE FUNCTION pg_temp.mtimed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r bigint;
BEGIN
    CASE kind
    WHEN 1 THEN SELECT sum(length(email) + length(phone) + length(card)) INTO r FROM mask_bench;
    WHEN 2 THEN SELECT sum(length(email) + length(phone) + length(card)) INTO r FROM mask_bench_masked;
    WHEN 3 THEN SELECT sum(length(email) + length(phone) + length(card)) INTO r FROM mask_bench_stored;
    ELSE        SELECT sum(length(email) + length(phone) + length(card)) INTO r FROM mask_bench_stored_masked;
    END CASE;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.mtimed(k) FROM generate_series(1, 4) k;   -- warm-up
    FOR r IN 1 .. 21 LOOP
        INSERT INTO mtimings SELECT 1 + (k + r) % 4, pg_temp.mtimed(1 + (k + r) % 4) FROM generate_series(0, 3) k;
    END LOOP;
END $$;
RESET ROLE;
\o
\echo
\echo 'Masked view:' :tokrows 'rows, 3 masked columns (email, phone, card), sum(length(col)) read by a masked role; median of 21 rounds (target: x_base <= 1.3)'
SELECT m.name AS masks, round(b.ms::numeric, 1) AS base_ms, round(v.ms::numeric, 1) AS masked_view_ms,
       round((v.ms / b.ms)::numeric, 2) AS x_base, round((v.ms / p.ms)::numeric, 2) AS x_plain_table
  FROM (VALUES (1, 'computed per value (apply_masking default)'), (3, 'stored (apply_masking stored => true)')) AS m(kind, name),
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM mtimings WHERE kind = m.kind) b,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM mtimings WHERE kind = m.kind + 1) v,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM mtimings WHERE kind = 1) p
 ORDER BY m.kind;
\o /dev/null
DROP VIEW mask_bench_masked, mask_bench_stored_masked;
DROP TABLE mask_bench, mask_bench_stored;
DROP OWNED BY encml_bench_masked;
DROP ROLE encml_bench_masked;
\o
