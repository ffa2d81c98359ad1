-- Issue 27: every ORE input path (text, binary, the bytea cast) checks the value's MAC under the
-- key version its header names. Forged values (a trit of 3, or valid trits that form a cycle
-- (0) < (1) < (2) < (0)) made the btree comparison non-transitive: anyone who could INSERT into
-- an indexed ORE column could corrupt the index.
CREATE EXTENSION IF NOT EXISTS amcheck;
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') $$;
-- The value's bytes with its first trit (the top two bits of byte 25) set to t.
CREATE FUNCTION pg_temp.with_trit(v bytea, t int) RETURNS bytea LANGUAGE sql
    AS $$ SELECT set_byte(v, 25, (get_byte(v, 25) & 63) | (t << 6)) $$;
SET client_min_messages = warning;
CREATE ROLE encml_ore_writer;
RESET client_min_messages;
SELECT encml.create_key('ore-input', 'ore') AS k \gset
SELECT encml.create_key('ore-input-aead', 'aead') AS ka \gset
CREATE TABLE ore_in (v encml.ore_int8);
CREATE INDEX ore_in_v ON ore_in (v);
INSERT INTO ore_in SELECT encml.ore_encrypt(i, :'k') FROM generate_series(1, 200) i;
GRANT INSERT, SELECT ON ore_in TO encml_ore_writer;
SELECT encml.ore_encrypt(42, :'k')::text AS real \gset
SELECT decode(:'real', 'base64') AS real_bytes \gset
SELECT get_byte(:'real_bytes'::bytea, 25) >> 6 AS t0 \gset

-- A real value passes every path, for a role with no grant on the key (verifying reveals
-- nothing: the extension looks the key up itself).
SET ROLE encml_ore_writer;
SELECT :'real'::encml.ore_int8::bytea = :'real_bytes'::bytea AS text_input;
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)', :'real_bytes')) AS bytea_cast;
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L)', :'real')) AS text_insert;

-- Forged values are refused on every path.
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)',
       pg_temp.with_trit(:'real_bytes', 3))) AS trit_of_three;
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)',
       pg_temp.with_trit(:'real_bytes', (:t0 + 1) % 3))) AS cycle_next_trit;
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L)',
       translate(encode(pg_temp.with_trit(:'real_bytes', (:t0 + 2) % 3), 'base64'), E'\n', ''))) AS cycle_text;
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)',
       set_byte(:'real_bytes'::bytea, 56, get_byte(:'real_bytes'::bytea, 56) # 1))) AS mac_flipped;
-- The same trits and MAC under another key id (a key the catalog does not know).
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)',
       overlay(:'real_bytes'::bytea PLACING '\x00112233445566778899aabbccddeeff'::bytea FROM 5))) AS unknown_key;
-- A header naming a key of another purpose.
SELECT pg_temp.t(format('INSERT INTO ore_in VALUES (%L::bytea::encml.ore_int8)',
       overlay(:'real_bytes'::bytea PLACING decode(replace(:'ka', '-', ''), 'hex') FROM 5))) AS aead_key;
-- Only a superuser may turn verification off.
SELECT pg_temp.t('SET encml.verify_ore_input = off') AS writer_cannot_turn_it_off;
RESET ROLE;

-- Binary input (COPY FORMAT binary: the bytes as sent).
COPY (SELECT pg_temp.with_trit(:'real_bytes', (:t0 + 1) % 3)) TO '/tmp/encml_regress_ore_forged.bin' (FORMAT binary);
SELECT pg_temp.t($$COPY ore_in FROM '/tmp/encml_regress_ore_forged.bin' (FORMAT binary)$$) AS binary_forged;
COPY (SELECT :'real_bytes'::bytea) TO '/tmp/encml_regress_ore_real.bin' (FORMAT binary);
SELECT pg_temp.t($$COPY ore_in FROM '/tmp/encml_regress_ore_real.bin' (FORMAT binary)$$) AS binary_real;

-- Each forgery left a security event outside the rolled-back statement.
SELECT operation, detail->>'type' AS type, count(*) FROM encml.audit_log
 WHERE operation = 'ore_input_forged' GROUP BY 1, 2;

-- Two forged values whose first trits are 3 and 0 (or 2) each compare greater than the other:
-- before the fix both went in and amcheck reported the index corrupt. (The 0-or-2 one is not the
-- real value's first trit, so it is forged too.)
CREATE TABLE ore_pair (v encml.ore_int8);
CREATE INDEX ore_pair_v ON ore_pair (v);
SELECT pg_temp.t(format('INSERT INTO ore_pair VALUES (%L::bytea::encml.ore_int8), (%L::bytea::encml.ore_int8)',
       pg_temp.with_trit(:'real_bytes', CASE WHEN :t0 = 0 THEN 2 ELSE 0 END), pg_temp.with_trit(:'real_bytes', 3))) AS forged_pair;
SELECT bt_index_check('ore_pair_v', true), bt_index_check('ore_in_v', true);
SELECT count(*) AS rows, bool_and(encml.ore_decrypt(v) BETWEEN 1 AND 200 OR encml.ore_decrypt(v) = 42) AS all_real
  FROM ore_in;

-- A destroyed key: its values cannot be verified, and are refused (a dump that holds them is
-- restored with verification off, docs/searchable.md).
SELECT encml.create_key('ore-input-shredded', 'ore') AS ks \gset
SELECT encml.ore_encrypt(7, :'ks')::text AS shredded \gset
SET client_min_messages = warning;
SELECT encml.destroy_key(:'ks') IS NOT NULL AS destroyed;
RESET client_min_messages;
SELECT pg_temp.t(format('SELECT %L::encml.ore_int8', :'shredded')) AS destroyed_key;
-- With verification off (superuser, as a restore runs), such values and unknown keys go in.
BEGIN;
SET LOCAL encml.verify_ore_input = off;
CREATE TEMP TABLE restored (v encml.ore_int8);
INSERT INTO restored VALUES (:'shredded'),
    (overlay(:'real_bytes'::bytea PLACING '\x00112233445566778899aabbccddeeff'::bytea FROM 5)::encml.ore_int8);
SELECT count(*) AS restored FROM restored;
-- The structure is still checked.
SELECT pg_temp.t(format('SELECT %L::bytea::encml.ore_int8', pg_temp.with_trit(:'real_bytes', 3))) AS trit_still_checked;
ROLLBACK;

DROP TABLE ore_in, ore_pair;
DROP ROLE encml_ore_writer;
