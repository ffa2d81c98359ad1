-- Benchmark of field encryption against baselines, all in one session on the same data.
-- Each statement runs :runs times, in interleaved rounds; the median is reported. Parallel query is off so every
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

CREATE TEMP TABLE cases (ord int, name text, rows int, sql text, runs int, logged boolean DEFAULT false,
                         audit_decrypt text DEFAULT 'statement');
CREATE TEMP TABLE timings (ord int, ms float8);
INSERT INTO cases VALUES
 (1, 'plaintext copy (CREATE TABLE AS)', :rows, 'SELECT id, v FROM src', :runs),
 (2, 'pgcrypto encrypt(data, key, ''aes'') (AES-CBC, no integrity)', :rows,
     $$SELECT id, encrypt(convert_to(v, 'UTF8'), 'k0123456789abcdef0123456789abcde'::bytea, 'aes') FROM src$$, :runs),
 (3, 'pgcrypto decrypt(data, key, ''aes'')', :rows,
     $$SELECT id, convert_from(decrypt(c, 'k0123456789abcdef0123456789abcde'::bytea, 'aes'), 'UTF8') FROM pgc$$, :runs),
 (4, 'pgcrypto pgp_sym_encrypt (first ' || :pgp_rows || ' rows)', :pgp_rows,
     format($$SELECT id, pgp_sym_encrypt(v, 'passphrase') FROM src WHERE id <= %s$$, :pgp_rows), 1),
 (5, 'encml.encrypt(text, key) (AES-256-GCM)', :rows, format($$SELECT id, encml.encrypt(v, %L) FROM src$$, :'k'), :runs),
 (6, 'encml.encrypt(text, key, aad)', :rows, format($$SELECT id, encml.encrypt(v, %L, id::text) FROM src$$, :'k'), :runs),
 (7, 'encml.decrypt_text(value)', :rows, 'SELECT id, encml.decrypt_text(c) FROM enc', :runs),
 (8, 'encml.decrypt(value) (to bytea)', :rows, 'SELECT id, encml.decrypt(c) FROM enc', :runs);
-- Decryption auditing: the default (statement) against off.
INSERT INTO cases VALUES
 (9, 'encml.decrypt_text(value), encml.audit_decrypt = off', :rows, 'SELECT id, encml.decrypt_text(c) FROM enc', :runs, false, 'off');
-- The same into ordinary (WAL-logged) tables, each compared with its own plaintext baseline.
INSERT INTO cases VALUES
 (11, 'logged: plaintext copy (CREATE TABLE AS)', :rows, 'SELECT id, v FROM src', :runs, true),
 (12, 'logged: pgcrypto encrypt(data, key, ''aes'')', :rows,
     $$SELECT id, encrypt(convert_to(v, 'UTF8'), 'k0123456789abcdef0123456789abcde'::bytea, 'aes') FROM src$$, :runs, true),
 (15, 'logged: encml.encrypt(text, key)', :rows, format($$SELECT id, encml.encrypt(v, %L) FROM src$$, :'k'), :runs, true),
 (17, 'logged: encml.decrypt_text(value)', :rows, 'SELECT id, encml.decrypt_text(c) FROM enc', :runs, true);

-- Rounds interleave the statements, so a slow moment of a shared machine hits all of them alike.
DO $$
DECLARE
    c record;
    t0 timestamptz;
BEGIN
    FOR round IN 1 .. (SELECT max(runs) FROM cases) LOOP
        FOR c IN SELECT * FROM cases WHERE runs >= round ORDER BY ord LOOP
            PERFORM set_config('encml.audit_decrypt', c.audit_decrypt, false);
            t0 := clock_timestamp();
            EXECUTE CASE WHEN c.logged THEN 'CREATE TABLE bench_out AS ' ELSE 'CREATE TEMP TABLE bench_out AS ' END || c.sql;
            INSERT INTO timings VALUES (c.ord, extract(epoch FROM clock_timestamp() - t0) * 1000);
            DROP TABLE bench_out;
        END LOOP;
    END LOOP;
END
$$;
RESET encml.audit_decrypt;
CREATE TEMP TABLE results AS
SELECT c.ord, c.name, c.rows, c.logged, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms) AS ms
  FROM cases c JOIN timings t USING (ord) GROUP BY c.ord, c.name, c.rows, c.logged;

\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Field encryption benchmark:' :rows 'rows of 64-character text, median of' :runs 'interleaved runs (pgp_sym_encrypt: one run, extrapolated).'
\echo 'CREATE TEMP TABLE AS unless marked logged; x_plaintext compares with the plaintext copy of the same kind.'
WITH base AS (SELECT logged, ms / rows AS ms_per_row FROM results WHERE name LIKE '%plaintext%'),
     pgp AS (SELECT ms / rows AS ms_per_row FROM results WHERE name LIKE '%pgp_sym_encrypt%')
SELECT r.name AS statement,
       round(r.ms::numeric, 1) AS ms,
       round((r.ms / r.rows * 1000)::numeric, 2) AS us_per_row,
       round((r.ms / r.rows / base.ms_per_row)::numeric, 2) AS x_plaintext,
       round((pgp.ms_per_row / (r.ms / r.rows))::numeric, 1) AS times_faster_than_pgp
  FROM results r JOIN base USING (logged), pgp
 ORDER BY r.ord;
\echo
\echo 'Decryption auditing (encml.audit_decrypt = statement, the default, against off):'
SELECT round((s.ms / o.ms)::numeric, 2) AS x_off
  FROM results s, results o WHERE s.ord = 7 AND o.ord = 9;
