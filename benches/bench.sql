-- Benchmark of field encryption against baselines, all in one session on the same data.
-- Each statement runs :runs times; the median is reported. Parallel query is off so every
-- statement uses one core, as the baselines in shared notes were measured.
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION pg_encrypt_ml;
CREATE EXTENSION pgcrypto;
SET max_parallel_workers_per_gather = 0;

CREATE TABLE src AS
SELECT i AS id, substr(md5(i::text) || md5((i + 1)::text), 1, 64) AS v
  FROM generate_series(1, :rows) i;
ANALYZE src;
SELECT encml.create_key('bench') AS k \gset
CREATE TABLE enc AS SELECT id, encml.encrypt(v, :'k') AS c FROM src;
CREATE TABLE pgc AS SELECT id, encrypt(convert_to(v, 'UTF8'), 'k0123456789abcdef0123456789abcde'::bytea, 'aes') AS c FROM src;
VACUUM ANALYZE enc, pgc;

CREATE TEMP TABLE results (name text, rows int, ms float8);
CREATE FUNCTION pg_temp.bench(name text, rows int, sql text, runs int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    times float8[] := '{}';
BEGIN
    FOR i IN 1 .. runs LOOP
        t0 := clock_timestamp();
        EXECUTE 'CREATE TEMP TABLE bench_out AS ' || sql;
        times := times || extract(epoch FROM clock_timestamp() - t0) * 1000;
        DROP TABLE bench_out;
    END LOOP;
    INSERT INTO results
    SELECT name, rows, percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM unnest(times) t;
END
$$;

SELECT pg_temp.bench('plaintext copy (CREATE TABLE AS)', :rows, 'SELECT id, v FROM src', :runs);
SELECT pg_temp.bench('pgcrypto encrypt(data, key, ''aes'') (AES-CBC, no integrity)', :rows,
    $$SELECT id, encrypt(convert_to(v, 'UTF8'), 'k0123456789abcdef0123456789abcde'::bytea, 'aes') FROM src$$, :runs);
SELECT pg_temp.bench('pgcrypto decrypt(data, key, ''aes'')', :rows,
    $$SELECT id, convert_from(decrypt(c, 'k0123456789abcdef0123456789abcde'::bytea, 'aes'), 'UTF8') FROM pgc$$, :runs);
SELECT pg_temp.bench('pgcrypto pgp_sym_encrypt (first ' || :pgp_rows || ' rows)', :pgp_rows,
    format($$SELECT id, pgp_sym_encrypt(v, 'passphrase') FROM src WHERE id <= %s$$, :pgp_rows), 1);
SELECT pg_temp.bench('encml.encrypt(text, key) (AES-256-GCM)', :rows,
    format($$SELECT id, encml.encrypt(v, %L) FROM src$$, :'k'), :runs);
SELECT pg_temp.bench('encml.encrypt(text, key, aad)', :rows,
    format($$SELECT id, encml.encrypt(v, %L, id::text) FROM src$$, :'k'), :runs);
SELECT pg_temp.bench('encml.decrypt_text(value)', :rows, 'SELECT id, encml.decrypt_text(c) FROM enc', :runs);
SELECT pg_temp.bench('encml.decrypt(value) (to bytea)', :rows, 'SELECT id, encml.decrypt(c) FROM enc', :runs);

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Field encryption benchmark:' :rows 'rows of 64-character text, median of' :runs 'runs (pgp_sym_encrypt: one run, extrapolated)'
WITH base AS (SELECT ms / rows AS ms_per_row FROM results WHERE name LIKE 'plaintext%'),
     pgp AS (SELECT ms / rows AS ms_per_row FROM results WHERE name LIKE '%pgp_sym_encrypt%')
SELECT r.name AS statement,
       round(r.ms::numeric, 1) AS ms,
       round((r.ms / r.rows * 1000)::numeric, 2) AS us_per_row,
       round((r.ms / r.rows / base.ms_per_row)::numeric, 2) AS x_plaintext,
       round((pgp.ms_per_row / (r.ms / r.rows))::numeric, 1) AS times_faster_than_pgp
  FROM results r, base, pgp
 ORDER BY r.ctid;
