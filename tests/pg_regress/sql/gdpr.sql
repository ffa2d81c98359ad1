-- GDPR data-subject rights: where a subject's rows are (plain, det_text and FF1-tokenized
-- identifiers), per-subject keys, export, erasure with crypto-shredding and its audit record,
-- and consent that filters an ML training view and follows a withdrawal.
SET client_min_messages = warning;
CREATE ROLE encml_gdpr_app;
CREATE ROLE encml_gdpr_dpo;
CREATE ROLE encml_gdpr_trainer;
CREATE ROLE encml_gdpr_nobody;
RESET client_min_messages;
GRANT encml_subject_processor TO encml_gdpr_app;
GRANT encml_dpo TO encml_gdpr_dpo;
SELECT coalesce(max(id), 0) AS audit_base FROM encml.audit_log \gset

-- Three tables, three kinds of identifier: plain text, det_text, an FF1 token of a number.
SELECT encml.create_key('gdpr-lookup', 'deterministic') AS lookup_key \gset
SELECT encml.create_key('gdpr-tokens', 'fpe') AS token_key \gset
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO encml_gdpr_dpo;
CREATE TABLE gdpr_users (user_id text PRIMARY KEY, email encml.enc_bytea, country text);
CREATE TABLE gdpr_tickets (id int, owner encml.det_text, body encml.enc_bytea, opened date);
CREATE TABLE gdpr_payments (id int, customer_no text, amount numeric NOT NULL, card_last4 text);
SELECT encml.classify('gdpr_payments', 'card_last4', 'pci');
SELECT encml.grant_key(:'lookup_key', 'encml_gdpr_app', 'encrypt');
SELECT encml.grant_key(:'lookup_key', 'encml_gdpr_dpo', 'encrypt');
SELECT encml.grant_key(:'token_key', 'encml_gdpr_app', 'encrypt');
SELECT encml.grant_key(:'token_key', 'encml_gdpr_dpo', 'encrypt');
GRANT SELECT, INSERT, UPDATE, DELETE ON gdpr_users, gdpr_tickets, gdpr_payments TO encml_gdpr_app, encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_users', 'user_id');
SELECT encml.register_subject_column('gdpr_tickets', 'owner', :'lookup_key');
SELECT encml.register_subject_column('gdpr_payments', 'customer_no', :'token_key', 'anonymize');
SELECT tbl, col, id_kind, id_key = :'token_key' AS token_key, on_forget FROM encml.subject_registry ORDER BY tbl::text;
-- Registration errors.
SELECT try($$SELECT encml.register_subject_column('gdpr_users', 'nope')$$) AS unknown_column;
SELECT try($$SELECT encml.register_subject_column('gdpr_tickets', 'owner')$$) AS det_text_without_key;
SELECT try($$SELECT encml.register_subject_column('gdpr_users', 'email')$$) AS randomized_identifier;
SELECT try($$SELECT encml.register_subject_column('gdpr_tickets', 'owner', encml.create_key('gdpr-wrong'))$$) AS wrong_purpose;
SELECT try($$SELECT encml.register_subject_column('gdpr_users', 'user_id', NULL, 'shred')$$) AS unknown_action;
SELECT try($$SELECT encml.register_subject_column('gdpr_payments', 'amount', NULL, 'anonymize')$$) AS anonymize_not_null;
SET ROLE encml_gdpr_app;
SELECT try($$SELECT encml.register_subject_column('gdpr_users', 'country')$$) AS not_owner;

-- The application writes with per-subject keys; ids as plain, det_text and tokens.
SELECT encml.subject_key('alice') = encml.subject_key('alice') AS same_key_twice,
       encml.subject_key('alice') <> encml.subject_key('bob') AS own_key_per_subject,
       encml.subject_key('alice') <> encml.subject_key('alice', 'deterministic') AS own_key_per_purpose;
INSERT INTO gdpr_users VALUES
    ('alice', encml.encrypt('alice@example.org', encml.subject_key('alice')), 'FR'),
    ('bob', encml.encrypt('bob@example.org', encml.subject_key('bob')), 'DE');
INSERT INTO gdpr_tickets VALUES
    (1, encml.det_encrypt('alice', :'lookup_key'), encml.encrypt('my parcel is late', encml.subject_key('alice')), '2026-01-05'),
    (2, encml.det_encrypt('alice', :'lookup_key'), encml.encrypt('thanks!', encml.subject_key('alice')), '2026-01-09'),
    (3, encml.det_encrypt('bob', :'lookup_key'), encml.encrypt('refund please', encml.subject_key('bob')), '2026-02-01');
-- Customer numbers are digits: the subject 'alice' has the number 4000123456 in this shop.
INSERT INTO gdpr_payments VALUES
    (1, encml.fpe_encrypt('4000123456', :'token_key'), 19.90, '1111'),
    (2, encml.fpe_encrypt('4000123456', :'token_key'), 5.00, '1111'),
    (3, encml.fpe_encrypt('4000999999', :'token_key'), 7.50, '4444');
SELECT count(*) AS alice_rows_hidden_by_tokens FROM gdpr_payments WHERE customer_no = '4000123456';
RESET ROLE;
-- Subject keys belong to the extension: only processors use them, nobody else.
SELECT purpose, managed, tenant, name LIKE 'subject_key:%' AS reserved_name, name LIKE '%alice%' AS name_shows_subject
  FROM encml.keys WHERE id = encml.subject_key('alice');
SET ROLE encml_gdpr_nobody;
SELECT try($$SELECT encml.subject_key('alice')$$) AS not_a_processor;
RESET ROLE;
SELECT try($$SELECT encml.create_key('subject_key:aead:x')$$) AS reserved_prefix;

-- Right of access: one document with the rows of all three tables, decrypted for the app.
SET ROLE encml_gdpr_app;
SELECT encml.subject_export('alice') AS doc \gset
SELECT :'doc'::jsonb ->> 'format' AS format, :'doc'::jsonb ->> 'subject' AS subject,
       jsonb_array_length(:'doc'::jsonb -> 'skipped') AS skipped;
SELECT t ->> 'table' AS "table", t ->> 'identifier' AS identifier, jsonb_array_length(t -> 'rows') AS rows,
       t ->> 'undecrypted_values' AS undecrypted
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t ORDER BY 1;
SELECT r ->> 'email' AS email, r ->> 'country' AS country
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t, jsonb_array_elements(t -> 'rows') r
 WHERE t ->> 'table' = 'public.gdpr_users';
SELECT r ->> 'id' AS id, r ->> 'body' AS body
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t, jsonb_array_elements(t -> 'rows') r
 WHERE t ->> 'table' = 'public.gdpr_tickets' ORDER BY 1;
SELECT r ->> 'id' AS id, r ->> 'amount' AS amount
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t, jsonb_array_elements(t -> 'rows') r
 WHERE t ->> 'table' = 'public.gdpr_payments' ORDER BY 1;
RESET ROLE;
-- Registered as the subject 'alice' is also her customer number in payments: exporting by the
-- number finds the payments; bob's export never holds alice's rows.
SELECT (SELECT sum(jsonb_array_length(t -> 'rows')) FROM jsonb_array_elements(encml.subject_export('4000123456') -> 'tables') t) AS rows_for_number,
       (SELECT sum(jsonb_array_length(t -> 'rows')) FROM jsonb_array_elements(encml.subject_export('bob') -> 'tables') t) AS rows_for_bob;
-- A reader without the key grants and without table rights: skipped tables, values flagged.
GRANT SELECT ON gdpr_users TO encml_gdpr_nobody;
SET ROLE encml_gdpr_nobody;
SELECT encml.subject_export('alice') AS doc \gset
SELECT s ->> 'table' AS "table", s ->> 'reason' AS reason
  FROM jsonb_array_elements(:'doc'::jsonb -> 'skipped') s ORDER BY 1;
SELECT r -> 'email' ->> 'reason' AS email_reason, (r -> 'email' ->> 'encrypted') IS NOT NULL AS ciphertext_kept
  FROM jsonb_array_elements(:'doc'::jsonb -> 'tables') t, jsonb_array_elements(t -> 'rows') r;
RESET ROLE;
-- Exports are audited, without the subject.
SELECT operation, detail ->> 'rows' AS rows, detail::text LIKE '%alice%' AS names_subject
  FROM encml.audit_log WHERE id > :audit_base AND operation = 'subject_export' ORDER BY id LIMIT 1;

-- Consent: history kept, the latest decision holds; an ML training view sees only consenting
-- subjects and follows a withdrawal.
SET ROLE encml_gdpr_app;
SELECT encml.record_consent('alice', 'model_training', true, 'signup form v3') > 0 AS recorded;
SELECT encml.record_consent('bob', 'model_training', true, 'signup form v3') > 0 AS recorded;
SELECT encml.record_consent('bob', 'marketing', false) > 0 AS recorded;
SELECT encml.has_consent('alice', 'model_training') AS alice, encml.has_consent('bob', 'marketing') AS bob_marketing,
       encml.has_consent('carol', 'model_training') AS carol_never_asked;
SELECT try($$SELECT encml.record_consent('alice', 'Model Training', true)$$) AS bad_purpose;
RESET ROLE;
SET ROLE encml_gdpr_nobody;
SELECT try($$SELECT encml.record_consent('alice', 'marketing', true)$$) AS not_allowed;
SELECT count(*) AS history_hidden FROM encml.consent_history;
RESET ROLE;
CREATE VIEW gdpr_training_set AS
    SELECT u.user_id, u.country, t.opened FROM gdpr_users u JOIN gdpr_tickets t ON encml.det_decrypt(t.owner) = u.user_id
     WHERE encml.has_consent(u.user_id, 'model_training');
GRANT SELECT ON gdpr_training_set TO encml_gdpr_trainer;
GRANT SELECT ON gdpr_tickets TO encml_gdpr_trainer;
SELECT encml.grant_key(:'lookup_key', 'encml_gdpr_trainer', 'decrypt');
SET ROLE encml_gdpr_trainer;
SELECT user_id, count(*) FROM gdpr_training_set GROUP BY 1 ORDER BY 1;
RESET ROLE;
-- Bob withdraws in another transaction: the next statement no longer sees him.
SET ROLE encml_gdpr_app;
SELECT encml.record_consent('bob', 'model_training', false, 'privacy settings page') > 0 AS withdrawn;
RESET ROLE;
SET ROLE encml_gdpr_trainer;
SELECT user_id, count(*) FROM gdpr_training_set GROUP BY 1 ORDER BY 1;
RESET ROLE;
-- The same filter as a row-level security policy on the base table.
ALTER TABLE gdpr_users ENABLE ROW LEVEL SECURITY;
CREATE POLICY gdpr_training ON gdpr_users FOR SELECT TO encml_gdpr_trainer
    USING (encml.has_consent(user_id, 'model_training'));
GRANT SELECT ON gdpr_users TO encml_gdpr_trainer;
SET ROLE encml_gdpr_trainer;
SELECT user_id FROM gdpr_users ORDER BY 1;
RESET ROLE;
-- A withdrawal rolled back leaves the grant in force.
BEGIN;
SELECT encml.record_consent('alice', 'model_training', false) > 0 AS withdrawn;
SELECT encml.has_consent('alice', 'model_training') AS inside_transaction;
ROLLBACK;
SELECT encml.has_consent('alice', 'model_training') AS after_rollback;
SELECT subject, purpose, granted, source, recorded_by FROM encml.consent_history ORDER BY id;
ALTER TABLE gdpr_users DISABLE ROW LEVEL SECURITY;

-- Right to erasure. Keep a copy of alice's ciphertexts, as a backup or an export would.
CREATE TABLE gdpr_backup AS SELECT email AS value FROM gdpr_users WHERE user_id = 'alice'
    UNION ALL SELECT body FROM gdpr_tickets WHERE id IN (1, 2);
SELECT count(*) AS decryptable_before FROM gdpr_backup WHERE encml.decrypt_text(value) IS NOT NULL;
SET ROLE encml_gdpr_app;
SELECT try($$SELECT encml.subject_forget('alice')$$) AS app_cannot_erase;
RESET ROLE;
SET ROLE encml_gdpr_dpo;
SELECT encml.subject_forget('alice') AS receipt \gset
RESET ROLE;
SELECT :'receipt'::jsonb -> 'tables' AS tables, :'receipt'::jsonb ->> 'keys_destroyed' AS keys_destroyed,
       :'receipt'::jsonb ->> 'consent_records_deleted' AS consents, :'receipt'::jsonb ->> 'erased_by' AS erased_by;
SELECT user_id FROM gdpr_users ORDER BY 1;
SELECT id FROM gdpr_tickets ORDER BY 1;
SELECT id, customer_no IS NULL AS id_gone, amount, card_last4 FROM gdpr_payments ORDER BY id;
-- The customer number was registered separately: erase it as its own subject too.
SET ROLE encml_gdpr_dpo;
SELECT encml.subject_forget('4000123456') -> 'tables' AS number_erased;
RESET ROLE;
SELECT id, customer_no IS NULL AS id_gone, amount, card_last4 FROM gdpr_payments ORDER BY id;
-- Nobody, not even a superuser, decrypts the copies any more.
SELECT regexp_replace(try($$SELECT encml.decrypt_text(value) FROM gdpr_backup LIMIT 1$$), 'key [0-9a-f-]+', 'key <k>') AS superuser_decrypts_backup;
SET ROLE encml_gdpr_app;
SELECT try($$SELECT encml.decrypt_text(value) FROM gdpr_backup LIMIT 1$$) AS app_decrypts_backup;
RESET ROLE;
SELECT status, awaiting_master_key_rotation FROM encml.keys
 WHERE id IN (SELECT encml.key_id(value) FROM gdpr_backup) GROUP BY 1, 2;
-- Bob is untouched; a new call makes alice a fresh key (new data, new key).
SELECT user_id, encml.decrypt_text(email) FROM gdpr_users;
SELECT encml.subject_export('alice') -> 'tables' -> 0 -> 'rows' AS alice_rows_left;
SELECT encml.has_consent('alice', 'model_training') AS alice_consent_left;
-- The erasure record: what, when, by whom, without the subject, and the chain verifies.
SELECT operation, effective_role, detail ->> 'erasure_id' = :'receipt'::jsonb ->> 'erasure_id' AS matches_receipt,
       detail::text LIKE '%alice%' AS names_subject
  FROM encml.audit_log WHERE id > :audit_base AND operation = 'subject_forget' ORDER BY id LIMIT 1;
SELECT ok FROM encml.audit_verify();
SELECT status FROM encml.compliance_report() WHERE check_name = 'erasure_in_backups';
-- A rotation to the same master key does not count (tests/integration/master_key.sh moves to a
-- new one).
SELECT encml.rotate_master_key() >= 0 AS rotated;
SELECT status FROM encml.compliance_report() WHERE check_name = 'erasure_in_backups';

-- Rows erased under audit leave no copy of their values in the log.
SELECT encml.audit_enable('gdpr_users');
INSERT INTO gdpr_users VALUES ('carol', NULL, 'IT');
SET ROLE encml_gdpr_dpo;
SELECT encml.subject_forget('carol') -> 'tables' -> 0 AS carol_users;
RESET ROLE;
SELECT operation, old_row IS NULL AS no_row_image, detail ? 'erasure' AS tagged
  FROM encml.audit_log WHERE id > :audit_base AND table_name = 'public.gdpr_users' ORDER BY id;
-- Only the erased rows lose their images: what an owner's trigger changes meanwhile in another
-- audited table, or inserts, is logged as usual (it was all left out, hiding such changes).
CREATE TABLE gdpr_ledger (note text);
INSERT INTO gdpr_ledger VALUES ('before');
SELECT encml.audit_enable('gdpr_ledger');
CREATE FUNCTION gdpr_touch_ledger() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE public.gdpr_ledger SET note = 'changed during an erasure'; RETURN OLD; END$$;
CREATE TRIGGER touch_ledger AFTER DELETE ON gdpr_users FOR EACH ROW EXECUTE FUNCTION gdpr_touch_ledger();
INSERT INTO gdpr_users VALUES ('dave', NULL, 'ES');
SELECT max(id) AS ledger_base FROM encml.audit_log \gset
SET ROLE encml_gdpr_dpo;
SELECT encml.subject_forget('dave') -> 'tables' -> 0 -> 'rows' AS dave_rows;
RESET ROLE;
SELECT table_name, operation, old_row IS NULL AS no_row_image, new_row->>'note' AS new_note, coalesce(detail ? 'erasure', false) AS tagged
  FROM encml.audit_log WHERE id > :ledger_base AND table_name IN ('public.gdpr_users', 'public.gdpr_ledger') ORDER BY id;
DROP TRIGGER touch_ledger ON gdpr_users;
DROP FUNCTION gdpr_touch_ledger();
SELECT encml.audit_disable('gdpr_ledger');
DROP TABLE gdpr_ledger;
SELECT encml.audit_disable('gdpr_users');

DROP VIEW gdpr_training_set;
SELECT encml.unregister_subject_column('gdpr_tickets', 'owner') AS unregistered,
       encml.unregister_subject_column('gdpr_payments', 'customer_no') AS unregistered,
       encml.unregister_subject_column('gdpr_payments', 'customer_no') AS again;
-- A dropped table's registration goes with it, whoever drops it.
DROP TABLE gdpr_users, gdpr_tickets, gdpr_payments, gdpr_backup;
SELECT count(*) AS registered_left FROM encml.subject_registry;
CREATE SCHEMA gdpr_app AUTHORIZATION encml_gdpr_app;
-- (Exports and erasures need USAGE on a table's schema, as any statement naming it.)
GRANT USAGE ON SCHEMA gdpr_app TO encml_gdpr_dpo;
SET ROLE encml_gdpr_app;
CREATE TABLE gdpr_app.sessions (user_id text, started timestamptz);
SELECT encml.register_subject_column('gdpr_app.sessions', 'user_id');
SELECT count(*) AS registered FROM encml.subject_registry;
DROP TABLE gdpr_app.sessions;
SELECT count(*) AS registered_left FROM encml.subject_registry;
-- Trojans for the DPO (attacker round 2): a table owner's own type with its own cast to text, or
-- a view calling the owner's function, would run the owner's code with the rights of whoever
-- exports or forgets. Only tables, and plain identifiers of built-in types.
CREATE TYPE gdpr_app.ident AS (v text);
CREATE FUNCTION gdpr_app.ident_text(gdpr_app.ident) RETURNS text LANGUAGE sql AS 'SELECT $1.v';
CREATE CAST (gdpr_app.ident AS text) WITH FUNCTION gdpr_app.ident_text(gdpr_app.ident);
CREATE TABLE gdpr_app.accounts (owner gdpr_app.ident, plain text);
SELECT try($$SELECT encml.register_subject_column('gdpr_app.accounts', 'owner')$$) AS own_type;
CREATE VIEW gdpr_app.accounts_v AS SELECT plain FROM gdpr_app.accounts;
SELECT try($$SELECT encml.register_subject_column('gdpr_app.accounts_v', 'plain')$$) AS a_view;
DROP VIEW gdpr_app.accounts_v;
-- Registered while built in, changed afterwards: export lists the table as skipped, before
-- comparing anything, and still exports the rest; an erasure fails whole, and erases nothing
-- (attacker round 6: it skipped the table with a WARNING, and the subject's rows there stayed).
SELECT encml.register_subject_column('gdpr_app.accounts', 'plain');
INSERT INTO gdpr_app.accounts VALUES (NULL, 'alice');
ALTER TABLE gdpr_app.accounts ALTER COLUMN plain TYPE gdpr_app.ident USING ROW(plain);
RESET ROLE;
SELECT s->>'table' AS table, s->>'reason' AS reason
  FROM jsonb_array_elements(encml.subject_export('alice')->'skipped') s;
SELECT try($$SELECT encml.subject_forget('alice')$$) AS changed_later;
SELECT count(*) AS kept FROM gdpr_app.accounts;
SET ROLE encml_gdpr_app;
SELECT encml.unregister_subject_column('gdpr_app.accounts', 'plain');
RESET ROLE;
-- Code the owner attaches to a registered table (a row-security policy, a cast of a column's
-- type to json) runs as the owner, in a restricted operation, not as whoever exports or erases
-- (attacker round 3). Identifiers compare byte for byte, whatever the column's collation.
SET ROLE encml_gdpr_app;
CREATE TABLE gdpr_app.spy_log (who text, what text);
-- (It also tries to leave the caller a search_path of its choosing: attacker round 4.)
CREATE FUNCTION gdpr_app.spy(what text) RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN
    INSERT INTO gdpr_app.spy_log VALUES (current_user, what);
    PERFORM set_config('search_path', 'gdpr_app, pg_catalog', false);
    RETURN true;
  END$$;
CREATE TYPE gdpr_app.mood AS ENUM ('calm', 'upset');
CREATE FUNCTION gdpr_app.mood_json(gdpr_app.mood) RETURNS json LANGUAGE plpgsql AS
  $$BEGIN PERFORM gdpr_app.spy('cast'); RETURN to_json($1::text); END$$;
CREATE CAST (gdpr_app.mood AS json) WITH FUNCTION gdpr_app.mood_json(gdpr_app.mood);
CREATE COLLATION gdpr_app.ci (provider = icu, locale = 'und-u-ks-level1', deterministic = false);
CREATE TABLE gdpr_app.moods (user_id text COLLATE gdpr_app.ci, mood gdpr_app.mood);
INSERT INTO gdpr_app.moods VALUES ('alice', 'calm'), ('ALICE', 'upset'), ('Alíce', 'upset');
-- (Policies never run: a table whose row-level security applies to the caller, or that forces
-- it on its owner, is skipped by the export and refused by the erasure; see attacker round 10.)
SELECT encml.register_subject_column('gdpr_app.moods', 'user_id');
GRANT SELECT, DELETE ON gdpr_app.moods TO PUBLIC;
RESET ROLE;
SELECT t->'rows' AS alice_only FROM jsonb_array_elements(encml.subject_export('alice')->'tables') t
 WHERE t->>'table' = 'gdpr_app.moods';
SELECT who, what, count(*) > 0 AS ran FROM gdpr_app.spy_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT current_setting('search_path') AS search_path_unchanged;
-- The owner's code runs in a session of its own, never in the caller's: it cannot read a large
-- object the caller opened, fetch from the caller's cursor, or release the caller's advisory
-- locks (attacker round 5).
SET ROLE encml_gdpr_app;
CREATE FUNCTION gdpr_app.peek() RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN
    BEGIN
      INSERT INTO gdpr_app.spy_log VALUES (current_user, 'lo: ' || encode(loread(0, 100), 'escape'));
    EXCEPTION WHEN others THEN INSERT INTO gdpr_app.spy_log VALUES (current_user, 'lo: ' || SQLERRM);
    END;
    BEGIN
      INSERT INTO gdpr_app.spy_log SELECT current_user, 'cursor: ' || (SELECT 1)::text FROM (SELECT 1) x
       WHERE EXISTS (SELECT FROM pg_cursors WHERE name = 'callers_cursor');
    END;
    PERFORM pg_advisory_unlock_all();
    RETURN true;
  END$$;
CREATE OR REPLACE FUNCTION gdpr_app.mood_json(gdpr_app.mood) RETURNS json LANGUAGE plpgsql AS
  $$BEGIN PERFORM gdpr_app.peek(); RETURN to_json($1::text); END$$;
RESET ROLE;
SELECT lo_from_bytea(0, 'the caller''s secret') AS callers_lo \gset
REVOKE ALL ON LARGE OBJECT :callers_lo FROM PUBLIC;
BEGIN;
SELECT lo_open(:callers_lo, 262144) AS callers_fd;
DECLARE callers_cursor CURSOR FOR SELECT 'the caller''s rows';
SELECT pg_advisory_lock(4242);
SELECT jsonb_array_length(encml.subject_export('alice') -> 'tables') > 0 AS exported;
COMMIT;
SELECT DISTINCT what FROM gdpr_app.spy_log WHERE what LIKE 'lo:%' OR what LIKE 'cursor:%';
SELECT count(*) AS still_locked FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid();
SELECT pg_advisory_unlock(4242);
SELECT lo_unlink(:callers_lo);
SET ROLE encml_gdpr_app;
CREATE OR REPLACE FUNCTION gdpr_app.mood_json(gdpr_app.mood) RETURNS json LANGUAGE plpgsql AS
  $$BEGIN PERFORM gdpr_app.spy('cast'); RETURN to_json($1::text); END$$;
DROP FUNCTION gdpr_app.peek();
RESET ROLE;
-- The erasure runs and commits in that session: a caller that has written in its transaction
-- is refused (the erasure could not see its rows), and a ROLLBACK afterwards does not undo it.
BEGIN;
INSERT INTO gdpr_app.spy_log VALUES ('dpo', 'note');
SELECT try($$SELECT encml.subject_forget('nobody-at-all')$$) AS after_a_write;
ROLLBACK;
-- A deferred constraint trigger on the owner's table would fire at the caller's COMMIT, with the
-- caller's rights, outside the restricted operation. The erasure sets all constraints
-- IMMEDIATE: it fires at the end of the statement, as the owner, restricted. Deferring it again
-- from the owner's code fails the erasure: Postgres refuses to queue a deferred event in a
-- restricted operation. Either way the owner's trigger never runs as the caller.
SET ROLE encml_gdpr_app;
CREATE FUNCTION gdpr_app.spy_later() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM gdpr_app.spy('deferred trigger'); RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER later AFTER DELETE ON gdpr_app.moods DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION gdpr_app.spy_later();
INSERT INTO gdpr_app.moods VALUES ('deferred-dora', 'calm'), ('deferred-dan', 'calm');
RESET ROLE;
RESET search_path;  -- (the cast's spy set it)
SELECT try($$SELECT encml.subject_forget('deferred-dora')$$) AS deferred_trigger;
SELECT who, count(*) AS deferred_trigger_ran FROM gdpr_app.spy_log WHERE what = 'deferred trigger' GROUP BY who;
SET ROLE encml_gdpr_app;
CREATE FUNCTION gdpr_app.defer_again() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN SET CONSTRAINTS ALL DEFERRED; RETURN NULL; END$$;
CREATE TRIGGER defer_again BEFORE DELETE ON gdpr_app.moods
  FOR EACH STATEMENT EXECUTE FUNCTION gdpr_app.defer_again();
RESET ROLE;
SELECT try($$SELECT encml.subject_forget('deferred-dan')$$) AS deferred_again;
SELECT count(*) AS dan_kept FROM gdpr_app.moods WHERE user_id COLLATE "C" = 'deferred-dan';
SELECT who, count(*) AS deferred_trigger_ran FROM gdpr_app.spy_log WHERE what = 'deferred trigger' GROUP BY who;
SET ROLE encml_gdpr_app;
DROP TRIGGER later ON gdpr_app.moods;
DROP TRIGGER defer_again ON gdpr_app.moods;
DROP FUNCTION gdpr_app.spy_later();
DROP FUNCTION gdpr_app.defer_again();
DELETE FROM gdpr_app.moods WHERE user_id COLLATE "C" = 'deferred-dan';
RESET ROLE;
RESET search_path;
BEGIN;
SELECT (encml.subject_forget('alice')->'tables') @> '[{"table": "gdpr_app.moods", "rows": 1}]' AS forgot_one;
ROLLBACK;
SELECT user_id FROM gdpr_app.moods ORDER BY 1;
SELECT DISTINCT who FROM gdpr_app.spy_log;
-- What the owner's code raises reaches the caller marked as raised there, never as the
-- extension's own words (attacker round 6: a warning and an error copied them); the error keeps
-- its SQLSTATE, the warning its context.
SET ROLE encml_gdpr_app;
CREATE FUNCTION gdpr_app.spoof() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
    RAISE WARNING 'subject erased: 0 row(s) in 0 registered column(s), 0 key(s) destroyed';
    RAISE EXCEPTION 'permission denied to erase data subjects (role dpo)' USING ERRCODE = '42501';
  END$$;
CREATE TRIGGER spoof BEFORE DELETE ON gdpr_app.moods FOR EACH ROW EXECUTE FUNCTION gdpr_app.spoof();
RESET ROLE;
\set SHOW_CONTEXT always
SELECT encml.subject_forget('ALICE');
\set SHOW_CONTEXT errors
SELECT count(*) AS kept FROM gdpr_app.moods WHERE user_id = 'ALICE' COLLATE "C";
SET ROLE encml_gdpr_app;
DROP TABLE gdpr_app.accounts, gdpr_app.moods, gdpr_app.spy_log;
DROP FUNCTION gdpr_app.spoof();
-- Row-level security that applies to the caller (attacker round 6): rows are read and erased as
-- the owner, and the caller's own policies cannot filter them without running the owner's code
-- with the caller's rights. An export skips the table; an erasure is refused, whole.
CREATE TABLE gdpr_app.notes (user_id text, note text);
INSERT INTO gdpr_app.notes VALUES ('bob', 'hidden from the dpo');
ALTER TABLE gdpr_app.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY nothing_for_the_dpo ON gdpr_app.notes TO encml_gdpr_dpo USING (false);
GRANT SELECT, DELETE ON gdpr_app.notes TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.notes', 'user_id');
SET ROLE encml_gdpr_dpo;
SELECT s->>'reason' AS skipped FROM jsonb_array_elements(encml.subject_export('bob')->'skipped') s
 WHERE s->>'table' = 'gdpr_app.notes';
SELECT try($$SELECT encml.subject_forget('bob')$$) AS policies_apply;
SET ROLE encml_gdpr_app;
SELECT count(*) AS kept FROM gdpr_app.notes;
DROP TABLE gdpr_app.notes;
-- Anonymizing nulls every column that can hold a ciphertext, recognised by type OID: a domain
-- over enc_bytea, an array of them (attacker round 6: a domain escaped, matched by name).
CREATE DOMAIN gdpr_app.sealed AS encml.enc_bytea;
CREATE TABLE gdpr_app.profiles (user_id text, bio gdpr_app.sealed, past encml.enc_bytea[], city text);
INSERT INTO gdpr_app.profiles VALUES ('carol', encml.encrypt('likes hiking', encml.subject_key('carol')),
    ARRAY[encml.encrypt('old bio', encml.subject_key('carol'))], 'Lyon');
GRANT SELECT, UPDATE ON gdpr_app.profiles TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.profiles', 'user_id', NULL, 'anonymize');
SET ROLE encml_gdpr_dpo;
SELECT t->'rows'->0->'bio'->>'reason' AS seen_as_ciphertext FROM jsonb_array_elements(encml.subject_export('carol')->'tables') t
 WHERE t->>'table' = 'gdpr_app.profiles';
SELECT (encml.subject_forget('carol')->'tables') @> '[{"table": "gdpr_app.profiles", "rows": 1}]' AS anonymized;
SET ROLE encml_gdpr_app;
SELECT user_id, bio, past, city FROM gdpr_app.profiles;
DROP TABLE gdpr_app.profiles;
DROP DOMAIN gdpr_app.sealed;
-- Attacker round 7. The receipt never claims an erasure the table does not show: a trigger that
-- puts the row back, or a rule that does nothing instead, fails the erasure whole.
CREATE TABLE gdpr_app.kept (user_id text, note text);
INSERT INTO gdpr_app.kept VALUES ('dana', 'n1');
GRANT SELECT, DELETE ON gdpr_app.kept TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.kept', 'user_id');
CREATE FUNCTION gdpr_app.put_back() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO gdpr_app.kept VALUES (OLD.user_id, OLD.note || ' again'); RETURN OLD; END$$;
CREATE TRIGGER put_back AFTER DELETE ON gdpr_app.kept FOR EACH ROW EXECUTE FUNCTION gdpr_app.put_back();
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('dana')$$) AS put_back;
SET ROLE encml_gdpr_app;
DROP TRIGGER put_back ON gdpr_app.kept;
CREATE RULE keep AS ON DELETE TO gdpr_app.kept DO INSTEAD NOTHING;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('dana')$$) AS instead_nothing;
SET ROLE encml_gdpr_app;
SELECT * FROM gdpr_app.kept;
DROP RULE keep ON gdpr_app.kept;
-- Registrations follow their column through a rename (a rename hid the table); a dropped
-- identifier column fails the erasure.
ALTER TABLE gdpr_app.kept RENAME COLUMN user_id TO who;
SELECT col FROM encml.subject_registry WHERE tbl = 'gdpr_app.kept'::regclass;
SET ROLE encml_gdpr_dpo;
SELECT jsonb_array_length(t->'rows') AS found_after_rename FROM jsonb_array_elements(encml.subject_export('dana')->'tables') t
 WHERE t->>'table' = 'gdpr_app.kept';
SET ROLE encml_gdpr_app;
ALTER TABLE gdpr_app.kept DROP COLUMN who;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('dana')$$) AS dropped_column;
SET ROLE encml_gdpr_app;
SELECT encml.unregister_subject_column('gdpr_app.kept', 'who');
DROP TABLE gdpr_app.kept;
-- A plain identifier of a built-in type whose text form is not the identifier (bytea, arrays,
-- json) is refused, and a column changed to one later fails the erasure (it matched nothing).
CREATE TABLE gdpr_app.blobs (user_id text, data bytea);
SELECT try($$SELECT encml.register_subject_column('gdpr_app.blobs', 'data')$$) AS bytea_identifier;
SELECT encml.register_subject_column('gdpr_app.blobs', 'user_id');
INSERT INTO gdpr_app.blobs VALUES ('erin', NULL);
ALTER TABLE gdpr_app.blobs ALTER COLUMN user_id TYPE bytea USING convert_to(user_id, 'UTF8');
GRANT SELECT, DELETE ON gdpr_app.blobs TO encml_gdpr_dpo;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('erin')$$) AS changed_to_bytea;
SET ROLE encml_gdpr_app;
DROP TABLE gdpr_app.blobs;
-- The owner's code runs with the owner as session role too, never the caller's (the caller's
-- session role counted as an FHE contributor and paid for dp queries); its messages reach the
-- caller with control characters escaped (a line break and a carriage return forged a message).
CREATE TABLE gdpr_app.who (user_id text);
INSERT INTO gdpr_app.who VALUES ('finn');
GRANT SELECT, DELETE ON gdpr_app.who TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.who', 'user_id');
CREATE FUNCTION gdpr_app.whoami() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
    RAISE WARNING E'session %, current %\r\nWARNING:  subject erased', session_user, current_user;
    RETURN OLD;
  END$$;
CREATE TRIGGER whoami BEFORE DELETE ON gdpr_app.who FOR EACH ROW EXECUTE FUNCTION gdpr_app.whoami();
SET ROLE encml_gdpr_dpo;
SELECT (encml.subject_forget('finn')->'tables') @> '[{"table": "gdpr_app.who", "rows": 1}]' AS erased;
SET ROLE encml_gdpr_app;
DROP TABLE gdpr_app.who;
-- Attacker round 8. The code one step of an erasure runs cannot undo an earlier step: a later
-- table's trigger that puts the subject's row back into an earlier table fails the erasure (every
-- table is checked again at the end), and one that renames the column a later step searches is
-- followed (each step reads the registrations again).
CREATE TABLE gdpr_app.a_first (user_id text);
CREATE TABLE gdpr_app.b_later (user_id text);
INSERT INTO gdpr_app.a_first VALUES ('gus');
INSERT INTO gdpr_app.b_later VALUES ('gus');
GRANT SELECT, DELETE ON gdpr_app.a_first, gdpr_app.b_later TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.a_first', 'user_id');
SELECT encml.register_subject_column('gdpr_app.b_later', 'user_id');
CREATE FUNCTION gdpr_app.refill() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO gdpr_app.a_first VALUES (OLD.user_id); RETURN OLD; END$$;
CREATE TRIGGER refill AFTER DELETE ON gdpr_app.b_later FOR EACH ROW EXECUTE FUNCTION gdpr_app.refill();
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('gus')$$) AS put_back_into_earlier;
SET ROLE encml_gdpr_app;
SELECT (SELECT count(*) FROM gdpr_app.a_first) AS first_kept, (SELECT count(*) FROM gdpr_app.b_later) AS later_kept;
DROP TRIGGER refill ON gdpr_app.b_later;
CREATE FUNCTION gdpr_app.rename_later() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN ALTER TABLE gdpr_app.b_later RENAME COLUMN user_id TO uid; RETURN OLD; END$$;
CREATE TRIGGER rename_later BEFORE DELETE ON gdpr_app.a_first FOR EACH ROW EXECUTE FUNCTION gdpr_app.rename_later();
SET ROLE encml_gdpr_dpo;
SELECT jsonb_path_query_array(encml.subject_forget('gus'), '$.tables[*] ? (@.table starts with "gdpr_app.") .identifier_column') AS followed_rename;
SET ROLE encml_gdpr_app;
SELECT (SELECT count(*) FROM gdpr_app.a_first) AS first_left, (SELECT count(*) FROM gdpr_app.b_later) AS later_left;
DROP TABLE gdpr_app.a_first, gdpr_app.b_later;
DROP FUNCTION gdpr_app.refill(), gdpr_app.rename_later();
-- A registration is of a column, not of a name: a typed table's column renamed through its type
-- (ALTER TYPE ... RENAME ATTRIBUTE ... CASCADE) is followed, and a new column that takes the old
-- name is not the identifier.
CREATE TYPE gdpr_app.person AS (user_id text, note text);
CREATE TABLE gdpr_app.typed OF gdpr_app.person;
INSERT INTO gdpr_app.typed VALUES ('hana', 'typed');
GRANT SELECT, DELETE ON gdpr_app.typed TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.typed', 'user_id');
ALTER TYPE gdpr_app.person RENAME ATTRIBUTE user_id TO uid CASCADE;
ALTER TYPE gdpr_app.person ADD ATTRIBUTE user_id text CASCADE;
SELECT col FROM encml.subject_registry WHERE tbl = 'gdpr_app.typed'::regclass;
SET ROLE encml_gdpr_dpo;
SELECT jsonb_path_query_array(encml.subject_forget('hana'), '$.tables[*] ? (@.table == "gdpr_app.typed") .rows') AS typed_rows;
SET ROLE encml_gdpr_app;
DROP TABLE gdpr_app.typed;
DROP TYPE gdpr_app.person;
-- Identifiers are compared as values of the column's type: after an allowed type change (integer
-- to numeric) 1001 still finds 1001.00, and a uuid is found in any case and form.
CREATE TABLE gdpr_app.accounts (account_no int, owner_id uuid);
INSERT INTO gdpr_app.accounts VALUES (1001, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (1002, NULL);
GRANT SELECT, DELETE ON gdpr_app.accounts TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.accounts', 'account_no');
SELECT encml.register_subject_column('gdpr_app.accounts', 'owner_id');
ALTER TABLE gdpr_app.accounts ALTER COLUMN account_no TYPE numeric(12,2);
SET ROLE encml_gdpr_dpo;
SELECT subject, (SELECT coalesce(sum(jsonb_array_length(t->'rows')), 0) FROM jsonb_array_elements(encml.subject_export(subject)->'tables') t
                  WHERE t->>'table' = 'gdpr_app.accounts') AS rows_found
  FROM unnest(ARRAY['1001', '1001.000', '+1001', '1e3', 'alice', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
                    '{a0eebc999c0b4ef8bb6d6bb9bd380a11}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12']) AS subject;
SELECT jsonb_path_query_array(encml.subject_forget('1001'), '$.tables[*] ? (@.table == "gdpr_app.accounts") .rows') AS numeric_rows;
SET ROLE encml_gdpr_app;
SELECT * FROM gdpr_app.accounts;
DROP TABLE gdpr_app.accounts;
-- A version of a det_text identifier key that still encrypts values is not retired (the erasure
-- could no longer find the rows under it).
RESET ROLE;
SELECT encml.create_key('gdpr-r8', 'deterministic') AS r8_key \gset
CREATE TABLE gdpr_app.r8_ids (uid encml.det_text);
INSERT INTO gdpr_app.r8_ids VALUES (encml.det_encrypt('ivan', :'r8_key'));
SELECT encml.rotate_key(:'r8_key') AS r8_v2 \gset
SELECT regexp_replace(try(format('SELECT encml.retire_key_version(%L, 1)', :'r8_key')), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') AS det_version_in_use;
DROP TABLE gdpr_app.r8_ids;
SET ROLE encml_gdpr_app;
-- Attacker round 9: an empty registered table turned into a view (CREATE RULE "_RETURN") would
-- run its owner's query in every search; it fails the erasure and is skipped by the export.
CREATE TABLE gdpr_app.becomes_view (user_id text, note text);
SELECT encml.register_subject_column('gdpr_app.becomes_view', 'user_id');
GRANT SELECT, DELETE ON gdpr_app.becomes_view TO encml_gdpr_dpo;
CREATE RULE "_RETURN" AS ON SELECT TO gdpr_app.becomes_view DO INSTEAD SELECT 'kate'::text AS user_id, 'x'::text AS note;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('kate')$$) AS view_now;
SELECT s->>'reason' AS skipped FROM jsonb_array_elements(encml.subject_export('kate')->'skipped') s
 WHERE s->>'table' = 'gdpr_app.becomes_view';
SET ROLE encml_gdpr_app;
SELECT encml.unregister_subject_column('gdpr_app.becomes_view', 'user_id');
DROP VIEW gdpr_app.becomes_view;
-- A caller whose transaction has read a table that an owner's trigger then locks waits for the
-- erasure's worker, which waits for the caller: the caller waits for the worker in the lock table,
-- where Postgres's deadlock detector sees the cycle: 40P01 within about a second, nothing erased
-- (it hung until statement_timeout).
CREATE TABLE gdpr_app.locker (user_id text);
INSERT INTO gdpr_app.locker VALUES ('lena');
GRANT SELECT, DELETE ON gdpr_app.locker TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.locker', 'user_id');
CREATE FUNCTION gdpr_app.lock_it() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN LOCK TABLE gdpr_app.locker IN ACCESS EXCLUSIVE MODE; RETURN OLD; END$$;
CREATE TRIGGER lock_it BEFORE DELETE ON gdpr_app.locker FOR EACH ROW EXECUTE FUNCTION gdpr_app.lock_it();
SET ROLE encml_gdpr_dpo;
BEGIN;
SELECT count(*) AS read_first FROM gdpr_app.locker;
-- (Whichever of the two the detector picks gets the error.)
SELECT split_part(try($$SELECT encml.subject_forget('lena')$$), ':', 1) AS worker_waits_for_caller;
COMMIT;
SELECT encml.subject_forget('lena') -> 'tables' @> '[{"table": "gdpr_app.locker", "rows": 1}]' AS alone_erased;
SET ROLE encml_gdpr_app;
SELECT encml.unregister_subject_column('gdpr_app.locker', 'user_id');
DROP TABLE gdpr_app.locker;
-- The receipt and the audit record name tables and columns as they were before the erasure: an
-- owner's trigger sees the subject's row and renamed a later table and its column after the
-- subject, which put the subject into the audit log for good.
CREATE TABLE gdpr_app.c_first (user_id text);
CREATE TABLE gdpr_app.d_later (user_id text);
INSERT INTO gdpr_app.c_first VALUES ('mona');
INSERT INTO gdpr_app.d_later VALUES ('mona');
GRANT SELECT, DELETE ON gdpr_app.c_first, gdpr_app.d_later TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.c_first', 'user_id');
SELECT encml.register_subject_column('gdpr_app.d_later', 'user_id');
CREATE FUNCTION gdpr_app.name_after() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
    EXECUTE format('ALTER TABLE gdpr_app.d_later RENAME COLUMN user_id TO %I', OLD.user_id || '_col');
    EXECUTE format('ALTER TABLE gdpr_app.d_later RENAME TO %I', OLD.user_id || '_table');
    RAISE WARNING E'line\u2028separator, \u202Ereversed, zero\u200Bwidth';
    RETURN OLD;
  END$$;
CREATE TRIGGER name_after BEFORE DELETE ON gdpr_app.c_first FOR EACH ROW EXECUTE FUNCTION gdpr_app.name_after();
RESET ROLE;
SELECT coalesce(max(id), 0) AS r9_base FROM encml.audit_log \gset
SET ROLE encml_gdpr_dpo;
SELECT jsonb_path_query_array(r, '$.tables[*] ? (@.table starts with "gdpr_app.") .table') AS tables_named,
       r::text LIKE '%mona%' AS receipt_names_subject
  FROM encml.subject_forget('mona') r;
RESET ROLE;
SELECT count(*) AS audit_names_subject FROM encml.audit_log
 WHERE id > :r9_base AND operation = 'subject_forget' AND detail::text LIKE '%mona%';
SELECT count(*) AS mona_left FROM gdpr_app.mona_table;
SET ROLE encml_gdpr_app;
DROP TABLE gdpr_app.c_first, gdpr_app.mona_table;
DROP FUNCTION gdpr_app.name_after();
-- A partition detached by an owner's code during the erasure would leave the final search of its
-- table too: the erasure fails whole.
CREATE TABLE gdpr_app.e_first (user_id text);
CREATE TABLE gdpr_app.f_parted (user_id text) PARTITION BY LIST (user_id);
CREATE TABLE gdpr_app.f_nina PARTITION OF gdpr_app.f_parted FOR VALUES IN ('nina');
CREATE TABLE gdpr_app.f_rest PARTITION OF gdpr_app.f_parted DEFAULT;
INSERT INTO gdpr_app.e_first VALUES ('nina');
INSERT INTO gdpr_app.f_parted VALUES ('nina'), ('olaf');
GRANT SELECT, DELETE ON gdpr_app.e_first, gdpr_app.f_parted TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.e_first', 'user_id');
SELECT encml.register_subject_column('gdpr_app.f_parted', 'user_id');
CREATE FUNCTION gdpr_app.detach() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN ALTER TABLE gdpr_app.f_parted DETACH PARTITION gdpr_app.f_nina; RETURN OLD; END$$;
CREATE TRIGGER detach BEFORE DELETE ON gdpr_app.e_first FOR EACH ROW EXECUTE FUNCTION gdpr_app.detach();
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('nina')$$) AS partition_detached;
SET ROLE encml_gdpr_app;
SELECT (SELECT count(*) FROM gdpr_app.e_first) AS first_kept, (SELECT count(*) FROM gdpr_app.f_parted) AS parted_kept,
       (SELECT count(*) FROM pg_inherits WHERE inhrelid = 'gdpr_app.f_nina'::regclass) AS still_attached;
DROP TABLE gdpr_app.e_first, gdpr_app.f_parted;
DROP FUNCTION gdpr_app.detach(), gdpr_app.lock_it();
-- Attacker round 10. Code an erasure runs cannot start another export or erasure (the erasure's
-- worker would wait on a latch for the second worker, which waited for the caller's lock: no
-- deadlock check saw it), nor register or unregister columns (an unregistered table left the
-- erasure with the subject's rows in it).
CREATE TABLE gdpr_app.g_first (user_id text);
CREATE TABLE gdpr_app.h_later (user_id text);
INSERT INTO gdpr_app.g_first VALUES ('pia');
INSERT INTO gdpr_app.h_later VALUES ('pia');
GRANT SELECT, DELETE ON gdpr_app.g_first, gdpr_app.h_later TO encml_gdpr_dpo;
SELECT encml.register_subject_column('gdpr_app.g_first', 'user_id');
SELECT encml.register_subject_column('gdpr_app.h_later', 'user_id');
CREATE FUNCTION gdpr_app.nested() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM encml.subject_export(OLD.user_id); RETURN OLD; END$$;
CREATE TRIGGER nested BEFORE DELETE ON gdpr_app.g_first FOR EACH ROW EXECUTE FUNCTION gdpr_app.nested();
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('pia')$$) AS nested_export;
SET ROLE encml_gdpr_app;
CREATE OR REPLACE FUNCTION gdpr_app.nested() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM encml.unregister_subject_column('gdpr_app.h_later', 'user_id'); RETURN OLD; END$$;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('pia')$$) AS unregistered_meanwhile;
SET ROLE encml_gdpr_app;
SELECT (SELECT count(*) FROM gdpr_app.g_first) AS first_kept, (SELECT count(*) FROM gdpr_app.h_later) AS later_kept;
-- A line break in the owner's SQL text, part of a relayed CONTEXT, no longer starts a line of its
-- own (it forged a WARNING line).
CREATE OR REPLACE FUNCTION gdpr_app.nested() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN EXECUTE E'SELECT gdpr_app.say() /*\nWARNING:  forged\n*/'; RETURN OLD; END$$;
CREATE FUNCTION gdpr_app.say() RETURNS int LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'said'; RETURN 1; END$$;
SET ROLE encml_gdpr_dpo;
\set SHOW_CONTEXT always
SELECT (encml.subject_forget('pia') -> 'tables') @> '[{"rows": 1}]' AS erased;
\set SHOW_CONTEXT errors
-- A table that forces row-level security on its owner, as whom the erasure's statements run, is
-- refused by the erasure and skipped by the export; an owner's code that forces it meanwhile, on a
-- table it put the subject's row back into, fails the final search (its policy hid the row).
SET ROLE encml_gdpr_app;
DROP TRIGGER nested ON gdpr_app.g_first;
INSERT INTO gdpr_app.g_first VALUES ('quin');
INSERT INTO gdpr_app.h_later VALUES ('quin');
ALTER TABLE gdpr_app.g_first ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY hide ON gdpr_app.g_first USING (user_id <> 'quin');
RESET ROLE;  -- (row-level security does not apply to a superuser, only to the owner)
SELECT try($$SELECT encml.subject_forget('quin')$$) AS forced_on_owner;
SELECT s->>'reason' AS export_skipped FROM jsonb_array_elements(encml.subject_export('quin')->'skipped') s
 WHERE s->>'table' = 'gdpr_app.g_first';
SET ROLE encml_gdpr_app;
ALTER TABLE gdpr_app.g_first NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
CREATE FUNCTION gdpr_app.hide_back() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
    INSERT INTO gdpr_app.g_first VALUES (OLD.user_id);
    ALTER TABLE gdpr_app.g_first ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    RETURN OLD;
  END$$;
CREATE TRIGGER hide_back AFTER DELETE ON gdpr_app.h_later FOR EACH ROW EXECUTE FUNCTION gdpr_app.hide_back();
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('quin')$$) AS forced_meanwhile;
SET ROLE encml_gdpr_app;
ALTER TABLE gdpr_app.g_first NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
SELECT (SELECT count(*) FROM gdpr_app.g_first WHERE user_id = 'quin') AS first_kept,
       (SELECT count(*) FROM gdpr_app.h_later WHERE user_id = 'quin') AS later_kept;
DROP TRIGGER hide_back ON gdpr_app.h_later;
-- An erasure needs what Postgres needs of `DELETE FROM t WHERE id = ...`: SELECT on the column
-- too (with DELETE alone the receipt counted the matching rows), and USAGE on the schema, which
-- the export needs as well (it read tables in a schema the caller could not use).
REVOKE SELECT ON gdpr_app.h_later FROM encml_gdpr_dpo;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('quin')$$) AS delete_without_select;
SET ROLE encml_gdpr_app;
GRANT SELECT ON gdpr_app.h_later TO encml_gdpr_dpo;
REVOKE USAGE ON SCHEMA gdpr_app FROM encml_gdpr_dpo;
SET ROLE encml_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('quin')$$) AS without_schema_usage;
SELECT count(*) AS export_skips_schema FROM jsonb_array_elements(encml.subject_export('quin')->'skipped') s
 WHERE s->>'table' LIKE 'gdpr_app.%';
SET ROLE encml_gdpr_app;
GRANT USAGE ON SCHEMA gdpr_app TO encml_gdpr_dpo;
DROP TABLE gdpr_app.g_first, gdpr_app.h_later;
DROP FUNCTION gdpr_app.nested(), gdpr_app.say(), gdpr_app.hide_back();
-- Attacker round 11: the identifier key of a registered column cannot be destroyed (an owner's
-- code destroyed a later table's key during an erasure, which then reported that table as done
-- while its rows, with their other columns in clear, stayed).
RESET ROLE;
SELECT encml.create_key('gdpr-r11', 'deterministic') AS r11_key \gset
CREATE TABLE gdpr_r11 (uid encml.det_text, email text);
INSERT INTO gdpr_r11 VALUES (encml.det_encrypt('rosa', :'r11_key'), 'rosa@example.org');
SELECT encml.register_subject_column('gdpr_r11', 'uid', :'r11_key');
SELECT regexp_replace(try(format('SELECT encml.destroy_key(%L)', :'r11_key')), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') AS id_key_destroyed;
SELECT encml.unregister_subject_column('gdpr_r11', 'uid');
SET client_min_messages = warning;
SELECT encml.destroy_key(:'r11_key') > 0 AS destroyed_once_unregistered;
RESET client_min_messages;
DROP TABLE gdpr_r11;
-- Attacker round 12: a temporary table's registration outlived it (a session's end fires no
-- event trigger) and failed every export and erasure; temporary tables are refused.
CREATE TEMP TABLE gdpr_r12 (user_id text);
SELECT regexp_replace(try($$SELECT encml.register_subject_column('gdpr_r12', 'user_id')$$), 'pg_temp_[0-9]+', 'pg_temp_N') AS temporary_table;
DROP TABLE gdpr_r12;
-- One left behind before that (a table that no longer exists) holds no rows and blocks nothing.
INSERT INTO encml.subject_columns (tbl, col, id_kind, on_forget, registered_by)
  VALUES (4000000000::oid::regclass, 'user_id', 'plain', 'delete', 'encml_gdpr_app');
SELECT jsonb_array_length(encml.subject_export('nobody-r12') -> 'tables') >= 0 AS export_works;
SELECT (encml.subject_forget('nobody-r12') ->> 'erasure_id') IS NOT NULL AS erasure_works;
DELETE FROM encml.subject_columns WHERE tbl = 4000000000::oid::regclass;
-- A temporary table of another session under a registered one is invisible to the erasure's
-- statements (Postgres leaves other sessions' temporary children out): the erasure fails, and
-- the export lists it as skipped (its rows survived a "successful" erasure). The caller's own
-- session is another session for the worker.
CREATE TABLE gdpr_r12_parent (user_id text);
SELECT encml.register_subject_column('gdpr_r12_parent', 'user_id');
CREATE TEMP TABLE gdpr_r12_child () INHERITS (gdpr_r12_parent);
INSERT INTO gdpr_r12_child VALUES ('sven');
SELECT regexp_replace(try($$SELECT encml.subject_forget('sven')$$), 'pg_temp_[0-9]+', 'pg_temp_N') AS temporary_child;
SELECT regexp_replace(s::text, 'pg_temp_[0-9]+', 'pg_temp_N') AS export_skips_child
  FROM jsonb_array_elements(encml.subject_export('sven') -> 'skipped') s WHERE s->>'reason' LIKE '%temporary%';
DROP TABLE gdpr_r12_child;
DROP TABLE gdpr_r12_parent;
-- Attacker round 13: an anonymization clears the sensitive columns (classified or encrypted) a
-- child table has of its own, which the registered table's UPDATE does not reach (they were
-- kept); the export says which columns it leaves out; a partition's column classified there
-- alone is anonymized (it was kept).
CREATE TABLE gdpr_r13 (user_id text, amount int, email text);
CREATE TABLE gdpr_r13_child (ssn text) INHERITS (gdpr_r13);
SELECT encml.classify('gdpr_r13', 'email', 'pii'), encml.classify('gdpr_r13_child', 'ssn', 'pii');
SELECT encml.register_subject_column('gdpr_r13', 'user_id', on_forget => 'anonymize');
INSERT INTO gdpr_r13_child VALUES ('tom', 5, 'tom@example.org', '123-45-6789');
SELECT s->>'reason' AS export_says FROM jsonb_array_elements(encml.subject_export('tom') -> 'skipped') s
 WHERE s->>'table' = 'public.gdpr_r13_child';
SELECT encml.subject_forget('tom') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT * FROM gdpr_r13_child;
DROP TABLE gdpr_r13 CASCADE;
CREATE TABLE gdpr_r13p (user_id text, note text) PARTITION BY LIST (user_id);
CREATE TABLE gdpr_r13p_1 PARTITION OF gdpr_r13p DEFAULT;
SELECT encml.classify('gdpr_r13p_1', 'note', 'pii');
SELECT encml.register_subject_column('gdpr_r13p', 'user_id', on_forget => 'anonymize');
INSERT INTO gdpr_r13p VALUES ('uma', 'private note');
SELECT encml.subject_forget('uma') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT * FROM gdpr_r13p;
DROP TABLE gdpr_r13p;
-- Attacker round 14: a column is classified where it is defined, in a table between the
-- registered one and the row's table, or in a second parent: grandchild rows are anonymized
-- there too (they kept it). An owner's trigger that cancels the delete and clears the
-- identifier instead, or puts a classified value back, fails the erasure (the search after it
-- found nothing).
CREATE TABLE gdpr_r14 (user_id text, amount int);
CREATE TABLE gdpr_r14_mid (note text) INHERITS (gdpr_r14);
CREATE TABLE gdpr_r14_other (extra text);
CREATE TABLE gdpr_r14_leaf () INHERITS (gdpr_r14_mid, gdpr_r14_other);
SELECT encml.classify('gdpr_r14_mid', 'note', 'pii'), encml.classify('gdpr_r14_other', 'extra', 'pii');
SELECT encml.register_subject_column('gdpr_r14', 'user_id', on_forget => 'anonymize');
INSERT INTO gdpr_r14_leaf VALUES ('vera', 1, 'leaf note', 'leaf extra');
SELECT encml.subject_forget('vera') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT * FROM gdpr_r14_leaf;
DROP TABLE gdpr_r14 CASCADE;
DROP TABLE gdpr_r14_other;
CREATE TABLE gdpr_r14d (user_id text, email text);
SELECT encml.classify('gdpr_r14d', 'email', 'pii');
SELECT encml.register_subject_column('gdpr_r14d', 'user_id');
INSERT INTO gdpr_r14d VALUES ('walt', 'walt@example.org');
CREATE FUNCTION gdpr_r14_unlink() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE public.gdpr_r14d SET user_id = NULL WHERE ctid = OLD.ctid; RETURN NULL; END$$;
CREATE TRIGGER unlink BEFORE DELETE ON gdpr_r14d FOR EACH ROW EXECUTE FUNCTION gdpr_r14_unlink();
SELECT try($$SELECT encml.subject_forget('walt')$$) AS delete_cancelled;
DROP TRIGGER unlink ON gdpr_r14d;
SELECT encml.unregister_subject_column('gdpr_r14d', 'user_id');
SELECT encml.register_subject_column('gdpr_r14d', 'user_id', on_forget => 'anonymize');
CREATE FUNCTION gdpr_r14_keep() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.email := OLD.email; RETURN NEW; END$$;
CREATE TRIGGER keep BEFORE UPDATE ON gdpr_r14d FOR EACH ROW EXECUTE FUNCTION gdpr_r14_keep();
SELECT try($$SELECT encml.subject_forget('walt')$$) AS value_put_back;
SELECT * FROM gdpr_r14d;
DROP TABLE gdpr_r14d;
DROP FUNCTION gdpr_r14_unlink(), gdpr_r14_keep();
-- Attacker round 15: only the erasure writes to registered tables until it commits. An owner's
-- AFTER UPDATE trigger, per statement (from its transition table) or per row, that put the
-- cleared values back after the UPDATE had returned them cleared; one that catches the ERROR
-- its write gets; an AFTER DELETE trigger that put the row back without its identifier; an
-- INSERT routed into a registered partition; an ALTER TABLE; a foreign key's SET NULL into a
-- registered table: each fails the erasure (55000), and nothing is erased. A BEFORE UPDATE
-- trigger of a table under the registered one that keeps its own column fails it too. Writes
-- to other tables, and deletes (ON DELETE CASCADE), are the owners' to make.
CREATE TABLE gdpr_r15 (pk int PRIMARY KEY, user_id text, email text);
SELECT encml.classify('gdpr_r15', 'email', 'pii');
SELECT encml.register_subject_column('gdpr_r15', 'user_id', on_forget => 'anonymize');
INSERT INTO gdpr_r15 VALUES (1, 'xena', 'xena@example.org');
CREATE FUNCTION gdpr_r15_restore_all() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
     UPDATE public.gdpr_r15 t SET email = o.email FROM oldrows o WHERE t.pk = o.pk; RETURN NULL; END$$;
CREATE TRIGGER restore_all AFTER UPDATE ON gdpr_r15 REFERENCING OLD TABLE AS oldrows
  FOR EACH STATEMENT EXECUTE FUNCTION gdpr_r15_restore_all();
SELECT try($$SELECT encml.subject_forget('xena')$$) AS statement_trigger;
DROP TRIGGER restore_all ON gdpr_r15;
CREATE FUNCTION gdpr_r15_restore() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
     BEGIN UPDATE public.gdpr_r15 SET email = OLD.email WHERE pk = OLD.pk;
     EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'caught: %', SQLERRM; END; RETURN NULL; END$$;
CREATE TRIGGER restore AFTER UPDATE ON gdpr_r15 FOR EACH ROW EXECUTE FUNCTION gdpr_r15_restore();
SELECT try($$SELECT encml.subject_forget('xena')$$) AS row_trigger_caught;
DROP TRIGGER restore ON gdpr_r15;
CREATE FUNCTION gdpr_r15_alter() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN EXECUTE 'ALTER TABLE public.gdpr_r15_log ADD COLUMN c int'; RETURN NULL; END$$;
CREATE TABLE gdpr_r15_log (pk int, email text);
CREATE TRIGGER alter_t AFTER UPDATE ON gdpr_r15 FOR EACH ROW EXECUTE FUNCTION gdpr_r15_alter();
SELECT try($$SELECT encml.subject_forget('xena')$$) AS alter_table;
DROP TRIGGER alter_t ON gdpr_r15;
SELECT * FROM gdpr_r15;
-- A history table the owner keeps is the owner's (not registered): written as usual.
CREATE FUNCTION gdpr_r15_history() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.gdpr_r15_log VALUES (NEW.pk, NEW.email); RETURN NULL; END$$;
CREATE TRIGGER history AFTER UPDATE ON gdpr_r15 FOR EACH ROW EXECUTE FUNCTION gdpr_r15_history();
SELECT encml.subject_forget('xena') -> 'tables' @> '[{"rows": 1}]' AS history_elsewhere;
SELECT * FROM gdpr_r15, gdpr_r15_log;
DROP TABLE gdpr_r15, gdpr_r15_log;
-- The table under the registered one keeps its own column in a BEFORE UPDATE trigger.
CREATE TABLE gdpr_r15i (user_id text);
CREATE TABLE gdpr_r15i_child (secretnote text) INHERITS (gdpr_r15i);
SELECT encml.classify('gdpr_r15i_child', 'secretnote', 'pii');
SELECT encml.register_subject_column('gdpr_r15i', 'user_id', on_forget => 'anonymize');
INSERT INTO gdpr_r15i_child VALUES ('yann', 'yann secret');
CREATE FUNCTION gdpr_r15_keep_note() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.secretnote := OLD.secretnote; RETURN NEW; END$$;
CREATE TRIGGER keep BEFORE UPDATE ON gdpr_r15i_child FOR EACH ROW EXECUTE FUNCTION gdpr_r15_keep_note();
SELECT try($$SELECT encml.subject_forget('yann')$$) AS child_before_trigger;
SELECT * FROM gdpr_r15i_child;
DROP TABLE gdpr_r15i CASCADE;
-- Delete mode: the row put back without its identifier; an INSERT routed into a registered
-- partition through its unregistered root.
CREATE TABLE gdpr_r15d (user_id text, email text);
SELECT encml.register_subject_column('gdpr_r15d', 'user_id');
INSERT INTO gdpr_r15d VALUES ('zoe', 'zoe@example.org');
CREATE FUNCTION gdpr_r15_reinsert() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.gdpr_r15d VALUES (NULL, OLD.email); RETURN NULL; END$$;
CREATE TRIGGER reinsert AFTER DELETE ON gdpr_r15d FOR EACH ROW EXECUTE FUNCTION gdpr_r15_reinsert();
SELECT try($$SELECT encml.subject_forget('zoe')$$) AS reinserted;
DROP TRIGGER reinsert ON gdpr_r15d;
CREATE TABLE gdpr_r15p (user_id text, email text) PARTITION BY LIST (user_id);
CREATE TABLE gdpr_r15p_z PARTITION OF gdpr_r15p FOR VALUES IN ('zoe');
CREATE TABLE gdpr_r15p_null PARTITION OF gdpr_r15p DEFAULT;
SELECT encml.register_subject_column('gdpr_r15p_null', 'user_id');
CREATE FUNCTION gdpr_r15_route() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO public.gdpr_r15p VALUES (NULL, OLD.email); RETURN NULL; END$$;
CREATE TRIGGER route AFTER DELETE ON gdpr_r15d FOR EACH ROW EXECUTE FUNCTION gdpr_r15_route();
SELECT try($$SELECT encml.subject_forget('zoe')$$) AS routed;
DROP TRIGGER route ON gdpr_r15d;
SELECT count(*) AS nothing_routed FROM gdpr_r15p;
SELECT encml.unregister_subject_column('gdpr_r15p_null', 'user_id');
DROP TABLE gdpr_r15p;
-- Foreign keys: ON DELETE CASCADE into a registered table deletes (allowed); SET NULL writes
-- the registered table, and fails the erasure.
CREATE TABLE gdpr_r15_cust (id int PRIMARY KEY, user_id text);
CREATE TABLE gdpr_r15_orders (cust int REFERENCES gdpr_r15_cust ON DELETE CASCADE, buyer text);
SELECT encml.register_subject_column('gdpr_r15_cust', 'user_id');
SELECT encml.register_subject_column('gdpr_r15_orders', 'buyer');
INSERT INTO gdpr_r15_cust VALUES (1, 'zoe');
INSERT INTO gdpr_r15_orders VALUES (1, 'zoe-as-buyer');
SELECT encml.subject_forget('zoe') -> 'tables' @> '[{"table": "public.gdpr_r15_cust", "rows": 1}]' AS cascade_deletes;
SELECT count(*) AS orders_left FROM gdpr_r15_orders;
ALTER TABLE gdpr_r15_orders DROP CONSTRAINT gdpr_r15_orders_cust_fkey,
  ADD FOREIGN KEY (cust) REFERENCES gdpr_r15_cust ON DELETE SET NULL;
INSERT INTO gdpr_r15_cust VALUES (2, 'zack');
INSERT INTO gdpr_r15_orders VALUES (2, 'zack-as-buyer');
SELECT try($$SELECT encml.subject_forget('zack')$$) AS set_null;
SELECT * FROM gdpr_r15_orders;
DROP TABLE gdpr_r15_orders, gdpr_r15_cust, gdpr_r15d;
DROP FUNCTION gdpr_r15_restore_all(), gdpr_r15_restore(), gdpr_r15_alter(), gdpr_r15_history(),
  gdpr_r15_keep_note(), gdpr_r15_reinsert(), gdpr_r15_route();
-- Attacker round 16: what an erasure does in each table is worked out before any owner's code
-- runs. An earlier table's statement trigger that declassified a column of a later one (which
-- the anonymization then kept), or force-retired the version of its identifier key (whose
-- rows the search then no longer found), changes nothing: the rows are erased.
CREATE TABLE gdpr_r16_first (id text);
CREATE TABLE gdpr_r16_later (id text, email text);
SELECT encml.register_subject_column('gdpr_r16_first', 'id');
SELECT encml.register_subject_column('gdpr_r16_later', 'id', on_forget => 'anonymize');
SELECT encml.classify('gdpr_r16_later', 'email', 'pii');
INSERT INTO gdpr_r16_later VALUES ('carl', 'carl@example.org');
CREATE FUNCTION gdpr_r16_declassify() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM encml.classify('public.gdpr_r16_later', 'email', NULL); RETURN NULL; END$$;
CREATE TRIGGER declassify AFTER DELETE ON gdpr_r16_first FOR EACH STATEMENT EXECUTE FUNCTION gdpr_r16_declassify();
SELECT encml.subject_forget('carl') -> 'tables' @> '[{"table": "public.gdpr_r16_later", "rows": 1}]' AS anonymized;
SELECT * FROM gdpr_r16_later;
DROP TRIGGER declassify ON gdpr_r16_first;
SELECT encml.unregister_subject_column('gdpr_r16_later', 'id');
DROP TABLE gdpr_r16_later;
SELECT encml.create_key('gdpr_r16_idk', 'deterministic') AS r16_key \gset
CREATE TABLE gdpr_r16_det (id encml.det_text, email text);
INSERT INTO gdpr_r16_det VALUES (encml.det_encrypt('fay', :'r16_key'), 'fay@example.org');
SELECT encml.register_subject_column('gdpr_r16_det', 'id', :'r16_key'::uuid);
CREATE TABLE gdpr_r16_cfg (k uuid);
INSERT INTO gdpr_r16_cfg VALUES (:'r16_key');
CREATE FUNCTION gdpr_r16_retire() RETURNS trigger LANGUAGE plpgsql AS
  $$DECLARE k uuid := (SELECT c.k FROM public.gdpr_r16_cfg c);
    BEGIN PERFORM encml.rotate_key(k); PERFORM encml.retire_key_version(k, 1, force => true); RETURN NULL; END$$;
CREATE TRIGGER retire AFTER DELETE ON gdpr_r16_first FOR EACH STATEMENT EXECUTE FUNCTION gdpr_r16_retire();
SELECT encml.subject_forget('fay') -> 'tables' @> '[{"table": "public.gdpr_r16_det", "rows": 1}]' AS deleted;
SELECT count(*) AS fay_left FROM gdpr_r16_det;
SELECT encml.unregister_subject_column('gdpr_r16_det', 'id');
SELECT encml.unregister_subject_column('gdpr_r16_first', 'id');
DROP TABLE gdpr_r16_first, gdpr_r16_det, gdpr_r16_cfg;
DROP FUNCTION gdpr_r16_declassify(), gdpr_r16_retire();
-- Attacker round 17: a parent registered to anonymize and a table under it registered to
-- delete. The parent's UPDATE used to clear the identifier in the child's row first, so the
-- child's DELETE found nothing and the row stayed with the child's own columns. Deleting
-- registrations go first, whatever the order of the tables' OIDs.
CREATE TABLE gdpr_r17_accounts (user_id text, email text);
CREATE TABLE gdpr_r17_accounts_eu (passport text) INHERITS (gdpr_r17_accounts);
SELECT encml.register_subject_column('gdpr_r17_accounts_eu', 'user_id');
SELECT encml.register_subject_column('gdpr_r17_accounts', 'user_id', on_forget => 'anonymize');
SELECT encml.classify('gdpr_r17_accounts', 'email', 'pii');
INSERT INTO gdpr_r17_accounts VALUES ('hana', 'hana@example.org');
INSERT INTO gdpr_r17_accounts_eu VALUES ('hana', 'hana@example.eu', 'P-123');
SELECT encml.subject_forget('hana') -> 'tables' @> '[{"table": "public.gdpr_r17_accounts_eu", "rows": 1, "action": "delete"}]' AS child_deleted;
SELECT * FROM gdpr_r17_accounts;
SELECT count(*) AS eu_left FROM gdpr_r17_accounts_eu;
SELECT encml.unregister_subject_column('gdpr_r17_accounts', 'user_id');
SELECT encml.unregister_subject_column('gdpr_r17_accounts_eu', 'user_id');
DROP TABLE gdpr_r17_accounts CASCADE;
-- The same with a partition.
CREATE TABLE gdpr_r17_parted (user_id text, region text, email text) PARTITION BY LIST (region);
CREATE TABLE gdpr_r17_parted_eu PARTITION OF gdpr_r17_parted FOR VALUES IN ('eu');
CREATE TABLE gdpr_r17_parted_us PARTITION OF gdpr_r17_parted FOR VALUES IN ('us');
SELECT encml.register_subject_column('gdpr_r17_parted', 'user_id', on_forget => 'anonymize');
SELECT encml.register_subject_column('gdpr_r17_parted_eu', 'user_id');
SELECT encml.classify('gdpr_r17_parted', 'email', 'pii');
INSERT INTO gdpr_r17_parted VALUES ('ivo', 'eu', 'ivo@example.eu'), ('ivo', 'us', 'ivo@example.com');
SELECT encml.subject_forget('ivo') -> 'tables' @> '[{"table": "public.gdpr_r17_parted_eu", "rows": 1, "action": "delete"}]' AS partition_deleted;
SELECT * FROM gdpr_r17_parted ORDER BY region;
SELECT encml.unregister_subject_column('gdpr_r17_parted_eu', 'user_id');
SELECT encml.unregister_subject_column('gdpr_r17_parted', 'user_id');
DROP TABLE gdpr_r17_parted;
-- Attacker round 18: an earlier table's trigger dropped a later registered table and put a
-- copy back under its name (unregistered); the erasure skipped it and succeeded. It fails.
CREATE TABLE gdpr_r18_a (user_id text);
CREATE FUNCTION gdpr_r18_swap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF to_regclass('public.gdpr_r18_b_copy') IS NULL THEN
  CREATE TABLE public.gdpr_r18_b_copy AS SELECT * FROM public.gdpr_r18_b;
  DROP TABLE public.gdpr_r18_b;
  ALTER TABLE public.gdpr_r18_b_copy RENAME TO gdpr_r18_b;
END IF; RETURN NULL; END $$;
CREATE TRIGGER swap BEFORE DELETE ON gdpr_r18_a FOR EACH STATEMENT EXECUTE FUNCTION gdpr_r18_swap();
SELECT encml.register_subject_column('gdpr_r18_a', 'user_id');
CREATE TABLE gdpr_r18_b (user_id text, diagnosis text);
INSERT INTO gdpr_r18_b VALUES ('jon', 'jon''s diagnosis');
SELECT encml.register_subject_column('gdpr_r18_b', 'user_id');
SELECT try($$SELECT encml.subject_forget('jon')$$) AS dropped_meanwhile;
SELECT * FROM gdpr_r18_b;
SELECT pg_catalog.count(*) AS still_registered FROM encml.subject_registry WHERE tbl::text LIKE 'gdpr_r18_%';
DROP TRIGGER swap ON gdpr_r18_a;
SELECT encml.unregister_subject_column('gdpr_r18_a', 'user_id');
SELECT encml.unregister_subject_column('gdpr_r18_b', 'user_id');
DROP TABLE gdpr_r18_a, gdpr_r18_b;
DROP FUNCTION gdpr_r18_swap();
-- Attacker round 18: a BEFORE UPDATE trigger copied the cleared identifier and e-mail into a
-- column the anonymization keeps. Every kept column must come back as it was.
CREATE TABLE gdpr_r18_users (user_id text, email text, notes text, amount int);
SELECT encml.classify('gdpr_r18_users', 'email', 'pii');
INSERT INTO gdpr_r18_users VALUES ('kim', 'kim@example.org', NULL, 42), ('lee', 'lee@example.org', NULL, 7);
CREATE FUNCTION gdpr_r18_stash() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.notes := OLD.user_id || ' / ' || OLD.email; RETURN NEW; END$$;
CREATE TRIGGER stash BEFORE UPDATE ON gdpr_r18_users FOR EACH ROW EXECUTE FUNCTION gdpr_r18_stash();
SELECT encml.register_subject_column('gdpr_r18_users', 'user_id', on_forget => 'anonymize');
SELECT try($$SELECT encml.subject_forget('kim')$$) AS stashed;
SELECT * FROM gdpr_r18_users ORDER BY amount;
-- Without the trigger, the kept columns stay and the erasure succeeds.
DROP TRIGGER stash ON gdpr_r18_users;
SELECT encml.subject_forget('kim') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT * FROM gdpr_r18_users ORDER BY amount;
-- An updated_at stamp fails it as well, unless its trigger leaves the erasure's statements
-- alone (encml.in_subject_erasure(), false anywhere else).
ALTER TABLE gdpr_r18_users ADD COLUMN updated_at timestamptz DEFAULT '2026-01-01';
CREATE FUNCTION gdpr_r18_stamp() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.updated_at := pg_catalog.clock_timestamp(); RETURN NEW; END$$;
CREATE TRIGGER stamp BEFORE UPDATE ON gdpr_r18_users FOR EACH ROW EXECUTE FUNCTION gdpr_r18_stamp();
SELECT try($$SELECT encml.subject_forget('lee')$$) AS stamped;
CREATE OR REPLACE FUNCTION gdpr_r18_stamp() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN
    IF encml.in_subject_erasure() THEN RETURN NEW; END IF;
    NEW.updated_at := pg_catalog.clock_timestamp(); RETURN NEW;
  END$$;
SELECT encml.subject_forget('lee') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT user_id, email, amount, updated_at FROM gdpr_r18_users ORDER BY amount;
SELECT encml.in_subject_erasure() AS outside_an_erasure;
UPDATE gdpr_r18_users SET amount = 43 WHERE amount = 42;
SELECT count(*) AS stamped_outside FROM gdpr_r18_users WHERE updated_at > '2026-01-01';
SELECT encml.unregister_subject_column('gdpr_r18_users', 'user_id');
DROP TABLE gdpr_r18_users;
DROP FUNCTION gdpr_r18_stash(), gdpr_r18_stamp();
-- Attacker round 19: a stored generated column, computed by an owner's function that says it
-- is IMMUTABLE but reads the table (which shows the row as it was before the UPDATE), copied the
-- cleared identifier and pii column during the erasure. A generated column using an owner's
-- object must come out NULL or as it was; one of built-in objects only is recomputed freely,
-- and a classified one is recomputed, not set (it must come out NULL).
CREATE TABLE gdpr_r19 (user_id text, ssn text, amount int);
CREATE FUNCTION gdpr_r19_shadow(u text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE r text;
BEGIN
  IF u IS NOT NULL THEN RETURN NULL; END IF;
  SELECT string_agg(g.user_id || '/' || g.ssn, ',') INTO r FROM public.gdpr_r19 g WHERE g.ssn IS NOT NULL;
  RETURN r;
END $$;
ALTER TABLE gdpr_r19 ADD COLUMN notes text GENERATED ALWAYS AS (gdpr_r19_shadow(user_id)) STORED;
INSERT INTO gdpr_r19 (user_id, ssn, amount) VALUES ('kate', '123-45-6789', 10);
SELECT encml.classify('gdpr_r19', 'ssn', 'pii');
SELECT encml.register_subject_column('gdpr_r19', 'user_id', on_forget => 'anonymize');
SELECT try($$SELECT encml.subject_forget('kate')$$) AS shadowed;
SELECT user_id, ssn, amount, notes FROM gdpr_r19;
-- Built-in functions too (attacker round 20): a trigger set extra_float_digits from the cleared
-- ssn for the row, and a generated float8::text column of a kept column recorded the digit.
-- Every generated column comes out fixed: NULL if it reads a cleared column, else as it was.
ALTER TABLE gdpr_r19 DROP COLUMN notes;
ALTER TABLE gdpr_r19 ADD COLUMN ratio text GENERATED ALWAYS AS ((1 / (amount::float8 + 0.123))::text) STORED;
CREATE FUNCTION gdpr_r20_digits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF encml.in_subject_erasure() THEN
    PERFORM set_config('extra_float_digits', (-substr(regexp_replace(OLD.ssn, '\D', '', 'g'), 1, 1)::int)::text, true);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER digits BEFORE UPDATE ON gdpr_r19 FOR EACH ROW EXECUTE FUNCTION gdpr_r20_digits();
SELECT try($$SELECT encml.subject_forget('kate')$$) AS steered_by_a_setting;
SELECT user_id, ssn, ratio FROM gdpr_r19;
DROP TRIGGER digits ON gdpr_r19;
-- A generated column that reads a cleared column and does not come out NULL fails the erasure;
-- a classified one is cleared by recomputation.
ALTER TABLE gdpr_r19 ADD COLUMN ssn_last4 text GENERATED ALWAYS AS (right(ssn, 4)) STORED,
  ADD COLUMN id_length int GENERATED ALWAYS AS (coalesce(length(user_id), 0)) STORED;
SELECT encml.classify('gdpr_r19', 'ssn_last4', 'pii');
SELECT try($$SELECT encml.subject_forget('kate')$$) AS not_null_over_a_cleared_column;
ALTER TABLE gdpr_r19 DROP COLUMN id_length;
SELECT encml.subject_forget('kate') -> 'tables' @> '[{"rows": 1}]' AS anonymized;
SELECT user_id, ssn, amount, ssn_last4, ratio FROM gdpr_r19;
SELECT encml.unregister_subject_column('gdpr_r19', 'user_id');
DROP TABLE gdpr_r19;
DROP FUNCTION gdpr_r19_shadow(text), gdpr_r20_digits();
-- Attacker round 21: planner statistics kept the erased identifier and pii values (pg_stats
-- shows them to whoever may read the table), also when an owner's trigger ran ANALYZE while
-- the subject's rows were there. The erasure analyzes the tables it changed that have any.
CREATE TABLE gdpr_r21 (user_id text, email text, n int);
INSERT INTO gdpr_r21 SELECT 'other' || g, 'o' || g || '@example.org', g FROM generate_series(1, 20) g;
INSERT INTO gdpr_r21 VALUES ('zed', 'zed@example.org', 0);
SELECT encml.classify('gdpr_r21', 'email', 'pii');
SELECT encml.register_subject_column('gdpr_r21', 'user_id');
CREATE TABLE gdpr_r21_anon (user_id text, email text);
INSERT INTO gdpr_r21_anon VALUES ('zed', 'zed@example.org'), ('amy', 'amy@example.org');
SELECT encml.classify('gdpr_r21_anon', 'email', 'pii');
SELECT encml.register_subject_column('gdpr_r21_anon', 'user_id', on_forget => 'anonymize');
ANALYZE gdpr_r21_anon;
CREATE FUNCTION gdpr_r21_analyze() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN ANALYZE public.gdpr_r21; RETURN OLD; END$$;
CREATE TRIGGER analyze_first BEFORE DELETE ON gdpr_r21 FOR EACH ROW EXECUTE FUNCTION gdpr_r21_analyze();
SELECT count(*) AS columns_showing_zed FROM pg_stats
 WHERE tablename = 'gdpr_r21_anon' AND (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE '%zed%';
SELECT encml.subject_forget('zed') -> 'tables' @> '[{"rows": 1}]' AS erased;
SELECT tablename, attname FROM pg_stats
 WHERE tablename IN ('gdpr_r21', 'gdpr_r21_anon') AND (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE '%zed%';
SELECT count(*) > 0 AS statistics_kept FROM pg_stats WHERE tablename IN ('gdpr_r21', 'gdpr_r21_anon');
SELECT encml.unregister_subject_column('gdpr_r21', 'user_id'), encml.unregister_subject_column('gdpr_r21_anon', 'user_id');
DROP TABLE gdpr_r21, gdpr_r21_anon;
DROP FUNCTION gdpr_r21_analyze();
-- A name column holds identifiers cut to 63 bytes; the erasure finds them as Postgres's own
-- `WHERE col = '...'` does (a longer identifier was not found, attacker round 13).
CREATE TABLE gdpr_r13n (user_id name);
INSERT INTO gdpr_r13n VALUES (repeat('v', 70));
SELECT encml.register_subject_column('gdpr_r13n', 'user_id');
SELECT encml.subject_forget(repeat('v', 70)) -> 'tables' @> '[{"rows": 1}]' AS long_name_found;
DROP TABLE gdpr_r13n;
-- An erasure commits on its own: a read-only transaction does not erase through it.
BEGIN READ ONLY;
SELECT try($$SELECT encml.subject_forget('sven')$$) AS read_only;
COMMIT;
-- Every ciphertext column of an exported row: enc_bytea and det_text decrypted where the caller
-- may (a det_text column that is not the identifier was left as "bad magic", interop client);
-- an ORE cell stays encrypted and names its key; an array of ciphertexts is flagged and counted
-- (it came as bare ciphertext, attacker pass of issue 29) (docs/formats.md, "Subject export").
CREATE TABLE gdpr_cells (user_id text, email encml.enc_bytea, tier encml.det_text, salary encml.ore_int8,
  history encml.enc_bytea[]);
SELECT encml.create_key('gdpr-cells-det', 'deterministic') AS cells_det \gset
SELECT encml.create_key('gdpr-cells-ore', 'ore') AS cells_ore \gset
INSERT INTO gdpr_cells VALUES ('cleo', encml.encrypt('cleo@x.org', encml.subject_key('cleo')),
  encml.det_encrypt('gold', :'cells_det'), encml.ore_encrypt(5000, :'cells_ore'),
  ARRAY[encml.encrypt('old@x.org', encml.subject_key('cleo'))]);
SELECT encml.register_subject_column('gdpr_cells', 'user_id');
SELECT t -> 'rows' -> 0 ->> 'email' AS email, t -> 'rows' -> 0 ->> 'tier' AS tier,
       t -> 'rows' -> 0 -> 'salary' ->> 'key' = :'cells_ore' AS ore_names_key,
       t -> 'rows' -> 0 -> 'salary' ->> 'reason' AS ore_reason,
       t -> 'rows' -> 0 -> 'history' ->> 'reason' AS array_reason,
       jsonb_array_length(t -> 'rows' -> 0 -> 'history' -> 'encrypted') AS array_as_stored,
       t -> 'undecrypted_values' AS undecrypted
  FROM jsonb_array_elements(encml.subject_export('cleo') -> 'tables') t WHERE t ->> 'table' = 'public.gdpr_cells';
-- Without a decrypt grant on the det_text key: left encrypted, named by its key, with the reason.
GRANT SELECT ON gdpr_cells TO encml_gdpr_nobody;
SET ROLE encml_gdpr_nobody;
SELECT t -> 'rows' -> 0 -> 'tier' ->> 'key' = :'cells_det' AS det_names_key,
       t -> 'rows' -> 0 -> 'tier' ->> 'reason' AS det_reason
  FROM jsonb_array_elements(encml.subject_export('cleo') -> 'tables') t WHERE t ->> 'table' = 'public.gdpr_cells';
RESET ROLE;
SELECT encml.unregister_subject_column('gdpr_cells', 'user_id');
DROP TABLE gdpr_cells;
SET ROLE encml_gdpr_app;
DROP FUNCTION gdpr_app.put_back(), gdpr_app.whoami();
DROP FUNCTION gdpr_app.spy(text) CASCADE;
DROP TYPE gdpr_app.ident CASCADE;
DROP TYPE gdpr_app.mood CASCADE;
DROP COLLATION gdpr_app.ci;
RESET ROLE;
DROP SCHEMA gdpr_app;
DROP OWNED BY encml_gdpr_app, encml_gdpr_dpo, encml_gdpr_trainer, encml_gdpr_nobody;
DROP ROLE encml_gdpr_app, encml_gdpr_dpo, encml_gdpr_trainer, encml_gdpr_nobody;
