-- Audit log: row changes with redaction, append-only, a keyed chain that catches tampering at
-- the right row, a witness for deleted newest rows, purge, and concurrent writers.
CREATE ROLE encml_a_owner NOLOGIN;
CREATE ROLE encml_a_clerk NOLOGIN;
CREATE ROLE encml_a_auditor NOLOGIN IN ROLE encml_auditor;
GRANT CREATE ON SCHEMA public TO encml_a_owner;
SELECT encml.create_tenant('audit-co');
SELECT encml.grant_tenant('audit-co', 'encml_a_clerk');
SELECT encml.create_key('audit-k') AS k \gset
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset

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
  FROM encml.audit_log WHERE id = :base + 3;
SELECT ok, rows_checked > 0 AS checked, first_bad_id, detail LIKE 'chain verified%' AS verified
  FROM encml.audit_verify();
SELECT id - :base AS head FROM encml.audit_head();
RESET ROLE;

-- Append-only, even for a superuser going through the triggers.
SELECT try($$UPDATE encml.audit_log SET operation = 'x' WHERE id = 1$$) AS update_log;
SELECT try($$DELETE FROM encml.audit_log WHERE id = 1$$) AS delete_log;
SELECT try($$TRUNCATE encml.audit_log$$) AS truncate_log;
SELECT try($$DELETE FROM encml.audit_witness$$) AS delete_witness;

-- A superuser who bypasses the triggers is caught at the right row.
SET session_replication_role = replica;
BEGIN;
UPDATE encml.audit_log SET new_row = jsonb_set(new_row, '{score}', '99') WHERE id = :base + 4;
SELECT ok, first_bad_id - :base AS bad, detail FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- ... also when the MAC is recomputed as a plain SHA-256 over the row
UPDATE encml.audit_log SET new_row = jsonb_set(new_row, '{score}', '99'),
       mac = sha256(convert_to(new_row::text, 'UTF8')) WHERE id = :base + 4;
SELECT ok, first_bad_id - :base AS bad FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- a row deleted from the middle
DELETE FROM encml.audit_log WHERE id = :base + 4;
SELECT ok, first_bad_id - :base AS bad, detail ~ 'missing' AS missing FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- two rows swapped
UPDATE encml.audit_log SET seq = -seq WHERE id IN (:base + 4, :base + 5);
UPDATE encml.audit_log SET seq = CASE WHEN id = :base + 4 THEN -seq + 1 ELSE -seq - 1 END
 WHERE id IN (:base + 4, :base + 5);
SELECT ok, first_bad_id - :base AS bad FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- a forged row inserted and sealed without the key: its MAC does not verify
INSERT INTO encml.audit_log (effective_role, kind, operation, seq, mac, mac_key)
SELECT 'nobody', 'event', 'forged', max(seq) + 1, '\x00'::bytea, max(mac_key) FROM encml.audit_log;
SELECT ok, detail ~ 'modified' AS caught FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- the newest rows deleted: the seal witness still names them
SELECT id - :base AS witnessed_head FROM encml.audit_head();
DELETE FROM encml.audit_log WHERE id > :base + 5;
SELECT ok, detail ~ 'newest rows were deleted' AS caught FROM encml.audit_verify();
-- ... and if the witness table is cut too, only an external copy of audit_head() tells.
DELETE FROM encml.audit_witness WHERE log_id > :base + 5;
SELECT ok AS verifies_without_external_witness FROM encml.audit_verify();
ROLLBACK;
RESET session_replication_role;

-- Purge keeps the chain verifiable and is itself logged.
SELECT encml.audit_purge(clock_timestamp()) > 0 AS purged;
SELECT count(*) AS rows_left, bool_and(kind = 'anchor') AS only_the_anchor FROM encml.audit_log;
SELECT ok FROM encml.audit_verify();
INSERT INTO public.a_patients VALUES (3, 'Cy', 'cy@x.example', '1', 1, NULL);
SELECT ok, rows_checked FROM encml.audit_verify();
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

SELECT encml.audit_disable('public.a_patients');
SELECT operation FROM encml.audit_log ORDER BY id DESC LIMIT 1;
DROP TABLE public.a_patients;
SELECT encml.drop_tenant('audit-co');
DROP OWNED BY encml_a_owner, encml_a_clerk, encml_a_auditor;
DROP ROLE encml_a_owner, encml_a_clerk, encml_a_auditor;
