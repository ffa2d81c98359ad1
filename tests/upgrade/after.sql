-- After the upgrade (and in a restored dump): the new library and schema keep working on the old
-- data: rotation and re-encryption, new searchable values, tenants, privacy charges, the audit
-- chain, masking, erasure, FHE rounds. Must print tests/upgrade/expected/after.out.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.k(n text) RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT id FROM public.up_keys WHERE name = n $$;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<key>', 'g');
END
$$;
SELECT encml.library_version() = extversion AS library_matches_schema FROM pg_extension WHERE extname = 'pg_encrypt_ml';
SELECT status, detail ~ '^schema and library at ' AS detail FROM encml.compliance_report() WHERE check_name = 'extension_version';

-- Rotate, re-encrypt every value, then retire the versions nothing uses any more.
SELECT encml.rotate_key(pg_temp.k('aead')) AS new_version;
UPDATE up_notes SET body = encml.reencrypt(body, 'up_notes:' || id), raw = encml.reencrypt(raw) WHERE id <= 200;
SELECT encml.key_version(body) AS version, count(*),
       bool_and(encml.decrypt_text(body, 'up_notes:' || id) = 'note ' || id) AS decrypt
  FROM up_notes WHERE id <= 200 GROUP BY 1;
UPDATE up_customers SET notes = encml.reencrypt(notes);
UPDATE up_models SET weights = encml.encrypt_tensor(encml.decrypt_tensor_real(weights, 'model:' || id), pg_temp.k('aead'), 'model:' || id),
                     ints = encml.encrypt_tensor(encml.decrypt_tensor_int(ints), pg_temp.k('aead')),
                     doc = encml.reencrypt_jsonb(doc);
CREATE TEMP TABLE old_checkpoint AS SELECT checkpoint AS o FROM up_models WHERE id = 1;
UPDATE up_models SET checkpoint = encml.lo_reencrypt(checkpoint) WHERE id = 1;
SELECT lo_unlink(o) AS old_checkpoint_unlinked FROM old_checkpoint;
SELECT encml.retire_key_version(pg_temp.k('aead'), 1), encml.retire_key_version(pg_temp.k('aead'), 2);
SELECT string_agg(version || ':' || status, ' ' ORDER BY version) AS aead_versions
  FROM encml.key_versions WHERE key_id = pg_temp.k('aead');

-- New searchable values are found next to the old ones.
INSERT INTO up_users VALUES (321, encml.det_encrypt('user321@example.org', pg_temp.k('deterministic')), NULL);
SET enable_seqscan = off;
SELECT id FROM up_users WHERE email = encml.det_encrypt('user321@example.org', pg_temp.k('deterministic'));
INSERT INTO up_pay VALUES (501, encml.ore_encrypt(12345, pg_temp.k('ore')), NULL, NULL);
SELECT array_agg(id ORDER BY id) AS ids FROM up_pay
 WHERE amount BETWEEN encml.ore_encrypt(12345, pg_temp.k('ore')) AND encml.ore_encrypt(12400, pg_temp.k('ore'));
RESET enable_seqscan;

-- Tenants: a member writes with the tenant key and sees only its rows.
SET ROLE encml_up_member;
SELECT encml.set_tenant('up-acme');
INSERT INTO up_tenant_docs (id, body) VALUES (16, encml.encrypt('acme doc 16', encml.tenant_key()));
SELECT count(*) AS acme_rows, bool_and(encml.decrypt_text(body) = 'acme doc ' || id) AS decrypt FROM up_tenant_docs;
SELECT encml.reset_tenant();
RESET ROLE;

-- A privacy charge against the old budget.
SET ROLE encml_up_analyst;
SELECT encml.dp_count(salary, 0.25) IS NOT NULL AS released FROM up_salaries;
RESET ROLE;
SELECT epsilon_total, epsilon_spent FROM encml.privacy_budget WHERE analyst = 'encml_up_analyst'::regrole AND scope = 'default';

-- A DP-only table (0.2.0): the analyst's plain read is refused, a dp query passes.
CREATE TABLE up_dp_people (person int PRIMARY KEY, age int);
INSERT INTO up_dp_people SELECT g, 20 + g % 40 FROM generate_series(1, 100) g;
GRANT SELECT ON up_dp_people TO encml_up_analyst;
SELECT encml.dp_protect('up_dp_people', 'person');
SET ROLE encml_up_analyst;
DO $$ BEGIN PERFORM * FROM up_dp_people; RAISE EXCEPTION 'read'; EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'plain read refused'; END $$;
SELECT encml.dp_count(age, 0.25) IS NOT NULL AS dp_read FROM up_dp_people;
RESET ROLE;
SELECT encml.dp_unprotect('up_dp_people');
DROP TABLE up_dp_people;

-- The audit chain grows and still verifies.
INSERT INTO up_patients VALUES (41, 'patient 41', '000000041');
SELECT encml.audit_seal() > 0 AS sealed;
SELECT ok FROM encml.audit_verify();
SELECT new_row ->> 'ssn' <> '000000041' AS ssn_redacted FROM encml.audit_log
 WHERE table_name = 'public.up_patients' AND operation = 'INSERT' AND new_row ->> 'id' = '41';

-- Auditing is complete: the partition got the TRUNCATE trigger 0.1.0 did not give it, and the
-- extension's event triggers are there, enabled ALWAYS.
SELECT * FROM encml.audit_state();
TRUNCATE up_visits_1;
SELECT operation FROM encml.audit_log WHERE table_name = 'public.up_visits_1' ORDER BY id DESC LIMIT 1;
SELECT ok FROM encml.audit_verify();

-- Masking rules change and the views follow.
SELECT encml.set_masking_rule('up_customers', 'name', 'partial(2, 0)', '{encml_up_support}');
SELECT encml.apply_masking('up_customers');
SET ROLE encml_up_reader;
SELECT id, name FROM up_customers_masked WHERE id = 1;
RESET ROLE;

-- A consent recorded next to the old ones.
SET ROLE encml_up_app;
SELECT encml.record_consent('alice', 'analytics', true, 'after the upgrade') > 0 AS recorded,
       encml.has_consent('alice', 'analytics') AS in_force;
RESET ROLE;

-- Erasure of a subject registered before the upgrade.
SELECT encml.subject_forget('bob') IS NOT NULL AS forgotten;
SELECT user_id FROM up_subjects ORDER BY 1;
SELECT count(*) AS bob_tickets FROM up_tickets
 WHERE owner = ANY (encml.det_encrypt_all_versions('bob', pg_temp.k('deterministic')));

-- Key sets and rounds from before the update have no CRS and stay unproven (0.2.0); a new round
-- of such a key set needs unproven => true.
SELECT name, proof_crs IS NULL AS no_crs FROM encml.fhe_key_sets ORDER BY 1;
SELECT r.name, s.proven, s.decryptor, s.dp_epsilon FROM up_rounds r
  JOIN encml.fhe_round_status s ON s.id = r.id ORDER BY 1;
SELECT pg_temp.try(format('SELECT encml.fhe_open_round(%L, 3, min_contributions => 3)',
                          (SELECT id FROM encml.fhe_key_sets WHERE kind = 'vector'))) AS needs_unproven;
-- The open FHE round reaches its minimum, closes, and decrypts.
SET ROLE encml_up_fhe_3;
SELECT encml.fhe_submit((SELECT id FROM up_rounds WHERE name = 'open'), u) FROM up_fhe_updates WHERE i = 5;
RESET ROLE;
SELECT encml.fhe_close_round((SELECT id FROM up_rounds WHERE name = 'open')) AS contributions;
SET encml.fhe_client_functions = on;
SELECT encml.fhe_decrypt(encml.fhe_round_sum((SELECT id FROM up_rounds WHERE name = 'open')),
                         (SELECT material FROM up_secrets WHERE name = 'fhe-vector')) AS round_sum;
RESET encml.fhe_client_functions;

-- New keys of every purpose, and crypto-shredding.
SELECT count(encml.create_key('up-after-' || p, p)) AS created FROM unnest(ARRAY['aead', 'deterministic', 'ore', 'hmac', 'fpe']) p;
SELECT encml.destroy_key(id) AS erased FROM encml.keys WHERE name = 'up-after-aead';

-- Classifications name their columns (0.2.0): the update named the existing ones.
SELECT c.table_oid::regclass::text AS classified_table, c.column_name, c.label,
       c.column_name = a.attname::text AS name_matches_attnum
  FROM encml.column_classes c
  LEFT JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped
 ORDER BY 1, 2;

-- Registrations of subject-identifier columns know their columns by number (0.2.0): the update
-- numbered the existing ones.
SELECT s.tbl::text AS registered_table, s.col, a.attname IS NOT NULL AS number_matches_name
  FROM encml.subject_columns s
  LEFT JOIN pg_attribute a ON a.attrelid = s.tbl AND a.attnum = s.attnum AND a.attname = s.col
 ORDER BY 1, 2;
