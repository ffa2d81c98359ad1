-- Attribute-based decryption (HIPAA minimum necessary): a key labelled 'phi' decrypts only for
-- roles cleared for 'phi', and only while the label's context conditions hold.
CREATE ROLE cl_security IN ROLE encml_key_admin;
CREATE ROLE cl_owner;
CREATE ROLE cl_clinicians;
CREATE ROLE cl_clinician IN ROLE cl_clinicians;
CREATE ROLE cl_billing;
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') $$;
CREATE TABLE cl_notes (id int PRIMARY KEY, note encml.enc_bytea);
GRANT SELECT ON cl_notes TO cl_clinicians, cl_billing;

-- The records team owns the key, labels it and grants decrypt to both departments.
SET ROLE cl_owner;
SELECT encml.create_key('regress-phi-notes') AS k \gset
SELECT encml.label_key(:'k', 'phi') AS labelled, encml.label_key(:'k', 'phi') AS labelled_again;
SELECT pg_temp.t(format('SELECT encml.label_key(%L, %L)', :'k', 'PHI!')) AS bad_label;
SELECT encml.key_labels(:'k');
SELECT encml.grant_key(:'k', 'cl_clinicians', 'decrypt'), encml.grant_key(:'k', 'cl_billing', 'decrypt');
-- Labels restrict decryption, not encryption.
SELECT encml.encrypt('allergic to penicillin', :'k', 'note 1') AS c \gset
RESET ROLE;
INSERT INTO cl_notes VALUES (1, :'c');

-- The grant alone is not enough: no clearance, no plaintext (42501 naming key and label).
SET ROLE cl_clinician;
SELECT pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes');
RESET ROLE;
-- Only key admins clear roles.
SET ROLE cl_owner;
SELECT pg_temp.t('SELECT encml.grant_clearance(''cl_owner'', ''phi'')') AS owner_cannot_clear;
RESET ROLE;
SET ROLE cl_security;
SELECT encml.grant_clearance('cl_clinicians', 'phi') AS cleared;
RESET ROLE;
-- Clearance is inherited like GRANT: the clinician reads, billing (granted, not cleared) does not.
SET ROLE cl_clinician;
SELECT encml.decrypt_text(note, 'note 1') AS clinician_reads FROM cl_notes;
RESET ROLE;
SELECT encml.encrypt_jsonb('{"dx": "flu"}', :'k', '{dx}') AS doc \gset
SET ROLE cl_billing;
SELECT pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes') AS billing;
-- decrypt_jsonb leaves fields it may not decrypt encrypted instead of failing.
SELECT left(encml.decrypt_jsonb(:'doc')->>'dx', 9) AS jsonb_stays_encrypted;
RESET ROLE;

-- Context conditions: only from the EHR application, only from the clinic network, only in
-- opening hours. Evaluated at each decryption.
SET ROLE cl_security;
SELECT encml.set_clearance_condition('phi', application_names => '{ehr}');
RESET ROLE;
SET ROLE cl_clinician;
SELECT pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes') AS wrong_application;
SET application_name = 'ehr';
SELECT encml.decrypt_text(note, 'note 1') AS from_ehr FROM cl_notes;
RESET ROLE;
SET ROLE cl_security;
SELECT encml.set_clearance_condition('phi', client_networks => '{10.20.0.0/16}', application_names => '{ehr}');
SELECT pg_temp.t('SELECT encml.set_clearance_condition(''phi'', client_networks => ''{not-a-network}'')') AS bad_network;
SELECT pg_temp.t('SELECT encml.set_clearance_condition(''phi'', hours => ''[8,30)'')') AS bad_hours;
RESET ROLE;
SET ROLE cl_clinician;
-- This session comes over a Unix socket: it has no address, so it is in no network.
SELECT pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes') AS outside_network;
RESET ROLE;
-- Hours: a window that excludes the current hour (in UTC) refuses; one that includes it allows.
SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int AS h \gset
SET ROLE cl_security;
SELECT encml.set_clearance_condition('phi', hours => int4range((:h + 1) % 24, (:h + 1) % 24 + 1));
RESET ROLE;
SET ROLE cl_clinician;
SELECT regexp_replace(pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes'), '\d+', 'N', 'g') AS out_of_hours;
RESET ROLE;
SET ROLE cl_security;
SELECT encml.set_clearance_condition('phi', hours => int4range(:h, :h + 1), time_zone => 'UTC');
RESET ROLE;
SET ROLE cl_clinician;
SELECT encml.decrypt_text(note, 'note 1') AS in_hours FROM cl_notes;
RESET ROLE;
-- All NULL removes the conditions.
SET ROLE cl_security;
SELECT encml.set_clearance_condition('phi') AS removed;
SELECT count(*) AS conditions_left FROM encml.clearance_conditions WHERE label = 'phi';
RESET ROLE;

-- A revocation in another session applies at this session's next statement.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
BEGIN;
SET LOCAL ROLE cl_clinician;
SELECT encml.decrypt_text(note, 'note 1') AS before_revoke FROM cl_notes;
RESET ROLE;
SELECT r AS revoked_in_other_session
  FROM dblink(:'conninfo', 'SELECT encml.revoke_clearance(''cl_clinicians'', ''phi'')') AS t(r bool);
SET LOCAL ROLE cl_clinician;
SELECT pg_temp.t('SELECT encml.decrypt_text(note, ''note 1'') FROM cl_notes') AS after_revoke;
ROLLBACK;

-- Superusers are exempt; unlabelling lifts the restriction.
SELECT encml.decrypt_text(note, 'note 1') AS superuser_reads FROM cl_notes;
SET ROLE cl_owner;
SELECT encml.unlabel_key(:'k', 'phi');
RESET ROLE;
SET ROLE cl_billing;
SELECT encml.decrypt_text(note, 'note 1') AS billing_reads_unlabelled FROM cl_notes;
RESET ROLE;

-- The compliance report flags a column classified 'phi' whose key lacks the label.
SELECT encml.classify('cl_notes', 'note', 'phi');
SELECT status, regexp_replace(detail, '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') AS detail
  FROM encml.compliance_report() WHERE check_name = 'classified_keys_labeled';
SET ROLE cl_owner;
SELECT encml.label_key(:'k', 'phi');
RESET ROLE;
SELECT status FROM encml.compliance_report() WHERE check_name = 'classified_keys_labeled';

-- Refusals and changes are security events.
SELECT operation, detail->>'label' AS label, left(regexp_replace(detail->>'reason', '\d+', 'N', 'g'), 30) AS reason, effective_role
  FROM encml.audit_log
 WHERE id > :base AND operation IN ('clearance_refused', 'clearance_condition_refused', 'grant_clearance',
                                    'revoke_clearance', 'label_key', 'unlabel_key', 'set_clearance_condition',
                                    'clearance_admin_refused')
 ORDER BY id;
-- The catalog is not readable by PUBLIC and is dumped with the extension.
SET ROLE cl_billing;
SELECT pg_temp.t('SELECT * FROM encml.clearances');
RESET ROLE;
SELECT count(*) AS dumped FROM pg_extension e, unnest(e.extconfig) AS c
 WHERE c IN ('encml.key_labels'::regclass, 'encml.clearances'::regclass, 'encml.clearance_conditions'::regclass);

DROP TABLE cl_notes;
SET client_min_messages = warning;
-- (DROP OWNED also removes key grants and clearances: a role holding one is not dropped.)
DROP OWNED BY cl_owner, cl_security, cl_clinician, cl_clinicians, cl_billing;
DROP ROLE cl_clinician, cl_clinicians, cl_billing, cl_security, cl_owner;
RESET client_min_messages;
