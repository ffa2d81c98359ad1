-- Fills a database that has pg_encrypt_ml 0.1.0 installed with one of everything a user keeps:
-- keys of every purpose with rotated, retired and destroyed versions, ciphertexts of every type
-- in tables (with their indexes), tenants and members with isolation policies and a tenant
-- schema, per-key grants, labels, clearances and conditions, privacy budgets and ledger rows,
-- an audit chain with a purge anchor, masking rules with a masked view, subject registrations,
-- subject keys and consents, FHE key sets with a closed round, and security events.
-- Written against the 0.1.0 API only, so that it keeps working as the template of every later
-- upgrade test (run against the frozen 0.1.0 install script). Run as a superuser with
-- ON_ERROR_STOP; tests/upgrade/checks.sql reads everything back.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Roles are cluster-wide: create them once.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['encml_up_app', 'encml_up_reader', 'encml_up_analyst', 'encml_up_member',
                             'encml_up_outsider', 'encml_up_support', 'encml_up_security',
                             'encml_up_auditor', 'encml_up_contributor',
                             'encml_up_fhe_1', 'encml_up_fhe_2', 'encml_up_fhe_3', 'encml_up_fhe_4']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;
GRANT encml_key_admin TO encml_up_security;
GRANT encml_auditor TO encml_up_auditor;
GRANT encml_fhe_contributor TO encml_up_contributor, encml_up_fhe_1, encml_up_fhe_2, encml_up_fhe_3,
    encml_up_fhe_4;
GRANT encml_subject_processor TO encml_up_app;

-- Key ids and test-only secrets, for the checks.
CREATE TABLE up_keys (name text PRIMARY KEY, id uuid NOT NULL);
CREATE TABLE up_secrets (name text PRIMARY KEY, material bytea NOT NULL);

-- Keys of every purpose; most rotated; one of each kind destroyed; a retired version.
INSERT INTO up_keys
SELECT p, encml.create_key('up-' || p, p)
  FROM unnest(ARRAY['aead', 'deterministic', 'ore', 'hmac', 'fpe']) p;
INSERT INTO up_keys SELECT 'aead-retired', encml.create_key('up-aead-retired');
INSERT INTO up_keys SELECT 'aead-destroyed', encml.create_key('up-aead-destroyed');
INSERT INTO up_keys SELECT 'det-destroyed', encml.create_key('up-det-destroyed', 'deterministic');
INSERT INTO up_keys SELECT 'labelled', encml.create_key('up-labelled');

-- enc_bytea: text and bytes, with and without AAD, under versions 1 and 2.
CREATE TABLE up_notes (id int PRIMARY KEY, body encml.enc_bytea, raw encml.enc_bytea);
INSERT INTO up_notes
SELECT i, encml.encrypt('note ' || i, (SELECT id FROM up_keys WHERE name = 'aead'), 'up_notes:' || i),
       encml.encrypt(decode(md5(i::text), 'hex'), (SELECT id FROM up_keys WHERE name = 'aead'))
  FROM generate_series(1, 100) i;
SELECT encml.rotate_key(id) FROM up_keys WHERE name = 'aead';
INSERT INTO up_notes
SELECT i, encml.encrypt('note ' || i, (SELECT id FROM up_keys WHERE name = 'aead'), 'up_notes:' || i),
       encml.encrypt(decode(md5(i::text), 'hex'), (SELECT id FROM up_keys WHERE name = 'aead'))
  FROM generate_series(101, 200) i;
-- A key whose version 1 is retired (nothing uses it any more), and one destroyed with a value.
SELECT encml.rotate_key(id) FROM up_keys WHERE name = 'aead-retired';
SELECT encml.retire_key_version(id, 1) FROM up_keys WHERE name = 'aead-retired';
INSERT INTO up_notes
SELECT 1000, encml.encrypt('under a retired key''s version 2', id), NULL FROM up_keys WHERE name = 'aead-retired';
INSERT INTO up_notes
SELECT 1001, encml.encrypt('shredded', id), NULL FROM up_keys WHERE name = 'aead-destroyed';
SELECT encml.destroy_key(id) FROM up_keys WHERE name = 'aead-destroyed';

-- det_text with a unique btree index and a hash index, under two versions.
CREATE TABLE up_users (id int PRIMARY KEY, email encml.det_text UNIQUE, team encml.det_text);
CREATE INDEX up_users_team ON up_users USING hash (team);
INSERT INTO up_users
SELECT i, encml.det_encrypt('user' || i || '@example.org', (SELECT id FROM up_keys WHERE name = 'deterministic')),
       encml.det_encrypt('team' || i % 7, (SELECT id FROM up_keys WHERE name = 'deterministic'))
  FROM generate_series(1, 300) i;
SELECT encml.rotate_key(id) FROM up_keys WHERE name = 'deterministic';
INSERT INTO up_users
SELECT i, encml.det_encrypt('user' || i || '@example.org', (SELECT id FROM up_keys WHERE name = 'deterministic')),
       NULL
  FROM generate_series(301, 320) i;
CREATE TABLE up_gone (id int, email encml.det_text);
INSERT INTO up_gone SELECT 1, encml.det_encrypt('gone@example.org', id) FROM up_keys WHERE name = 'det-destroyed';
SELECT encml.destroy_key(id) FROM up_keys WHERE name = 'det-destroyed';

-- ORE columns of all three types with btree indexes.
CREATE TABLE up_pay (id int PRIMARY KEY, amount encml.ore_int8, score encml.ore_float8, paid encml.ore_timestamptz);
CREATE INDEX up_pay_amount ON up_pay (amount);
CREATE INDEX up_pay_paid ON up_pay (paid);
INSERT INTO up_pay
SELECT i, encml.ore_encrypt((i * 7919 % 100000)::bigint, k.id), encml.ore_encrypt(i / 8.0, k.id),
       encml.ore_encrypt(timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour', k.id)
  FROM generate_series(1, 500) i, up_keys k WHERE k.name = 'ore';

-- Format-preserving tokens and card-number tokens (the clear values kept beside, for the checks).
CREATE FUNCTION pg_temp.with_luhn(payload text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT payload || ((10 - sum(CASE WHEN i % 2 = 1 THEN (d * 2) / 10 + (d * 2) % 10 ELSE d END) % 10) % 10)::text
      FROM (SELECT substr(reverse(payload), i, 1)::int AS d, i FROM generate_series(1, length(payload)) i) s
$$;
CREATE TABLE up_cards (id int PRIMARY KEY, pan text, pan_token text, account text, account_token text);
INSERT INTO up_cards (id, pan, account)
SELECT i, pg_temp.with_luhn('411111111111' || lpad(i::text, 3, '0')), lpad((123456789::bigint * i % 1000000000)::text, 9, '0')
  FROM generate_series(1, 50) i;
UPDATE up_cards SET pan_token = encml.tokenize_pan(pan, k.id), account_token = encml.fpe_encrypt(account, k.id)
  FROM up_keys k WHERE k.name = 'fpe';

-- Tensors, JSON documents with encrypted paths, and a large object.
CREATE TABLE up_models (id int PRIMARY KEY, weights encml.enc_bytea, ints encml.enc_bytea, doc jsonb, checkpoint oid);
INSERT INTO up_models
SELECT i,
       encml.encrypt_tensor(ARRAY[[i, 0.5, -1.25], [2, 3, i / 3.0]]::real[], k.id, 'model:' || i),
       encml.encrypt_tensor(ARRAY[i, -i, 42]::integer[], k.id),
       encml.encrypt_jsonb(jsonb_build_object('name', 'model ' || i, 'weights', jsonb_build_array(i, i + 1),
                                              'layers', jsonb_build_array(jsonb_build_object('bias', i * 0.1))),
                           k.id, ARRAY['{weights}', '{layers,*,bias}']),
       NULL
  FROM generate_series(1, 20) i, up_keys k WHERE k.name = 'aead';
-- (The source must be committed to the statement's snapshot: created one statement earlier.)
CREATE TEMP TABLE up_raw_lo AS SELECT lo_from_bytea(0, convert_to(repeat('checkpoint bytes ', 5000), 'UTF8')) AS o;
UPDATE up_models SET checkpoint = encml.lo_encrypt((SELECT o FROM up_raw_lo), (SELECT id FROM up_keys WHERE name = 'aead'))
 WHERE id = 1;
SELECT lo_unlink(o) FROM up_raw_lo;

-- Tenants, members, tenant keys, an isolated table and a tenant schema.
SELECT encml.create_tenant('up-acme'), encml.create_tenant('up-globex'), encml.create_tenant('up-gone');
SELECT encml.grant_tenant('up-acme', 'encml_up_member'), encml.grant_tenant('up-globex', 'encml_up_outsider');
SELECT encml.create_tenant_schema('up-acme', 'up_acme');
CREATE TABLE up_tenant_docs (id int PRIMARY KEY, tenant_id text NOT NULL DEFAULT encml.current_tenant(), body encml.enc_bytea);
SELECT encml.enable_tenant_isolation('up_tenant_docs');
GRANT SELECT, INSERT ON up_tenant_docs TO encml_up_member, encml_up_outsider;
SET ROLE encml_up_member;
SELECT encml.set_tenant('up-acme');
INSERT INTO up_tenant_docs (id, body) SELECT i, encml.encrypt('acme doc ' || i, encml.tenant_key()) FROM generate_series(1, 10) i;
SELECT encml.reset_tenant();
RESET ROLE;
SET ROLE encml_up_outsider;
SELECT encml.set_tenant('up-globex');
INSERT INTO up_tenant_docs (id, body) SELECT i, encml.encrypt('globex doc ' || i, encml.tenant_key()) FROM generate_series(11, 15) i;
SELECT encml.reset_tenant();
RESET ROLE;
SELECT encml.create_key('up-gone-key', 'aead', 'up-gone') IS NOT NULL;
SELECT encml.forget_tenant('up-gone');

-- Per-key grants, a label with a clearance and a condition.
SELECT encml.grant_key(id, 'encml_up_reader', 'decrypt') FROM up_keys WHERE name IN ('aead', 'deterministic', 'labelled');
SELECT encml.grant_key(id, 'encml_up_app', 'encrypt') FROM up_keys WHERE name IN ('aead', 'fpe');
SELECT encml.grant_key(id, 'encml_up_security', 'admin') FROM up_keys WHERE name = 'ore';
SELECT encml.label_key(id, 'phi') FROM up_keys WHERE name = 'labelled';
SET ROLE encml_up_security;
SELECT encml.grant_clearance('encml_up_reader', 'phi');
SELECT encml.set_clearance_condition('phi', application_names => '{up_ehr}');
RESET ROLE;
CREATE TABLE up_phi (id int PRIMARY KEY, note encml.enc_bytea);
INSERT INTO up_phi SELECT i, encml.encrypt('phi note ' || i, k.id) FROM generate_series(1, 5) i, up_keys k WHERE k.name = 'labelled';
GRANT SELECT ON up_notes, up_users, up_phi TO encml_up_reader;

-- Privacy budgets and ledger rows (granted and refused).
CREATE TABLE up_salaries (id int, dept int, salary int);
INSERT INTO up_salaries SELECT i, i % 4, 30000 + i * 37 % 50000 FROM generate_series(1, 2000) i;
GRANT SELECT ON up_salaries TO encml_up_analyst;
SELECT encml.set_privacy_budget('encml_up_analyst', 2.0, 1e-6);
SELECT encml.set_privacy_budget('encml_up_analyst', 5.0, scope => 'up-scope');
SET ROLE encml_up_analyst;
SELECT encml.dp_count(salary, 0.5) IS NOT NULL FROM up_salaries;
SELECT encml.dp_sum(salary::bigint, 20000, 90000, 0.5) IS NOT NULL FROM up_salaries;
SET encml.privacy_scope = 'up-scope';
SELECT encml.dp_avg(salary::float8, 20000, 90000, 1.0) IS NOT NULL FROM up_salaries;
RESET encml.privacy_scope;
RESET ROLE;
DO $$
BEGIN
    SET LOCAL ROLE encml_up_analyst;
    PERFORM encml.dp_count(salary, 5.0) FROM up_salaries;   -- over budget: refused, recorded
EXCEPTION WHEN insufficient_privilege OR check_violation OR object_not_in_prerequisite_state OR program_limit_exceeded THEN
    NULL;
END
$$;

-- An audit chain: an audited table with a classified column, rows sealed, purged up to an anchor,
-- then more rows after the anchor.
CREATE TABLE up_patients (id int PRIMARY KEY, name text, ssn text);
SELECT encml.classify('up_patients', 'ssn', 'pii');
SELECT encml.audit_enable('up_patients');
INSERT INTO up_patients SELECT i, 'patient ' || i, lpad(i::text, 9, '0') FROM generate_series(1, 30) i;
UPDATE up_patients SET name = name || ' (updated)' WHERE id <= 5;
SELECT encml.audit_seal() >= 0;
SELECT encml.audit_purge(clock_timestamp()) > 0;
INSERT INTO up_patients SELECT i, 'patient ' || i, lpad(i::text, 9, '0') FROM generate_series(31, 40) i;
DELETE FROM up_patients WHERE id = 40;
SELECT encml.audit_seal() >= 0;

-- A partitioned audited table: 0.1.0 gave its partitions no TRUNCATE trigger (0.2.0 adds it).
CREATE TABLE up_visits (id int, at date) PARTITION BY RANGE (id);
CREATE TABLE up_visits_1 PARTITION OF up_visits FOR VALUES FROM (0) TO (1000);
SELECT encml.audit_enable('up_visits');
INSERT INTO up_visits VALUES (1, '2026-01-01');
SELECT encml.audit_seal() >= 0;

-- Masking rules with a masked view (function masks and stored masks).
CREATE TABLE up_customers (id int PRIMARY KEY, name text, email text, card text, phone text, born date, notes encml.enc_bytea);
INSERT INTO up_customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com', '4111 1111 1111 ' || lpad(i::text, 4, '0'),
       '+1 (555) 123-' || lpad(i::text, 4, '0'), date '1980-01-01' + i * 100,
       encml.encrypt('note ' || i, k.id)
  FROM generate_series(1, 10) i, up_keys k WHERE k.name = 'aead';
SELECT encml.set_masking_rule('up_customers', 'name', 'partial(1, 0)', '{encml_up_support}');
SELECT encml.set_masking_rule('up_customers', 'email', 'email', '{encml_up_support}');
SELECT encml.set_masking_rule('up_customers', 'card', 'pan');
SELECT encml.set_masking_rule('up_customers', 'phone', 'phone', '{encml_up_support}');
SELECT encml.set_masking_rule('up_customers', 'born', 'year', '{encml_up_support}');
SELECT encml.set_masking_rule('up_customers', 'notes', 'partial(0, 0)', '{encml_up_support}');
SELECT encml.apply_masking('up_customers');
CREATE TABLE up_stored (id int PRIMARY KEY, email text);
INSERT INTO up_stored SELECT i, 'stored' || i || '@example.com' FROM generate_series(1, 5) i;
SELECT encml.set_masking_rule('up_stored', 'email', 'email', '{encml_up_support}');
SELECT encml.apply_masking('up_stored', stored => true);
REVOKE ALL ON up_customers, up_stored FROM PUBLIC;
GRANT SELECT ON up_customers_masked, up_stored_masked TO encml_up_reader, encml_up_support;
SELECT encml.grant_key(id, 'encml_up_support', 'decrypt') FROM up_keys WHERE name = 'aead';

-- GDPR: registered identifier columns, subject keys, consents; one subject forgotten.
CREATE TABLE up_subjects (user_id text PRIMARY KEY, email encml.enc_bytea);
CREATE TABLE up_tickets (id int PRIMARY KEY, owner encml.det_text, body encml.enc_bytea);
GRANT SELECT, INSERT, UPDATE, DELETE ON up_subjects, up_tickets TO encml_up_app;
SELECT encml.grant_key(id, 'encml_up_app', 'encrypt') FROM up_keys WHERE name = 'deterministic';
SELECT encml.register_subject_column('up_subjects', 'user_id');
SELECT encml.register_subject_column('up_tickets', 'owner', (SELECT id FROM up_keys WHERE name = 'deterministic'));
SET ROLE encml_up_app;
INSERT INTO up_subjects SELECT s, encml.encrypt(s || '@example.org', encml.subject_key(s))
  FROM unnest(ARRAY['alice', 'bob', 'carol']) s;
INSERT INTO up_tickets SELECT i, encml.det_encrypt(s, (SELECT id FROM encml.keys WHERE name = 'up-deterministic')),
       encml.encrypt('ticket ' || i || ' of ' || s, encml.subject_key(s))
  FROM unnest(ARRAY['alice', 'bob', 'carol', 'alice']) WITH ORDINALITY AS t(s, i);
SELECT encml.record_consent('alice', 'model_training', true, 'signup form v3') > 0;
SELECT encml.record_consent('bob', 'model_training', true) > 0;
SELECT encml.record_consent('bob', 'model_training', false, 'settings page') > 0;
RESET ROLE;
SELECT encml.subject_forget('carol') IS NOT NULL;

-- FHE: a vector key set with a closed and an open round, and a uint32 client key with values.
SET encml.fhe_client_functions = on;
CREATE TABLE up_fhe_keys AS SELECT public_material, secret_key FROM encml.fhe_keygen();
INSERT INTO up_keys SELECT 'fhe-keyset', encml.fhe_register_keyset('up-fhe', public_material) FROM up_fhe_keys;
INSERT INTO up_secrets SELECT 'fhe-vector', secret_key FROM up_fhe_keys;
DROP TABLE up_fhe_keys;
CREATE TABLE up_fhe_plain (i int PRIMARY KEY, v float8[]);
INSERT INTO up_fhe_plain SELECT i, ARRAY[i, -i, i * 0.5] FROM generate_series(1, 8) i;
CREATE TABLE up_fhe_updates AS
SELECT i, encml.fhe_encrypt(v, (SELECT id FROM up_keys WHERE name = 'fhe-keyset')) AS u FROM up_fhe_plain;
CREATE TABLE up_rounds (name text PRIMARY KEY, id bigint NOT NULL);
INSERT INTO up_rounds
SELECT r, encml.fhe_open_round(id, 3, min_contributions => 3) FROM up_keys, unnest(ARRAY['closed', 'open']) r
 WHERE name = 'fhe-keyset';
-- One update per contributor role (the 0.2.0 library, which runs this script, enforces it).
GRANT SELECT ON up_fhe_updates, up_rounds TO encml_fhe_contributor;
CREATE FUNCTION pg_temp.submit_as(n int, round text, i int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET ROLE encml_up_fhe_%s', n);
    PERFORM encml.fhe_submit((SELECT id FROM up_rounds WHERE name = round), u) FROM up_fhe_updates
      WHERE up_fhe_updates.i = submit_as.i;
    RESET ROLE;
END $$;
SELECT pg_temp.submit_as(i, 'closed', i) FROM generate_series(1, 4) i;
SELECT pg_temp.submit_as(i - 6, 'open', i) FROM generate_series(7, 8) i;
SELECT encml.fhe_close_round(id) FROM up_rounds WHERE name = 'closed';
CREATE TABLE up_fhe_uint32_keys AS SELECT client_key FROM encml.fhe_keygen_uint32();
INSERT INTO up_secrets SELECT 'fhe-uint32', client_key FROM up_fhe_uint32_keys;
DROP TABLE up_fhe_uint32_keys;
CREATE TABLE up_fhe_amounts (i int PRIMARY KEY, amount encml.fhe_uint32);
INSERT INTO up_fhe_amounts SELECT i, encml.fhe_encrypt_uint32(i * 1000, (SELECT material FROM up_secrets WHERE name = 'fhe-uint32'))
  FROM generate_series(1, 2) i;
RESET encml.fhe_client_functions;

-- Security events: refused key uses (recorded outside the refused transaction).
DO $$
BEGIN
    SET LOCAL ROLE encml_up_outsider;
    PERFORM encml.decrypt_text(body, 'up_notes:1') FROM public.up_notes WHERE id = 1;
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
ANALYZE;

-- An audited change left unsealed: 0.2.0 moves it to the unsealed partition of the new log.
UPDATE up_patients SET name = 'patient 39 (unsealed)' WHERE id = 39;
SELECT count(*) > 0 AS unsealed_rows FROM encml.audit_log WHERE seq IS NULL;
