-- Homomorphic aggregation: fhe_vector, fhe_vector_sum, rounds. Keys come from the test-only
-- in-database functions (clients use the pg_encrypt_ml-fhe tool; tests/integration does too).
SELECT try('SELECT * FROM encml.fhe_keygen()') AS keygen_disabled_by_default;
SET encml.fhe_client_functions = on;
SELECT public_material AS pk, secret_key AS sk FROM encml.fhe_keygen() \gset
SELECT public_material AS pk2, secret_key AS sk2 FROM encml.fhe_keygen() \gset
SELECT encml.fhe_register_keyset('regress-fhe', :'pk') AS ks \gset
SELECT encml.fhe_register_keyset('regress-fhe-2', :'pk2') AS ks2 \gset
SELECT replace(try(format('SELECT encml.fhe_register_keyset(%L, %L)', 'again', :'pk')), :'ks', '<ks>') AS same_material_twice;
SELECT try($$SELECT encml.fhe_register_keyset('junk', '\x00')$$) AS junk_material;
SELECT name, kind, octet_length(public_material) AS public_bytes FROM encml.fhe_key_sets ORDER BY name;

-- 60 updates of 100 fixed-point values (8 fractional bits, negative ones too), encrypted under
-- the public key; the plaintexts are kept only to check the decrypted sum.
CREATE TABLE fhe_plain AS
SELECT i, array_agg(round(((random() - 0.5) * 200)::numeric * 256) / 256 ORDER BY j)::float8[] AS v
  FROM generate_series(1, 60) i, generate_series(1, 100) j GROUP BY i;
CREATE TABLE fhe_updates AS SELECT i, encml.fhe_encrypt(v, :'ks') AS u FROM fhe_plain;
SELECT (encml.fhe_vector_info(u)).dim, octet_length(u::bytea) AS bytes,
       round(octet_length(u::bytea) / 100.0, 1) AS bytes_per_value
  FROM fhe_updates LIMIT 1;
SELECT dim, terms, value_bits, frac_bits, message_bits, keyset = :'ks' AS right_keyset
  FROM encml.fhe_vector_info((SELECT encml.fhe_vector_sum(u) FROM fhe_updates));
-- The decrypted sum equals the plaintext sum exactly.
CREATE TABLE fhe_expected AS
SELECT array_agg(s ORDER BY j) AS total
  FROM (SELECT j, sum(x) AS s FROM fhe_plain, unnest(v) WITH ORDINALITY AS t(x, j) GROUP BY j) p;
SELECT encml.fhe_decrypt((SELECT encml.fhe_vector_sum(u) FROM fhe_updates), :'sk')
       = (SELECT total FROM fhe_expected) AS sum_is_exact;
SELECT (SELECT total FROM fhe_expected) <> array_fill(0::float8, ARRAY[100]) AS sum_is_not_trivial;
-- Text form round trip; NULL rows are skipped; an empty input sums to NULL.
SELECT encml.fhe_decrypt(encml.fhe_vector_sum(u::text::encml.fhe_vector), :'sk')
       = (SELECT total FROM fhe_expected) AS text_round_trip
  FROM (SELECT u FROM fhe_updates UNION ALL SELECT NULL) s;
SELECT encml.fhe_vector_sum(u) IS NULL AS empty_is_null FROM fhe_updates WHERE false;
-- GROUP BY: two halves decrypt to their own sums.
WITH enc AS (SELECT i % 2 AS half, encml.fhe_decrypt(encml.fhe_vector_sum(u), :'sk') AS total
               FROM fhe_updates GROUP BY i % 2),
     plain AS (SELECT half, array_agg(s ORDER BY j) AS total
                 FROM (SELECT i % 2 AS half, j, sum(x) AS s
                         FROM fhe_plain, unnest(v) WITH ORDINALITY AS t(x, j) GROUP BY 1, 2) q
                GROUP BY half)
SELECT half, enc.total = plain.total AS half_is_exact FROM enc JOIN plain USING (half) ORDER BY half;

-- Parallel aggregation (workers only: partial states are serialized and combined).
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT encml.fhe_vector_sum(u) FROM fhe_updates;
SELECT encml.fhe_decrypt(encml.fhe_vector_sum(u), :'sk') = (SELECT total FROM fhe_expected)
       AS parallel_sum_is_exact
  FROM fhe_updates;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

-- Errors: another dimension, another key set, the same ciphertext twice, damaged values.
SELECT try($$SELECT encml.fhe_vector_sum(u) FROM (SELECT u FROM fhe_updates
             UNION ALL SELECT encml.fhe_encrypt(ARRAY[1, 2, 3]::float8[], '$$ || :'ks' || $$')) s$$) AS other_dimension;
SELECT try($$SELECT encml.fhe_vector_sum(u) FROM (SELECT u FROM fhe_updates
             UNION ALL SELECT encml.fhe_encrypt(v, '$$ || :'ks2' || $$') FROM fhe_plain WHERE i = 1) s$$) AS other_keyset;
SELECT try($$SELECT encml.fhe_vector_sum(u) FROM (SELECT u FROM fhe_updates
             UNION ALL SELECT encml.fhe_encrypt(v, '$$ || :'ks' || $$', frac_bits => 4) FROM fhe_plain WHERE i = 1) s$$) AS other_encoding;
SELECT try($$SELECT encml.fhe_vector_sum(u) FROM (SELECT u FROM fhe_updates
             UNION ALL SELECT u FROM fhe_updates WHERE i = 7) s$$) AS same_ciphertext_twice;
SELECT try($$SELECT substr(u::bytea, 1, 5000)::encml.fhe_vector FROM fhe_updates WHERE i = 1$$) AS truncated;
-- One bit flipped (not a byte overwritten, which would leave the value intact when it already
-- held that byte).
SELECT try($$SELECT set_byte(u::bytea, 2000, get_byte(u::bytea, 2000) # 1)::encml.fhe_vector
               FROM fhe_updates WHERE i = 1$$) AS corrupted_byte;
SELECT try($$SELECT overlay(u::bytea placing '\x09' from 3)::encml.fhe_vector FROM fhe_updates WHERE i = 1$$) AS unknown_version;
-- Attacker round 1 of issue 27: these read 'must be 16456 bytes, not 16456' and 'unknown version 1'.
SELECT try($$SELECT overlay(u::bytea placing '\x01' from 4)::encml.fhe_vector FROM fhe_updates WHERE i = 1$$) AS reserved_byte;
SELECT try($$SELECT overlay(u::bytea placing '\x0000000000000000' from 25)::encml.fhe_vector FROM fhe_updates WHERE i = 1$$) AS zero_terms;
SELECT try($$SELECT overlay(u::bytea placing '\x00000000' from 21)::encml.fhe_vector FROM fhe_updates WHERE i = 1$$) AS zero_values;
SELECT try($$SELECT 'not base64!'::encml.fhe_vector$$) AS bad_text;
SELECT try($$SELECT 'es1:4553'::encml.fhe_sum_state$$) AS truncated_sum_state;
SELECT try($$SELECT encml.fhe_decrypt(encml.fhe_vector_sum(u), '$$ || :'sk2' || $$') FROM fhe_updates$$) AS wrong_secret_key;
SELECT try($$SELECT encml.fhe_encrypt(ARRAY[1e9]::float8[], '$$ || :'ks' || $$')$$) AS value_too_large;
SELECT try($$SELECT encml.fhe_encrypt(ARRAY[1]::float8[], '$$ || :'ks' || $$', value_bits => 40, max_terms => 100000)$$) AS no_headroom;

-- Key sets are read once per backend (a new session starts with none).
\c
SET encml.fhe_client_functions = on;
SELECT encml.fhe_keyset_loads() AS loads_in_new_session;
SELECT encml.fhe_encrypt(ARRAY[1]::float8[], :'ks') IS NOT NULL AS encrypted;
SELECT encml.fhe_encrypt(ARRAY[2]::float8[], :'ks') IS NOT NULL AS encrypted_again;
SELECT encml.fhe_keyset_loads() AS loads_after_two_calls;

-- The client functions refuse once switched off again.
RESET encml.fhe_client_functions;
SELECT try($$SELECT encml.fhe_decrypt(u, '\x00') FROM fhe_updates LIMIT 1$$) AS decrypt_disabled;
SELECT try($$SELECT encml.fhe_encrypt(ARRAY[1]::float8[], '$$ || :'ks' || $$')$$) AS encrypt_disabled;
SET encml.fhe_client_functions = on;

-- Rounds: contributors submit, the admin closes, the decryptor reads sums only.
CREATE ROLE encml_regress_coordinator NOLOGIN IN ROLE encml_fhe_admin;
CREATE ROLE encml_regress_client NOLOGIN IN ROLE encml_fhe_contributor;
-- Nine more contributors: a round takes one update per role.
DO $$ BEGIN
    FOR n IN 2..10 LOOP
        EXECUTE format('CREATE ROLE encml_regress_c%s NOLOGIN IN ROLE encml_fhe_contributor', n);
    END LOOP;
END $$;
CREATE ROLE encml_regress_keyholder NOLOGIN IN ROLE encml_fhe_decryptor;
-- Separation of duties: holding the decryptor's role next to another one is refused.
CREATE ROLE encml_regress_fhe_both NOLOGIN IN ROLE encml_fhe_decryptor, encml_fhe_contributor;
CREATE ROLE encml_regress_fhe_nobody NOLOGIN;
GRANT USAGE ON SCHEMA encml TO encml_regress_coordinator, encml_regress_client,
    encml_regress_keyholder, encml_regress_fhe_nobody, encml_regress_fhe_both;
GRANT SELECT ON fhe_updates, fhe_plain TO encml_regress_client;
-- Submits update i of fhe_updates to a round as role encml_regress_c<n>.
CREATE FUNCTION pg_temp.submit_as(n int, round bigint, i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    upd encml.fhe_vector := (SELECT u FROM fhe_updates WHERE fhe_updates.i = submit_as.i);
    r text;
BEGIN
    EXECUTE format('SET ROLE encml_regress_c%s', n);
    r := regexp_replace(public.try(format('SELECT encml.fhe_submit(%s, %L)', round, upd)), 'round [0-9]+', 'round <r>');
    RESET ROLE;
    RETURN r;
END $$;
SET ROLE encml_regress_coordinator;
SELECT encml.fhe_open_round(:'ks', 100, min_contributions => 10, unproven => true) AS round \gset
SELECT encml.fhe_open_round(:'ks', 100, min_contributions => 5, unproven => true) AS round2 \gset
SELECT try(format('SELECT encml.fhe_open_round(%L, 100, min_contributions => 1)', :'ks')) AS round_of_one;
SELECT try(format('SELECT encml.fhe_open_round(%L, 100, max_contributions => 100000, value_bits => 24, unproven => true)', :'ks')) AS too_many_bits;
SELECT dim, value_bits, frac_bits, message_bits, min_contributions, contributions, status
  FROM encml.fhe_round_status WHERE id = :round;
RESET ROLE;
SET ROLE encml_regress_client;
SELECT encml.fhe_submit(:round, u) AS submitted FROM fhe_updates WHERE i = 1;
-- Issue 27: one role filled a round with min_contributions - 1 updates of its own (zeros)
-- beside one victim's, and the round's "sum" was the victim's update. A second update from the
-- same role is refused.
SELECT regexp_replace(try(format('SELECT encml.fhe_submit(%s, u) FROM fhe_updates WHERE i = 2', :round)), 'round [0-9]+', 'round <r>') AS second_update_same_role;
SELECT try(format('SELECT encml.fhe_submit(%s, u) FROM fhe_updates WHERE i = 1', :round2)) AS replay_other_round;
SELECT regexp_replace(try(format('SELECT encml.fhe_submit(%s, encml.fhe_encrypt(ARRAY[1,2]::float8[], %L))', :round2, :'ks')), 'round [0-9]+', 'round <r>') AS wrong_dimension;
SELECT regexp_replace(try(format('SELECT encml.fhe_submit(%s, (SELECT encml.fhe_vector_sum(u) FROM fhe_updates WHERE i > 50))', :round2)), 'round [0-9]+', 'round <r>') AS a_sum_is_not_an_update;
SELECT try('SELECT * FROM encml.fhe_contributions') AS read_updates;
SELECT try(format('SELECT encml.fhe_close_round(%s)', :round)) AS client_closes;
RESET ROLE;
-- Another role replaying the client's update: refused by its fingerprint.
SELECT pg_temp.submit_as(2, :round, 1) AS replay_same_round;
SELECT n, pg_temp.submit_as(n, :round, n) AS submitted FROM generate_series(2, 9) n;
SELECT u AS spare FROM fhe_updates WHERE i = 10 \gset
-- Nine of ten: closing releases nothing, and the decryptor gets nothing.
SET ROLE encml_regress_coordinator;
SELECT regexp_replace(try(format('SELECT encml.fhe_close_round(%s)', :round)), 'round [0-9]+', 'round <r>') AS close_too_early;
RESET ROLE;
SET ROLE encml_regress_keyholder;
SELECT regexp_replace(try(format('SELECT encml.fhe_round_sum(%s)', :round)), 'round [0-9]+', 'round <r>') AS sum_of_open_round;
SELECT try('SELECT * FROM encml.fhe_rounds') AS read_rounds;
SELECT try('SELECT * FROM encml.fhe_contributions') AS read_contributions;
SELECT try(format('SELECT encml.fhe_submit(%s, %L)', :round, :'spare')) AS keyholder_submits;
RESET ROLE;
SET ROLE encml_regress_fhe_both;
SELECT try(format('SELECT encml.fhe_submit(%s, %L)', :round, :'spare')) AS decryptor_and_contributor_submits;
SELECT try(format('SELECT encml.fhe_round_sum(%s)', :round)) AS decryptor_and_contributor_reads;
RESET ROLE;
SELECT pg_temp.submit_as(10, :round, 10) AS tenth_role_submits;
SET ROLE encml_regress_coordinator;
SELECT encml.fhe_close_round(:round) AS summed;
SELECT regexp_replace(try(format('SELECT encml.fhe_close_round(%s)', :round)), 'round [0-9]+', 'round <r>') AS close_twice;
SELECT contributions, status FROM encml.fhe_round_status WHERE id = :round;
SELECT try(format('SELECT encml.fhe_round_sum(%s)', :round)) AS coordinator_reads_sum;
RESET ROLE;
SELECT pg_temp.submit_as(3, :round, 11) AS submit_after_close;
SET ROLE encml_regress_keyholder;
SELECT encml.fhe_round_sum(:round) AS round_sum \gset
RESET ROLE;
SELECT encml.fhe_decrypt(:'round_sum', :'sk') = (
           SELECT array_agg(s ORDER BY j) FROM (
               SELECT j, sum(x) AS s FROM fhe_plain, unnest(v) WITH ORDINALITY AS t(x, j)
                WHERE i <= 10 GROUP BY j) q) AS round_sum_is_exact;
-- Only the sum is kept; the updates are gone.
SELECT count(*) AS rows, count(update) AS updates_kept FROM encml.fhe_contributions WHERE round = :round;
-- Roles outside the FHE groups are refused by the functions themselves (EXECUTE is granted to
-- PUBLIC), so each refusal leaves a security event.
SET ROLE encml_regress_fhe_nobody;
SELECT try(format('SELECT encml.fhe_round_sum(%s)', :round)) AS nobody_reads_sum;
SELECT try(format('SELECT encml.fhe_open_round(%L, 3)', :'ks')) AS nobody_opens;
SELECT try(format('SELECT encml.fhe_submit(%s, %L)', :round2, :'spare')) AS nobody_submits;
SELECT try(format('SELECT encml.fhe_close_round(%s)', :round2)) AS nobody_closes;
SELECT try(format('SELECT encml.fhe_register_keyset(%L, %L)', 'x', '\x00')) AS nobody_registers;
RESET ROLE;
SELECT operation, detail->>'role' AS role FROM encml.audit_log
 WHERE kind = 'event' AND operation LIKE 'fhe%refused' AND detail->>'role' = 'encml_regress_fhe_nobody'
 ORDER BY id;
-- Concurrent submissions from four sessions, as eight roles, take turns on the round: exact
-- count, no deadlock, and the round refuses what would pass max_contributions (the noise budget).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
GRANT SELECT ON fhe_plain TO encml_fhe_contributor;
SELECT encml.fhe_open_round(:'ks', 100, min_contributions => 2, max_contributions => 8, unproven => true) AS round3 \gset
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('fhe' || i, :'conninfo') FROM generate_series(1, 4) i;
SELECT dblink_exec('fhe' || i, 'SET encml.fhe_client_functions = on') FROM generate_series(1, 4) i;
SELECT dblink_exec('fhe' || i, format('SET ROLE encml_regress_c%s', i + 1)) FROM generate_series(1, 4) i;
SELECT dblink_send_query('fhe' || i, format(
    'SELECT count(encml.fhe_submit(%s, encml.fhe_encrypt(v, %L, max_terms => 8))) FROM fhe_plain WHERE i = %s',
    :round3, :'ks', i + 1))
  FROM generate_series(1, 4) i;
SELECT sum(n) AS submitted_concurrently FROM generate_series(1, 4) i,
       LATERAL (SELECT n FROM dblink_get_result('fhe' || i) AS t(n bigint)) x;
-- (dblink: a second call ends the query.)
SELECT count(*) AS drained FROM generate_series(1, 4) i, LATERAL dblink_get_result('fhe' || i) AS t(n bigint);
SELECT dblink_exec('fhe' || i, format('SET ROLE encml_regress_c%s', i + 5)) FROM generate_series(1, 4) i;
SELECT dblink_send_query('fhe' || i, format(
    'SELECT count(encml.fhe_submit(%s, encml.fhe_encrypt(v, %L, max_terms => 8))) FROM fhe_plain WHERE i = %s',
    :round3, :'ks', i + 5))
  FROM generate_series(1, 4) i;
SELECT sum(n) AS submitted_concurrently FROM generate_series(1, 4) i,
       LATERAL (SELECT n FROM dblink_get_result('fhe' || i) AS t(n bigint)) x;
-- (dblink: a second call ends the query.)
SELECT count(*) AS drained FROM generate_series(1, 4) i, LATERAL dblink_get_result('fhe' || i) AS t(n bigint);
SELECT dblink_disconnect('fhe' || i) FROM generate_series(1, 4) i;
SELECT contributions FROM encml.fhe_round_status WHERE id = :round3;
SET ROLE encml_regress_c10;
SELECT regexp_replace(try(format('SELECT encml.fhe_submit(%s, encml.fhe_encrypt(v, %L, max_terms => 8)) FROM fhe_plain WHERE i = 21', :round3, :'ks')),
                      'round [0-9]+', 'round <r>') AS round_full;
RESET ROLE;
REVOKE SELECT ON fhe_plain FROM encml_fhe_contributor;

-- Issue 27, attacker round 1: every contributor may SET ROLE to encml_fhe_contributor itself
-- (or to other roles it belongs to) and counted as another party. An update counts for the
-- session's login role: a second one from the same session is refused whatever role it acts as.
SET ROLE encml_regress_coordinator;
SELECT encml.fhe_open_round(:'ks', 100, min_contributions => 2, unproven => true) AS round4 \gset
RESET ROLE;
SET SESSION AUTHORIZATION encml_regress_c2;
SELECT encml.fhe_submit(:round4, encml.fhe_encrypt(ARRAY[1, 2]::float8[] || array_fill(0::float8, ARRAY[98]), :'ks')) AS submitted;
SET ROLE encml_fhe_contributor;
SELECT regexp_replace(try(format('SELECT encml.fhe_submit(%s, encml.fhe_encrypt(array_fill(0::float8, ARRAY[100]), %L))', :round4, :'ks')),
                      'round [0-9]+', 'round <r>') AS same_session_as_the_group_role;
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT contributions FROM encml.fhe_round_status WHERE id = :round4;

-- Issue 28: a round's own decryptor is the only role its sum is released to; a differentially
-- private sum needs a proven round (the noise itself: tests/integration/fhe_proven.sh).
CREATE ROLE encml_regress_keyholder2 NOLOGIN IN ROLE encml_fhe_decryptor;
SET ROLE encml_regress_coordinator;
SELECT try(format('SELECT encml.fhe_open_round(%L, 100, min_contributions => 2, unproven => true, decryptor => %L)',
                  :'ks', 'encml_regress_fhe_nobody')) AS not_a_decryptor;
SELECT try(format('SELECT encml.fhe_open_round(%L, 100, min_contributions => 2, unproven => true, decryptor => %L)',
                  :'ks', 'encml_regress_fhe_both')) AS decryptor_that_contributes;
SELECT try('SELECT encml.fhe_open_round(NULL, 100)') AS null_keyset;
SELECT encml.fhe_open_round(:'ks', 100, min_contributions => 2, unproven => true,
                            decryptor => 'encml_regress_keyholder2') AS round5 \gset
RESET ROLE;
SET SESSION AUTHORIZATION encml_regress_c3;
SELECT encml.fhe_submit(:round5, encml.fhe_encrypt(array_fill(1::float8, ARRAY[100]), :'ks')) AS submitted;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION encml_regress_c4;
SELECT encml.fhe_submit(:round5, encml.fhe_encrypt(array_fill(2::float8, ARRAY[100]), :'ks')) AS submitted;
RESET SESSION AUTHORIZATION;
SET ROLE encml_regress_coordinator;
SELECT regexp_replace(try(format('SELECT encml.fhe_close_round(%s, 1.0, 1e-6)', :round5)), 'round [0-9]+', 'round <r>') AS dp_on_unproven;
SELECT encml.fhe_close_round(:round5) AS summed5;
RESET ROLE;
SET ROLE encml_regress_keyholder;
SELECT regexp_replace(try(format('SELECT encml.fhe_round_sum(%s)', :round5)), 'round [0-9]+', 'round <r>') AS another_decryptor_reads;
RESET ROLE;
SET ROLE encml_regress_keyholder2;
SELECT encml.fhe_decrypt(encml.fhe_round_sum(:round5), :'sk') = array_fill(3::float8, ARRAY[100]) AS its_decryptor_reads;
RESET ROLE;
SELECT decryptor, dp_epsilon, dp_sigma FROM encml.fhe_round_status WHERE id = :round5;

-- Every round operation and refusal is in the audit log.
SELECT operation, count(*) FROM encml.audit_log
 WHERE kind = 'event' AND operation LIKE 'fhe%' GROUP BY operation ORDER BY operation;

DROP TABLE fhe_plain, fhe_updates, fhe_expected;
DROP OWNED BY encml_regress_coordinator, encml_regress_client, encml_regress_keyholder, encml_regress_fhe_nobody,
    encml_regress_fhe_both, encml_regress_keyholder2;
DROP ROLE encml_regress_coordinator, encml_regress_client, encml_regress_keyholder, encml_regress_fhe_nobody,
    encml_regress_fhe_both, encml_regress_keyholder2;
DO $$ BEGIN
    FOR n IN 2..10 LOOP
        EXECUTE format('DROP ROLE encml_regress_c%s', n);
    END LOOP;
END $$;
