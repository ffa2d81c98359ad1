-- Encryptions per key version against the AES-GCM random-nonce limit (docs/keys.md "Encryption
-- counts"): counted in shared memory, recorded in encml.key_encryptions every
-- encml.key_use_record_every encryptions by a background worker, shown by encml.key_usage.
SELECT encml.create_key('regress-nonce') AS k \gset
SELECT encml.create_key('regress-nonce-det', 'deterministic') AS kd \gset
SET encml.key_use_record_every = 100;

-- The first encryption of a statement goes to shared memory, the rest at the statement's end,
-- where a count that reached 100 is recorded.
SELECT count(encml.encrypt('x', :'k')) FROM generate_series(1, 50);
SELECT version, status, encryptions, recorded, unrecorded, recorded_at IS NULL AS unrecorded_yet
  FROM encml.key_usage WHERE key_id = :'k';
SELECT count(encml.encrypt('x', :'k')) FROM generate_series(1, 200);
SELECT version, status, encryptions, recorded, unrecorded, recorded_at IS NULL AS unrecorded_yet
  FROM encml.key_usage WHERE key_id = :'k';
-- 10 more stay unrecorded.
SELECT count(encml.encrypt('x', :'k')) FROM generate_series(1, 10);
SELECT version, encryptions FROM encml.key_encryptions WHERE key_id = :'k';
SELECT encryptions, recorded, unrecorded FROM encml.key_usage WHERE key_id = :'k';

-- Every path that draws a random nonce under a data key counts: encrypted JSON fields (one per
-- value), tensors, re-encryption.
SELECT encml.encrypt_jsonb('{"a": 1, "b": [2, 3]}', :'k', ARRAY['$.a', '$.b[*]']) IS NOT NULL AS sealed;
SELECT encml.encrypt_tensor('{1,2,3}'::real[], :'k') IS NOT NULL AS sealed;
SELECT encryptions - 260 AS added FROM encml.key_usage WHERE key_id = :'k';
SELECT encml.encrypt('old', :'k') AS old \gset
SELECT encml.rotate_key(:'k');
SELECT encml.key_version(encml.reencrypt(:'old'::encml.enc_bytea)) AS reencrypted_to;
SELECT version, encryptions FROM encml.key_usage WHERE key_id = :'k' ORDER BY version;

-- A statement that fails after encrypting still used its nonces.
SELECT try(format('SELECT encml.encrypt(g::text, %L) FROM generate_series(1, 50) g WHERE 1 / (50 - g) >= 0', :'k'));
SELECT encryptions FROM encml.key_usage WHERE key_id = :'k' AND version = 2;
BEGIN;
SELECT count(encml.encrypt('x', :'k')) FROM generate_series(1, 30);
ROLLBACK;
SELECT encryptions FROM encml.key_usage WHERE key_id = :'k' AND version = 2;

-- Parallel workers count too (their counts reach shared memory when they end).
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET force_parallel_mode = on;
CREATE TABLE nonce_rows AS SELECT g FROM generate_series(1, 1000) g;
ANALYZE nonce_rows;
SELECT count(encml.encrypt(g::text, :'k')) FROM nonce_rows;
RESET force_parallel_mode; RESET max_parallel_workers_per_gather; RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost; RESET parallel_setup_cost;
SELECT encryptions FROM encml.key_usage WHERE key_id = :'k' AND version = 2;

-- Deterministic and ORE encryption draw no nonce: their keys are not listed.
SELECT encml.det_encrypt('x', :'kd') IS NOT NULL AS det;
SELECT count(*) AS det_rows FROM encml.key_usage WHERE key_id = :'kd';

-- Past 2^31 (half the limit): a WARNING in each backend using the version, a security event
-- when the recorded count crosses it, and compliance_report() fails until the key is rotated.
SELECT encml.create_key('regress-nonce-worn') AS kw \gset
INSERT INTO encml.key_encryptions (key_id, version, encryptions) VALUES (:'kw', 1, 2147483648 - 15);
SET encml.key_use_record_every = 10;
-- The statement's end records its 20 and warns (terse: the HINT names the key).
\set VERBOSITY terse
SELECT count(encml.encrypt('x', :'kw')) FROM generate_series(1, 20);
\set VERBOSITY default
-- Once per backend.
SELECT count(encml.encrypt('x', :'kw')) FROM generate_series(1, 20);
SELECT encryptions - 2147483648 AS past_half, recorded - 2147483648 AS recorded_past_half
  FROM encml.key_usage WHERE key_id = :'kw';
SELECT severity, detail->>'version' AS version, (detail->>'encryptions')::bigint >= 2147483648 AS crossed
  FROM encml.security_events WHERE kind = 'key_nonce_budget_exceeded' AND detail->>'key' = :'kw';
SELECT check_name, status, detail LIKE '1 key version(s) past 2^31%' || :'kw' || ' v1 %' AS names_it
  FROM encml.compliance_report() WHERE check_name = 'key_nonce_budget';
-- Rotation moves new encryptions to a fresh version; the worn one no longer fails compliance
-- once retired.
SELECT encml.rotate_key(:'kw');
SELECT encml.retire_key_version(:'kw', 1, true);
SELECT check_name, status FROM encml.compliance_report() WHERE check_name = 'key_nonce_budget';
RESET encml.key_use_record_every;

-- Who sees what: key_usage shows the versions encml.key_versions shows; the table itself is
-- closed, and only superusers change how often counts are recorded.
CREATE ROLE nonce_reader LOGIN;
SET ROLE nonce_reader;
SELECT encml.create_key('regress-nonce-own') AS ko \gset
SELECT count(encml.encrypt('x', :'ko')) FROM generate_series(1, 5);
SELECT key_id = :'ko' AS own, encryptions FROM encml.key_usage WHERE key_id IN (:'k', :'ko') ORDER BY 2;
-- The function behind the view is PUBLIC too, and lists only the keys the role may see: not a
-- tenant key of a tenant it does not act for.
RESET ROLE;
SELECT encml.create_tenant('nonce-tenant');
SELECT encml.create_key('regress-nonce-tenant', 'aead', 'nonce-tenant') AS kt \gset
SELECT count(encml.encrypt('x', :'kt')) FROM generate_series(1, 3);
SELECT count(*) AS superuser_sees FROM encml.key_encryptions_unrecorded() WHERE key_id = :'kt';
SET ROLE nonce_reader;
SELECT count(*) AS reader_sees FROM encml.key_encryptions_unrecorded() WHERE key_id = :'kt';
SELECT try('SELECT * FROM encml.key_encryptions');
SELECT try('INSERT INTO encml.key_encryptions VALUES (gen_random_uuid(), 1, 0)');
SELECT try('SET encml.key_use_record_every = 1');
RESET ROLE;
DROP TABLE nonce_rows;
DROP ROLE nonce_reader;
SET client_min_messages = warning;  -- the NOTICE names the key id
SELECT encml.destroy_key(:'kt') > 0 AS destroyed;
RESET client_min_messages;
SELECT encml.drop_tenant('nonce-tenant');
