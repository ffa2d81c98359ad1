-- Randomized field encryption round trips, AAD, NULLs, text and binary I/O.
SELECT encml.create_key('regress-aead') AS k \gset

-- Round trips from empty to 64 MiB, as bytea and as text.
SELECT n, encml.decrypt(encml.encrypt(v, :'k')) = v AS round_trip,
       length(encml.encrypt(v, :'k')::bytea) - n AS overhead
  FROM (VALUES (0), (1), (64), (1024 * 1024), (64 * 1024 * 1024)) AS s(n),
       LATERAL (SELECT convert_to(repeat('x', n), 'UTF8') AS v) AS p;
SELECT encml.decrypt_text(encml.encrypt('héllo wörld ✓', :'k'));
SELECT encml.decrypt_text(encml.encrypt(''::text, :'k')) = '' AS empty_text;

-- NULL data gives NULL; leaving out the AAD is not a NULL result.
SELECT encml.encrypt(NULL::text, :'k') IS NULL AS null_in_null_out,
       encml.decrypt(NULL::encml.enc_bytea) IS NULL AS null_decrypt,
       encml.decrypt_text(encml.encrypt('no aad', :'k')) AS without_aad;

-- AAD binds a value to its context; an absent AAD equals an empty one.
SELECT encml.decrypt_text(encml.encrypt('bound', :'k', 'users.email:42'), 'users.email:42');
SELECT try(format('SELECT encml.decrypt_text(encml.encrypt(%L, %L, %L), %L)', 'bound', :'k', 'users.email:42', 'users.email:43'));
SELECT try(format('SELECT encml.decrypt_text(encml.encrypt(%L, %L, %L))', 'bound', :'k', 'users.email:42'));
SELECT encml.decrypt_text(encml.encrypt('same', :'k', ''), NULL) AS empty_equals_absent;

-- Randomized: equal plaintexts give different ciphertexts; the header names key and version.
SELECT count(DISTINCT encml.encrypt('same', :'k')::bytea) AS distinct_ciphertexts
  FROM generate_series(1, 1000);
SELECT encml.key_id(encml.encrypt('x', :'k')) = :'k'::uuid AS key_id_matches,
       encml.key_version(encml.encrypt('x', :'k')) AS key_version;

-- Text form is base64 and round-trips through text, as pg_dump and drivers use it.
CREATE TABLE secrets (id int PRIMARY KEY, v encml.enc_bytea);
INSERT INTO secrets SELECT i, encml.encrypt('secret ' || i, :'k', i::text) FROM generate_series(1, 100) i;
SELECT count(*) FILTER (WHERE v::text ~ '^[A-Za-z0-9+/]+=*$') AS base64_texts,
       count(*) FILTER (WHERE v::text::encml.enc_bytea::bytea = v::bytea) AS text_round_trips,
       count(*) FILTER (WHERE encml.decrypt_text(v, id::text) = 'secret ' || id) AS decrypted
  FROM secrets;

-- Binary send/receive through COPY BINARY.
COPY secrets TO '/tmp/pg_encrypt_ml_regress_secrets.bin' (FORMAT binary);
CREATE TABLE secrets_copy (LIKE secrets);
COPY secrets_copy FROM '/tmp/pg_encrypt_ml_regress_secrets.bin' (FORMAT binary);
SELECT count(*) AS copied FROM secrets s JOIN secrets_copy c USING (id)
 WHERE s.v::bytea = c.v::bytea AND encml.decrypt_text(c.v, c.id::text) = 'secret ' || c.id;

-- A client library's ciphertext arrives as bytea and is cast after a structural check.
SELECT encml.decrypt_text(encml.encrypt('from a client', :'k')::bytea::encml.enc_bytea);

-- Parallel query: workers decrypt too.
CREATE TABLE wide AS SELECT i, encml.encrypt('row ' || i, :'k') AS v FROM generate_series(1, 20000) i;
ANALYZE wide;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*) FROM wide WHERE encml.decrypt_text(v) LIKE 'row 1%';
SELECT count(*) FROM wide WHERE encml.decrypt_text(v) LIKE 'row 1%';
-- A parallel CREATE TABLE AS whose leader meets the key for the first time (fresh session):
-- catalog reads must not start a new command during the parallel operation.
\c
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) CREATE TABLE wide_plain AS SELECT encml.decrypt_text(v) AS v FROM wide;
CREATE TABLE wide_plain AS SELECT encml.decrypt_text(v) AS v FROM wide;
SELECT count(*) FILTER (WHERE v LIKE 'row %') AS decrypted FROM wide_plain;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE wide, wide_plain, secrets, secrets_copy;
