-- Audit log: row changes with redaction, append-only, a keyed chain that catches tampering at
-- the right row, a witness for deleted newest rows, purge, and concurrent writers.
CREATE ROLE encml_a_owner NOLOGIN;
CREATE ROLE encml_a_clerk NOLOGIN;
CREATE ROLE encml_a_auditor NOLOGIN IN ROLE encml_auditor;
GRANT CREATE ON SCHEMA public TO encml_a_owner;
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset
SELECT encml.create_tenant('audit-co');
SELECT encml.grant_tenant('audit-co', 'encml_a_clerk');
SELECT encml.create_key('audit-k') AS k \gset
SELECT encml.grant_key(:'k', 'encml_a_clerk', p) FROM (VALUES ('encrypt'), ('decrypt')) AS v(p);

SET ROLE encml_a_owner;
CREATE TABLE public.a_patients (id int PRIMARY KEY, name text, email text, ssn text,
                                score numeric, secret encml.enc_bytea);
GRANT ALL ON public.a_patients TO encml_a_clerk;
SELECT encml.classify('public.a_patients', 'ssn', 'pii');
SELECT encml.audit_enable('public.a_patients', '{email}');
RESET ROLE;
-- Only the owner audits or classifies a table.
SET ROLE encml_a_clerk;
SELECT try($$SELECT encml.audit_disable('public.a_patients')$$) AS clerk_disables;
SELECT try($$SELECT encml.classify('public.a_patients', 'name', 'pii')$$) AS clerk_classifies;
SELECT try($$SELECT * FROM encml.audit_log$$) AS clerk_reads_log;
SELECT encml.set_tenant('audit-co');
INSERT INTO public.a_patients VALUES
    (1, 'Ann', 'ann@x.example', '123-45-6789', 1.50, encml.encrypt('ann secret'::text, :'k')),
    (2, 'Bob', 'ann@x.example', '987-65-4321', 2, NULL);
UPDATE public.a_patients SET score = 3, email = 'ann2@x.example' WHERE id = 1;
DELETE FROM public.a_patients WHERE id = 2;
RESET ROLE;
SET ROLE encml_a_owner;
TRUNCATE public.a_patients;
RESET ROLE;

SET ROLE encml_a_auditor;
-- Who, as whom, in which tenant, what; redacted columns are keyed hashes, the same for equal values.
SELECT id - :base AS n, kind, operation, table_name, effective_role, tenant, changed_columns,
       new_row->>'name' AS name, new_row->>'score' AS score,
       new_row->>'email' LIKE 'hmac:%' AS email_hashed, new_row->>'ssn' LIKE 'hmac:%' AS ssn_hashed
  FROM encml.audit_log WHERE id > :base ORDER BY id;
SELECT count(DISTINCT new_row->>'email') AS equal_emails_one_token
  FROM encml.audit_log WHERE id > :base AND operation = 'INSERT';
SELECT count(*) AS plaintext_anywhere FROM encml.audit_log
 WHERE id > :base AND (old_row::text ~ '123-45|ann@x|ann secret' OR new_row::text ~ '123-45|ann@x|ann secret');
SELECT (new_row->>'secret')::encml.enc_bytea IS NOT NULL AS ciphertext_logged
  FROM encml.audit_log WHERE id > :base AND operation = 'INSERT' AND new_row->>'name' = 'Ann';
SELECT ok, rows_checked > 0 AS checked, first_bad_id, detail LIKE 'chain verified%' AS verified
  FROM encml.audit_verify();
SELECT id - :base AS head FROM encml.audit_head();
RESET ROLE;
SELECT id AS bob FROM encml.audit_log WHERE id > :base AND new_row->>'name' = 'Bob' \gset
SELECT id AS upd FROM encml.audit_log WHERE id > :base AND operation = 'UPDATE' \gset

-- Append-only, even for a superuser going through the triggers.
SELECT try($$UPDATE encml.audit_log SET operation = 'x' WHERE id = 1$$) AS update_log;
SELECT try($$DELETE FROM encml.audit_log WHERE id = 1$$) AS delete_log;
SELECT try($$TRUNCATE encml.audit_log$$) AS truncate_log;
SELECT try($$DELETE FROM encml.audit_witness$$) AS delete_witness;

-- The chain and redaction keys are service keys in the catalog, wrapped by the master key: the
-- chain's current one random, with one imported per configured master key (what it derived
-- before 0.2.0); the redaction key imported (tokens continue). Rows name their key by label.
-- Never deleted, not even by a superuser; closed to everyone else.
SELECT purpose, version, derived_from IS NOT NULL AS imported, length(wrapped_key) AS wrapped_bytes,
       master_key_fingerprint ~ '^[0-9a-f]{16}$' AS wrapped_by_a_master_key
  FROM encml.service_keys ORDER BY 1, 2;
SELECT DISTINCT mac_key FROM encml.audit_log WHERE id > :base AND seq IS NOT NULL;
SELECT try($$DELETE FROM encml.service_keys$$) AS delete_service_keys;
SELECT try($$TRUNCATE encml.service_keys$$) AS truncate_service_keys;
SELECT has_table_privilege('encml_a_auditor', 'encml.service_keys', 'SELECT') AS auditor_reads_keys;

-- (Tampering before the latest checkpoint needs the full walk: audit_verify_full.)
-- A superuser who bypasses the triggers is caught at the right row.
SET session_replication_role = replica;
BEGIN;
UPDATE encml.audit_log SET new_row = jsonb_set(new_row, '{score}', '99') WHERE id = :bob;
SELECT ok, first_bad_id - :bob AS after_bob, detail ~ 'modified' AS modified FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- ... also when the MAC is recomputed as a plain SHA-256 over the row
UPDATE encml.audit_log SET new_row = jsonb_set(new_row, '{score}', '99'),
       mac = sha256(convert_to(new_row::text, 'UTF8')) WHERE id = :bob;
SELECT ok, first_bad_id - :bob AS after_bob FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- a row deleted from the middle
DELETE FROM encml.audit_log WHERE id = :bob;
SELECT ok, first_bad_id - :bob AS after_bob, detail ~ 'missing' AS missing FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- two rows swapped (through a range for negative seqs the attacker adds)
CREATE TABLE encml.forged_range PARTITION OF encml.audit_log_sealed FOR VALUES FROM (MINVALUE) TO (0);
UPDATE encml.audit_log SET seq = -seq WHERE id IN (:bob, :upd);
UPDATE encml.audit_log SET seq = CASE WHEN id = :bob THEN -seq + 1 ELSE -seq - 1 END
 WHERE id IN (:bob, :upd);
SELECT ok, first_bad_id - :bob AS after_bob FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- a forged row inserted and sealed without the key: its MAC does not verify
INSERT INTO encml.audit_log (effective_role, kind, operation, seq, mac, mac_key)
SELECT 'nobody', 'event', 'forged', max(seq) + 1, '\x00'::bytea, max(mac_key) FROM encml.audit_log;
SELECT ok, detail ~ 'modified' AS caught FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- the newest rows deleted: the seal witness still names them
SELECT id - :base AS witnessed_head, seq AS hseq, mac AS hmac FROM encml.audit_head() \gset
SELECT :witnessed_head AS witnessed_head, ok AS matches_the_external_head FROM encml.audit_verify(:hseq, :'hmac');
DELETE FROM encml.audit_log WHERE id > :upd;
SELECT ok, detail ~ 'newest rows were deleted' AS caught FROM encml.audit_verify_full();
-- ... and if the witness table is cut too, only an external copy of audit_head() tells.
DELETE FROM encml.audit_witness WHERE log_id > :upd;
SELECT ok AS verifies_without_external_witness FROM encml.audit_verify_full();
SELECT ok, detail ~ 'the external witness recorded seq' AS caught_by_the_external_head
  FROM encml.audit_verify(:hseq, :'hmac');
ROLLBACK;
-- A chain rewritten at the external head's seq (another MAC there) does not match it.
SELECT ok, detail ~ 'differs from the external witness' AS rewritten
  FROM encml.audit_verify(:hseq, repeat('ab', 32));
SELECT try($$SELECT * FROM encml.audit_verify(1, 'not hex')$$) AS malformed_mac;
SELECT try($$SELECT * FROM encml.audit_verify(0, repeat('ab', 32))$$) AS bad_seq;
RESET session_replication_role;

-- Purge keeps the chain verifiable and is itself logged.
SELECT seq AS pseq, mac AS pmac FROM encml.audit_head() \gset
SELECT encml.classify('public.a_patients', 'name', NULL);  -- one more event, sealed after the head
SELECT encml.audit_seal() AS sealed_after_the_head;
SELECT encml.audit_purge(clock_timestamp()) > 0 AS purged;
SELECT count(*) AS rows_left, bool_and(kind = 'anchor') AS only_the_anchor FROM encml.audit_log;
SELECT ok FROM encml.audit_verify_full();
INSERT INTO public.a_patients VALUES (3, 'Cy', 'cy@x.example', '1', 1, NULL);
SELECT ok, rows_checked FROM encml.audit_verify_full();
-- A head recorded outside before the purge still checks: the anchor keeps a digest of the seal
-- witnesses it leaves behind.
SELECT ok, detail FROM encml.audit_verify(:pseq, :'pmac');
SELECT ok, detail FROM encml.audit_verify(:pseq, repeat('ab', 32));
SELECT min(s) AS never_a_head FROM generate_series(1, :pseq) s
 WHERE s NOT IN (SELECT seq FROM encml.audit_witness) \gset
SELECT ok, detail ~ 'never a head' AS never_a_head FROM encml.audit_verify(:never_a_head, :'pmac');
SET session_replication_role = replica;
BEGIN;  -- a witness rewritten to match a forged external head: the anchor's digest no longer does
UPDATE encml.audit_witness SET mac = decode(repeat('ab', 32), 'hex') WHERE seq = :pseq;
SELECT ok, detail ~ 'differ from the digest' AS caught FROM encml.audit_verify(:pseq, repeat('ab', 32));
ROLLBACK;
-- Anchors moved, duplicated, deleted or given another MAC are caught.
BEGIN;
UPDATE encml.audit_log SET seq = seq + 1000 WHERE kind = 'anchor';
SELECT 'moved' AS anchor, ok FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;
INSERT INTO encml.audit_log (logged_at, xact_started_at, xact_id, session_role, effective_role, client_addr,
                             application_name, tenant, kind, operation, table_oid, table_name, old_row,
                             new_row, changed_columns, detail, seq, mac, mac_key)
SELECT logged_at, xact_started_at, xact_id, session_role, effective_role, client_addr, application_name,
       tenant, kind, operation, table_oid, table_name, old_row, new_row, changed_columns, detail,
       (SELECT max(seq) + 1 FROM encml.audit_log), mac, mac_key
  FROM encml.audit_log WHERE kind = 'anchor';
SELECT 'duplicated' AS anchor, ok, detail ~ 'modified, inserted or moved' AS named FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;
DELETE FROM encml.audit_log WHERE kind = 'anchor';
SELECT 'deleted' AS anchor, ok, detail ~ 'missing' AS named FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;
UPDATE encml.audit_log SET detail = jsonb_set(detail, '{mac}', to_jsonb(repeat('ab', 32))) WHERE kind = 'anchor';
SELECT 'other MAC' AS anchor, ok FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- everything deleted but the witnesses: never ok with nothing verified
DELETE FROM encml.audit_log;
SELECT ok, rows_checked, detail ~ 'newest rows were deleted' AS named FROM encml.audit_verify_full();
ROLLBACK;
RESET session_replication_role;
-- A forged anchor (inserted with the log's triggers bypassed) past the head, claiming everything
-- up to it purged, is not trusted: verification needs the anchor row itself in the verified chain.
SET session_replication_role = replica;
BEGIN;
CREATE TABLE encml.forged_range PARTITION OF encml.audit_log_sealed FOR VALUES FROM (1000000000) TO (1000000001);
INSERT INTO encml.audit_log (effective_role, kind, operation, seq, detail)
VALUES ('postgres', 'anchor', 'audit_purge', 1000000000,
        jsonb_build_object('purged_through_seq', 2000000000, 'mac', repeat('00', 32)));
SELECT ok, detail ~ 'missing' AS seen_as_a_gap FROM encml.audit_verify_full();
-- ... also with the marker of where verification starts pointed at it.
INSERT INTO encml.audit_markers VALUES ('anchor', 1000000000, 0)
    ON CONFLICT (kind) DO UPDATE SET seq = EXCLUDED.seq, log_id = EXCLUDED.log_id;
SELECT ok, rows_checked, detail ~ '^the purge anchor at seq 1000000000 .* forged or moved$' AS names_the_anchor
  FROM encml.audit_verify_full();
ROLLBACK;
-- ... nor one that claims a purge point inside the chain (its own MAC would have to match).
BEGIN;
INSERT INTO encml.audit_log (effective_role, kind, operation, seq, detail, mac, mac_key)
SELECT 'postgres', 'anchor', 'audit_purge', max(seq) + 1,
       jsonb_build_object('purged_through_seq', max(seq), 'mac', repeat('00', 32)),
       decode(repeat('11', 32), 'hex'), max(mac_key)
  FROM encml.audit_log;
SELECT ok, detail ~ 'was modified, inserted or moved' AS forged_row_named FROM encml.audit_verify_full();
ROLLBACK;
RESET session_replication_role;
SELECT ok FROM encml.audit_verify_full();
SELECT try($$SELECT encml.audit_purge(now())$$) AS superuser_purges;
SET ROLE encml_a_auditor;
SELECT try($$SELECT encml.audit_purge(now())$$) AS auditor_purges;
RESET ROLE;

-- Concurrent writers: four sessions insert 50 rows each at once; the chain verifies.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('audit' || n, format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user))
  FROM generate_series(1, 4) n;
SELECT dblink_send_query('audit' || n, format($q$
DO $w$
BEGIN
    FOR i IN 1 .. 50 LOOP
        INSERT INTO public.a_patients VALUES (1000 * %s + i, 'p', 'e', 's', i, NULL);
    END LOOP;
    PERFORM encml.audit_seal();
END
$w$
$q$, n))
  FROM generate_series(1, 4) n;
SELECT count(*) AS sessions_done FROM generate_series(1, 4) n,
       LATERAL dblink_get_result('audit' || n) AS r(status text);
SELECT dblink_disconnect('audit' || n) FROM generate_series(1, 4) n;
SELECT ok, rows_checked FROM encml.audit_verify();

-- Security events: successes in the caller's transaction, refusals outside it (they outlive
-- the ERROR and a ROLLBACK).
SELECT coalesce(max(id), 0) AS base2 FROM encml.audit_log \gset
SET ROLE encml_a_owner;
BEGIN;
SELECT try($$SELECT encml.set_tenant('audit-co')$$) AS owner_sets_tenant;
ROLLBACK;
RESET ROLE;
SELECT encml.rotate_key(:'k') AS new_version;
SELECT id > :base2 AS new, operation, effective_role, detail - 'key' AS detail
  FROM encml.audit_log WHERE id > :base2 ORDER BY id;
SELECT count(*) AS refusals_outliving_rollback FROM encml.audit_log
 WHERE id > :base2 AND kind = 'event' AND operation LIKE '%refused';
-- A dp aggregate refused for want of a budget: the refusal is committed with its ledger row.
SET ROLE encml_a_clerk;
SELECT try($$SELECT encml.dp_count_rows(1.0) FROM generate_series(1, 10)$$) AS no_budget;
RESET ROLE;
SELECT operation, effective_role, detail->>'note' AS note FROM encml.audit_log
 WHERE id > :base2 AND operation = 'privacy_charge_refused';

-- Decryption auditing: one event per statement and key (default), or per value; superuser-only.
CREATE TABLE public.a_secrets AS SELECT i AS id, encml.encrypt('s' || i, :'k') AS v FROM generate_series(1, 3000) i;
GRANT SELECT ON public.a_secrets TO encml_a_clerk;
SELECT coalesce(max(id), 0) AS base3 FROM encml.audit_log \gset
SET ROLE encml_a_clerk;
SELECT count(encml.decrypt_text(v)) FROM public.a_secrets;
SELECT try($$SET encml.audit_decrypt = off$$) AS clerk_turns_off;
RESET ROLE;
SELECT effective_role, detail->>'values' AS values, detail->>'key' = :'k' AS right_key
  FROM encml.audit_log WHERE id > :base3 AND operation = 'decrypt';
SET encml.audit_decrypt = row;
SELECT encml.decrypt_text(v) FROM public.a_secrets WHERE id <= 3 ORDER BY id;
RESET encml.audit_decrypt;
SELECT count(*) AS one_event_per_value FROM encml.audit_log
 WHERE id > :base3 AND operation = 'decrypt' AND detail->>'values' = '1';
-- In parallel workers each worker logs its share through the background writer.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
SELECT coalesce(max(id), 0) AS base4 FROM encml.audit_log \gset
SELECT count(encml.decrypt_text(v)) FROM public.a_secrets;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
SELECT sum((detail->>'values')::int) AS values_logged FROM encml.audit_log
 WHERE id > :base4 AND operation = 'decrypt';
DROP TABLE public.a_secrets;

-- The compliance report flags each planted problem.
SET ROLE encml_a_owner;
CREATE TABLE public.a_tenanted (id int, tenant_id text);
CREATE TABLE public.a_cards (id int, pan text, v encml.enc_bytea);
SELECT encml.classify('public.a_cards', 'pan', 'pci');
RESET ROLE;
SELECT encml.create_key('audit-doomed') AS doomed \gset
INSERT INTO public.a_cards VALUES (1, '4111', encml.encrypt('x'::text, :'doomed'));
SET client_min_messages = warning;
SELECT encml.destroy_key(:'doomed') > 0 AS destroyed;
RESET client_min_messages;
UPDATE encml.data_key_versions SET created_at = now() - interval '100 days' WHERE key_id = :'k';
SET ROLE encml_a_auditor;
SELECT check_name, status FROM encml.compliance_report();
SELECT check_name, detail FROM encml.compliance_report()
 WHERE check_name IN ('tenant_isolation', 'sensitive_plaintext', 'sensitive_unaudited', 'destroyed_keys_referenced')
 ORDER BY check_name;
SELECT detail LIKE '1 key(s) not rotated for 90 days: audit-k (%' AS stale_key_named
  FROM encml.compliance_report() WHERE check_name = 'key_rotation';
RESET ROLE;
SET session_replication_role = replica;
BEGIN;
UPDATE encml.audit_log SET operation = 'hidden'
 WHERE id = (SELECT max(id) FROM encml.audit_log WHERE operation = 'rotate_key');
SELECT status, detail ~ 'modified' AS tamper_reported FROM encml.compliance_report() WHERE check_name = 'audit_chain';
ROLLBACK;
RESET session_replication_role;
-- Fixing the problems turns the checks green.
SELECT encml.enable_tenant_isolation('public.a_tenanted');
SELECT encml.classify('public.a_cards', 'pan', NULL);
SELECT encml.classify('public.a_patients', 'ssn', NULL);
DROP TABLE public.a_cards;
SELECT check_name, status FROM encml.compliance_report()
 WHERE check_name IN ('tenant_isolation', 'sensitive_plaintext', 'sensitive_unaudited', 'destroyed_keys_referenced');
DROP TABLE public.a_tenanted;
-- Weak password hashing: a role with an MD5 password warns, the setting itself fails.
SET password_encryption = 'md5';
CREATE ROLE encml_a_md5 PASSWORD 'not-a-real-secret';
SELECT status, detail FROM encml.compliance_report() WHERE check_name = 'password_encryption';
RESET password_encryption;
SELECT status, detail FROM encml.compliance_report() WHERE check_name = 'password_encryption';
DROP ROLE encml_a_md5;
-- One library serves every installed schema version: a schema behind the library (here an older
-- extversion, rolled back) is reported until ALTER EXTENSION ... UPDATE.
SELECT status, replace(detail, encml.library_version(), '<library>') AS detail
  FROM encml.compliance_report() WHERE check_name = 'extension_version';
BEGIN;
UPDATE pg_extension SET extversion = '0.1.0' WHERE extname = 'pg_encrypt_ml';
SELECT status, replace(detail, encml.library_version(), '<library>') AS detail
  FROM encml.compliance_report() WHERE check_name = 'extension_version';
ROLLBACK;
SELECT encml.library_version() = extversion AS library_is_schema FROM pg_extension WHERE extname = 'pg_encrypt_ml';

-- A token is the HMAC of the value's output text under fixed settings: equal values give equal
-- tokens whatever the writer's TimeZone, DateStyle, float digits, bytea_output or search_path
-- (docs/audit.md; regclass changed with the search_path, attacker pass of issue 29).
CREATE TABLE public.a_settings (n int, at timestamptz, d date, f float8, b bytea, m money, r regclass,
                                iv interval, ats timestamptz[], pt point, rg tstzrange);
SELECT encml.audit_enable('public.a_settings', '{at,d,f,b,m,r,iv,ats,pt,rg}');
SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 1; SET bytea_output = 'hex';
INSERT INTO public.a_settings VALUES (1, '2026-01-02 03:04:05+00', '2026-01-02', 0.1, '\x00ff', 12.5, 'public.a_settings',
  '1 day 2 hours', '{2026-01-02 03:04:05+00}', '(0.1,0.2)', '[2026-01-02 03:04:05+00,2026-01-03 00:00:00+00)');
SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'German, DMY'; SET extra_float_digits = -3; SET bytea_output = 'escape';
SET search_path = encml; SET IntervalStyle = 'iso_8601';
INSERT INTO public.a_settings VALUES (2, '2026-01-02 03:04:05+00', '2026-01-02', 0.1, '\x00ff', 12.5, 'public.a_settings',
  '1 day 2 hours', '{2026-01-02 03:04:05+00}', '(0.1,0.2)', '[2026-01-02 03:04:05+00,2026-01-03 00:00:00+00)');
RESET TimeZone; RESET DateStyle; RESET extra_float_digits; RESET bytea_output; RESET search_path; RESET IntervalStyle;
SELECT count(DISTINCT new_row - 'n') AS one_token_set, count(*) AS rows,
       bool_and(new_row->>'at' LIKE 'hmac:%' AND new_row->>'m' LIKE 'hmac:%') AS hashed
  FROM encml.audit_log WHERE table_name = 'public.a_settings' AND kind = 'row';
SELECT encml.audit_disable('public.a_settings');
DROP TABLE public.a_settings;
SELECT encml.audit_disable('public.a_patients');
SELECT operation FROM encml.audit_log ORDER BY id DESC LIMIT 1;
DROP TABLE public.a_patients;
SELECT encml.drop_tenant('audit-co');
DROP OWNED BY encml_a_owner, encml_a_clerk, encml_a_auditor;
DROP ROLE encml_a_owner, encml_a_clerk, encml_a_auditor;
