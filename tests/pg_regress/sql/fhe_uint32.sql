-- Scalar encrypted arithmetic on fhe_uint32 (tfhe-rs FheUint32). The server holds only the
-- server key; values are encrypted and decrypted with the test-only in-database client
-- functions (clients do this outside the database).
SET encml.fhe_client_functions = on;
CREATE TABLE fhe_k AS SELECT * FROM encml.fhe_keygen_uint32();
SELECT encml.fhe_register_keyset('regress-uint32', server_material) AS ks FROM fhe_k \gset
SELECT name, kind, octet_length(public_material) > 1000000 AS server_key_is_big
  FROM encml.fhe_key_sets WHERE name = 'regress-uint32';
CREATE TABLE fhe_amounts AS
SELECT i, (i * 1000003) % 100000 AS clear, encml.fhe_encrypt_uint32((i * 1000003) % 100000, (SELECT client_key FROM fhe_k)) AS enc
  FROM generate_series(1, 8) i;
SELECT octet_length(enc::bytea) BETWEEN 100000 AND 400000 AS ciphertext_size_as_documented FROM fhe_amounts LIMIT 1;

-- fhe_sum decrypts to the plaintext sum; fhe_add with a ciphertext and with a clear value.
SELECT encml.fhe_decrypt_uint32(encml.fhe_sum(enc), (SELECT client_key FROM fhe_k)) = sum(clear) AS sum_is_exact
  FROM fhe_amounts;
SELECT encml.fhe_decrypt_uint32(encml.fhe_add(a.enc, b.enc), (SELECT client_key FROM fhe_k)) = a.clear + b.clear AS add_is_exact
  FROM fhe_amounts a, fhe_amounts b WHERE a.i = 1 AND b.i = 2;
SELECT encml.fhe_decrypt_uint32(encml.fhe_add(enc, 4294967295), (SELECT client_key FROM fhe_k)) = clear - 1 AS add_wraps
  FROM fhe_amounts WHERE i = 3;
-- Comparisons give encrypted booleans.
SELECT a.clear < b.clear AS clear_lt,
       encml.fhe_decrypt_bool(encml.fhe_compare(a.enc, '<', b.enc), (SELECT client_key FROM fhe_k)) AS encrypted_lt,
       encml.fhe_decrypt_bool(encml.fhe_compare(a.enc, '=', a.clear), (SELECT client_key FROM fhe_k)) AS equals_own_clear,
       encml.fhe_decrypt_bool(encml.fhe_compare(a.enc, '>=', 100000), (SELECT client_key FROM fhe_k)) AS ge_bound
  FROM fhe_amounts a, fhe_amounts b WHERE a.i = 4 AND b.i = 5;
-- NULLs are skipped; no rows sum to NULL.
SELECT encml.fhe_sum(enc) IS NULL AS empty_is_null FROM fhe_amounts WHERE false;
SELECT encml.fhe_decrypt_uint32(encml.fhe_sum(e), (SELECT client_key FROM fhe_k)) AS with_null
  FROM (SELECT enc AS e FROM fhe_amounts WHERE i = 1 UNION ALL SELECT NULL) s;

-- A timeout ends a long sum at once (issue 27: 400 values ran 33.7 s past a 1 s timeout; the
-- sum now runs on a helper thread while the backend checks for interrupts).
SELECT clock_timestamp() AS sum_started \gset
SET statement_timeout = '1s';
SELECT encml.fhe_sum(a.enc) IS NOT NULL FROM fhe_amounts a, generate_series(1, 25);
RESET statement_timeout;
SELECT clock_timestamp() - :'sum_started'::timestamptz < interval '4 s' AS timeout_ended_the_sum;

-- Parallel aggregation (workers collect, the leader sums once).
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT encml.fhe_sum(enc) FROM fhe_amounts;
SELECT encml.fhe_decrypt_uint32(encml.fhe_sum(enc), (SELECT client_key FROM fhe_k)) = sum(clear) AS parallel_sum_is_exact
  FROM fhe_amounts;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

-- The server key is loaded once per backend.
\c
SET encml.fhe_client_functions = on;
SELECT encml.fhe_keyset_loads() AS loads_in_new_session;
SELECT encml.fhe_add(enc, 1) IS NOT NULL AS added FROM fhe_amounts WHERE i = 1;
SELECT encml.fhe_add(enc, 2) IS NOT NULL AS added_again FROM fhe_amounts WHERE i = 1;
SELECT encml.fhe_keyset_loads() AS loads_after_two_queries;

-- Errors: other key sets, damaged values, wrong kinds and clear values out of range.
CREATE TABLE fhe_k2 AS SELECT * FROM encml.fhe_keygen_uint32();
SELECT encml.fhe_register_keyset('regress-uint32-b', server_material) IS NOT NULL AS registered FROM fhe_k2;
SELECT try($$SELECT encml.fhe_add(a.enc, encml.fhe_encrypt_uint32(1, (SELECT client_key FROM fhe_k2)))
               FROM fhe_amounts a WHERE i = 1$$) AS other_keyset;
SELECT try($$SELECT encml.fhe_decrypt_uint32(enc, (SELECT client_key FROM fhe_k2)) FROM fhe_amounts WHERE i = 1$$) AS wrong_client_key;
SELECT try($$SELECT substr(enc::bytea, 1, 10)::encml.fhe_uint32 FROM fhe_amounts WHERE i = 1$$) AS truncated_header;
SELECT try($$SELECT encml.fhe_add(substr(enc::bytea, 1, 5000)::encml.fhe_uint32, 1) FROM fhe_amounts WHERE i = 1$$) AS truncated_body;
SELECT try($$SELECT encml.fhe_add(enc, -1) FROM fhe_amounts WHERE i = 1$$) AS negative_clear;
SELECT try($$SELECT encml.fhe_compare(enc, '~', 1) FROM fhe_amounts WHERE i = 1$$) AS unknown_comparison;
SELECT regexp_replace(try($$SELECT encml.fhe_register_keyset('regress-uint32-again', server_material) FROM fhe_k$$),
                      'id [-0-9a-f]+', 'id <ks>') AS registered_twice;
RESET encml.fhe_client_functions;
SELECT try($$SELECT encml.fhe_decrypt_uint32(enc, '\x00') FROM fhe_amounts WHERE i = 1$$) AS decrypt_disabled;
DROP TABLE fhe_amounts, fhe_k, fhe_k2;
