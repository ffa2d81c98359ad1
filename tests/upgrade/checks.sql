-- Reads back everything tests/upgrade/fill-0.1.0.sql stored and prints only what must not
-- change: plaintexts (compared with what was encrypted), search results, key states, budgets and
-- ledger rows, the audit chain, masks, tenants, subjects and FHE sums. Run before the upgrade,
-- after it and in a restored dump; every run must print tests/upgrade/expected/checks.out. It
-- writes nothing the snapshot compares except refusal events, and runs before the snapshot.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<key>', 'g');
END
$$;
-- Whether the plan of a query reads the index (an index, index-only or bitmap scan: which one
-- depends on the visibility map, which a restore resets).
CREATE FUNCTION pg_temp.uses_index(q text, idx text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON, COSTS OFF) ' || q INTO p;
    RETURN p LIKE '%"Index Name": "' || idx || '"%';
END
$$;
CREATE FUNCTION pg_temp.k(n text) RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT id FROM public.up_keys WHERE name = n $$;

-- Keys: names, tenants, purposes, versions and their states.
SELECT k.name, coalesce(k.tenant, '-') AS tenant, k.purpose, k.version, k.status, k.managed,
       string_agg(v.version || ':' || v.status, ' ' ORDER BY v.version) AS versions
  FROM encml.keys k JOIN encml.key_versions v ON v.key_id = k.id
 WHERE k.name LIKE 'up-%' OR k.tenant LIKE 'up-%'
 GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 2, 1;
SELECT purpose, status, count(*) AS subject_keys FROM encml.keys
 WHERE name LIKE 'subject\_key:%' GROUP BY 1, 2 ORDER BY 1, 2;

-- enc_bytea: every value decrypts to what was encrypted, under both versions.
SELECT encml.key_version(body) AS version, count(*),
       bool_and(encml.decrypt_text(body, 'up_notes:' || id) = 'note ' || id) AS bodies_decrypt,
       bool_and(encml.decrypt(raw) = decode(md5(id::text), 'hex')) AS bytes_decrypt
  FROM up_notes WHERE id <= 200 GROUP BY 1 ORDER BY 1;
SELECT encml.decrypt_text(body) AS retired_key_value FROM up_notes WHERE id = 1000;
SELECT pg_temp.try('SELECT encml.decrypt(body) FROM up_notes WHERE id = 1001') AS destroyed_key_value;
SELECT pg_temp.try('SELECT encml.decrypt_text(body, ''wrong'') FROM up_notes WHERE id = 1') AS wrong_aad;

-- det_text: decryption, equality search through the unique and hash indexes, uniqueness.
SET enable_seqscan = off;
SELECT bool_and(encml.det_decrypt(email) = 'user' || id || '@example.org') AS emails_decrypt,
       count(*) FILTER (WHERE encml.key_version(email) = 1) AS v1,
       count(*) FILTER (WHERE encml.key_version(email) = 2) AS v2
  FROM up_users;
SELECT pg_temp.uses_index($$SELECT id FROM up_users WHERE email = ANY (encml.det_encrypt_all_versions('user42@example.org', pg_temp.k('deterministic')))$$,
                          'up_users_email_key') AS unique_index,
       pg_temp.uses_index($$SELECT id FROM up_users WHERE team = encml.det_encrypt('team3', pg_temp.k('deterministic'))$$,
                          'up_users_team') AS hash_index;
SELECT id FROM up_users WHERE email = ANY (encml.det_encrypt_all_versions('user42@example.org', pg_temp.k('deterministic')));
SELECT id FROM up_users WHERE email = encml.det_encrypt('user310@example.org', pg_temp.k('deterministic'));
SELECT count(*) AS team_3 FROM up_users WHERE team = ANY (encml.det_encrypt_all_versions('team3', pg_temp.k('deterministic')));
SELECT pg_temp.try($$INSERT INTO up_users VALUES (9999, encml.det_encrypt('user310@example.org', pg_temp.k('deterministic')))$$) AS duplicate;
SELECT pg_temp.try('SELECT encml.det_decrypt(email) FROM up_gone') AS destroyed_det_key;

-- ORE: ranges and order through the btree indexes equal the plaintext answers.
SELECT pg_temp.uses_index($$SELECT count(*) FROM up_pay WHERE amount BETWEEN encml.ore_encrypt(1000, pg_temp.k('ore')) AND encml.ore_encrypt(50000, pg_temp.k('ore'))$$,
                          'up_pay_amount') AS range_index,
       pg_temp.uses_index($$SELECT id FROM up_pay ORDER BY paid LIMIT 5$$, 'up_pay_paid') AS order_index;
SELECT count(*) = (SELECT count(*) FROM generate_series(1, 500) i WHERE i * 7919 % 100000 BETWEEN 1000 AND 50000) AS range_matches,
       count(*) AS in_range
  FROM up_pay WHERE amount BETWEEN encml.ore_encrypt(1000, pg_temp.k('ore')) AND encml.ore_encrypt(50000, pg_temp.k('ore'));
SELECT array_agg(id ORDER BY amount) AS lowest_five FROM (SELECT id, amount FROM up_pay ORDER BY amount LIMIT 5) s;
SELECT count(*) AS paid_in_first_day FROM up_pay
 WHERE paid < encml.ore_encrypt(timestamptz '2026-01-02 00:00:00+00', pg_temp.k('ore'));
SELECT bool_and(encml.ore_decrypt(amount) = i * 7919 % 100000) AS ints_decrypt,
       bool_and(encml.ore_decrypt(score) = i / 8.0) AS floats_decrypt,
       bool_and(encml.ore_decrypt(paid) = timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour') AS times_decrypt
  FROM (SELECT id AS i, amount, score, paid FROM up_pay) s;
RESET enable_seqscan;

-- Tokens.
SELECT bool_and(encml.detokenize_pan(pan_token, pg_temp.k('fpe')) = pan) AS pans,
       bool_and(encml.fpe_decrypt(account_token, pg_temp.k('fpe')) = account) AS accounts,
       bool_and(right(pan_token, 4) = right(pan, 4) AND pan_token <> pan) AS last_four_kept,
       count(DISTINCT pan_token) AS distinct_tokens
  FROM up_cards;

-- Tensors, JSON fields, the encrypted large object.
SELECT bool_and(encml.decrypt_tensor_real(weights, 'model:' || id) = ARRAY[[id, 0.5, -1.25], [2, 3, id / 3.0]]::real[]) AS tensors,
       bool_and(encml.decrypt_tensor_int(ints) = ARRAY[id, -id, 42]) AS int_tensors,
       bool_and(encml.decrypt_jsonb(doc) = jsonb_build_object('name', 'model ' || id, 'weights', jsonb_build_array(id, id + 1),
                                                             'layers', jsonb_build_array(jsonb_build_object('bias', id * 0.1)))) AS documents,
       bool_and(doc ->> 'name' = 'model ' || id) AS metadata_in_clear
  FROM up_models;
SELECT encml.lo_decrypt(checkpoint) AS decrypted_lo FROM up_models WHERE id = 1 \gset
SELECT md5(lo_get(:decrypted_lo)) = md5(convert_to(repeat('checkpoint bytes ', 5000), 'UTF8')) AS checkpoint,
       lo_unlink(:decrypted_lo) AS unlinked;

-- Tenants: isolation and tenant keys for members, refusal for others.
SELECT name, schema_name, forgotten_at IS NOT NULL AS forgotten FROM encml.tenants WHERE name LIKE 'up-%' ORDER BY name;
SELECT tenant, member::text FROM encml.tenant_members WHERE tenant LIKE 'up-%' ORDER BY 1, 2;
SET ROLE encml_up_member;
SELECT encml.set_tenant('up-acme');
SELECT count(*) AS acme_rows, bool_and(encml.decrypt_text(body) = 'acme doc ' || id) AS acme_decrypts FROM up_tenant_docs;
SELECT pg_temp.try($$SELECT encml.set_tenant('up-globex')$$) AS foreign_tenant;
SELECT encml.reset_tenant();
SELECT count(*) AS rows_without_tenant FROM up_tenant_docs;
RESET ROLE;
SET ROLE encml_up_outsider;
SELECT encml.set_tenant('up-globex');
SELECT count(*) AS globex_rows, bool_and(encml.decrypt_text(body) = 'globex doc ' || id) AS globex_decrypts FROM up_tenant_docs;
SELECT encml.reset_tenant();
RESET ROLE;
SELECT has_schema_privilege('encml_up_member', 'up_acme', 'USAGE') AS member_uses_tenant_schema,
       has_schema_privilege('encml_up_outsider', 'up_acme', 'USAGE') AS outsider_does_not;

-- Grants, labels, clearances and conditions.
SELECT k.name, g.grantee::text, g.privilege FROM encml.key_grants g JOIN public.up_keys k ON k.id = g.key_id ORDER BY 1, 2, 3;
SELECT encml.key_labels(pg_temp.k('labelled')) AS labels;
SELECT grantee::text, label FROM encml.clearances ORDER BY 1, 2;
SELECT label, application_names FROM encml.clearance_conditions ORDER BY 1;
SET ROLE encml_up_reader;
SELECT bool_and(encml.decrypt_text(body, 'up_notes:' || id) = 'note ' || id) AS reader_decrypts FROM up_notes WHERE id <= 200;
SELECT pg_temp.try('SELECT encml.decrypt_text(note) FROM up_phi') AS phi_outside_the_application;
SET application_name = 'up_ehr';
SELECT bool_and(encml.decrypt_text(note) = 'phi note ' || id) AS phi_in_the_application FROM up_phi;
RESET application_name;
RESET ROLE;
GRANT SELECT ON up_notes TO encml_up_outsider;
SET ROLE encml_up_outsider;
SELECT pg_temp.try('SELECT encml.decrypt_text(body, ''up_notes:1'') FROM up_notes WHERE id = 1') AS no_grant;
RESET ROLE;
REVOKE SELECT ON up_notes FROM encml_up_outsider;

-- Privacy budgets and the ledger.
SELECT analyst::text, scope, epsilon_total, epsilon_spent, delta_total, delta_spent
  FROM encml.privacy_budget WHERE analyst::text LIKE 'encml_up_%' ORDER BY 1, 2;
SELECT analyst::text, scope, epsilon, delta, granted, note, length(query_hash) AS hash_length
  FROM encml.privacy_ledger WHERE analyst::text LIKE 'encml_up_%' ORDER BY id;

-- The audit chain: verifies, with the anchor of the purge, every row checked. (Whether auditing
-- is complete, which a 0.1.0 schema is not, is after.sql's audit_state.)
SELECT encml.audit_seal() >= 0 AS sealed;
SELECT id IS NOT NULL AS has_head, mac ~ '^[0-9a-f]{64}$' AS head_mac FROM encml.audit_head();
SELECT first_bad_id IS NULL AND detail ~ '(verified|verifies) through' AS chain_intact,
       rows_checked = (SELECT count(*) FROM encml.audit_log) AS every_row_checked,
       rows_checked > 100 AS rows_before_the_purge_are_gone
  FROM encml.audit_verify();
SELECT operation, count(*) FROM encml.audit_log
 WHERE table_name = 'public.up_patients' AND kind = 'row' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS anchors FROM encml.audit_log WHERE kind = 'anchor';
SELECT table_oid::regclass AS audited_table, redact FROM encml.audited_tables ORDER BY 1;
SELECT table_name::text, column_name, label FROM encml.classified_columns ORDER BY 1, 2;

-- Masking: rules, the masked view for a masked and an unmasked reader.
SELECT tbl::text, col, mask, unmasked_roles FROM encml.masking_rules ORDER BY 1, 2;
SET ROLE encml_up_reader;
SELECT * FROM up_customers_masked WHERE id <= 2 ORDER BY id;
SELECT * FROM up_stored_masked WHERE id <= 2 ORDER BY id;
SELECT pg_temp.try('SELECT * FROM up_customers') AS base_table;
RESET ROLE;
SET ROLE encml_up_support;
SELECT * FROM up_customers_masked WHERE id <= 2 ORDER BY id;
SELECT * FROM up_stored_masked WHERE id <= 2 ORDER BY id;
RESET ROLE;

-- Data subjects: registrations, per-subject keys, consents, the erased subject.
SELECT tbl::text, col, id_kind, on_forget FROM encml.subject_registry ORDER BY 1, 2;
SET ROLE encml_up_app;
SELECT encml.has_consent('alice', 'model_training') AS alice_consents,
       encml.has_consent('bob', 'model_training') AS bob_withdrew;
SELECT user_id, encml.decrypt_text(email) AS email FROM up_subjects ORDER BY 1;
SELECT doc ->> 'format' AS format, doc ->> 'subject' AS subject,
       jsonb_array_length(doc -> 'tables') AS tables_with_rows
  FROM (SELECT encml.subject_export('alice') AS doc) s;
RESET ROLE;
SELECT id, encml.det_decrypt(owner) AS owner FROM up_tickets ORDER BY id;

-- FHE: key sets, the closed round's sum, the sum of stored updates, uint32 values.
SELECT name, kind FROM encml.fhe_key_sets ORDER BY 1;
SET encml.fhe_client_functions = on;
SELECT encml.fhe_decrypt(encml.fhe_round_sum((SELECT id FROM up_rounds WHERE name = 'closed')),
                         (SELECT material FROM up_secrets WHERE name = 'fhe-vector')) AS closed_round_sum;
SELECT pg_temp.try('SELECT encml.fhe_round_sum((SELECT id FROM up_rounds WHERE name = ''open''))') AS open_round_sum;
SELECT encml.fhe_decrypt(encml.fhe_vector_sum(u), (SELECT material FROM up_secrets WHERE name = 'fhe-vector')) AS all_updates
  FROM up_fhe_updates;
SELECT i, encml.fhe_decrypt_uint32(amount, (SELECT material FROM up_secrets WHERE name = 'fhe-uint32')) AS amount
  FROM up_fhe_amounts ORDER BY i;
RESET encml.fhe_client_functions;

-- Security events were recorded (refusals above add more; the count only grows).
SELECT count(*) > 0 AS refusals_recorded FROM encml.security_events WHERE severity IS NOT NULL;
