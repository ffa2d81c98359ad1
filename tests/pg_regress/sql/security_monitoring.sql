-- Threat detection with the library preloaded (as this test cluster is): privilege escalation,
-- switched-off controls, bulk reads and bulk decryption are security events with a severity;
-- exfiltration alerts outlive the caller's transaction and block mode stops decryption.
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') $$;
CREATE FUNCTION pg_temp.events(base bigint) RETURNS TABLE (severity text, kind text, who text, detail jsonb)
    LANGUAGE sql AS $$
    SELECT severity, kind, effective_role, detail - 'severity' - 'at'
      FROM encml.security_events WHERE id > base ORDER BY id $$;

-- Role changes (the password itself is never recorded).
CREATE ROLE sm_app LOGIN PASSWORD 'sm-secret-pw';
ALTER ROLE sm_app SUPERUSER;
ALTER ROLE sm_app NOSUPERUSER BYPASSRLS;
ALTER ROLE sm_app NOBYPASSRLS PASSWORD 'another-secret';
CREATE ROLE sm_group;
GRANT sm_group TO sm_app;
GRANT encml_key_admin TO sm_app;
REVOKE encml_key_admin FROM sm_app;
ALTER ROLE sm_group RENAME TO sm_team;
SELECT * FROM pg_temp.events(:base);
SELECT count(*) AS password_in_log FROM encml.audit_log WHERE id > :base AND detail::text LIKE '%secret%';
-- A statement that fails leaves no event (role changes are logged in their transaction).
SELECT max(id) AS b2 FROM encml.audit_log \gset
SELECT pg_temp.t('CREATE ROLE sm_app');
BEGIN;
CREATE ROLE sm_rolled_back;
ROLLBACK;
SELECT count(*) AS no_events FROM encml.security_events WHERE id > :b2 AND kind <> 'decrypt';

-- Switching off RLS or the audit trigger of a classified or audited table is critical.
CREATE TABLE sm_patients (id int PRIMARY KEY, tenant_id text, ssn encml.enc_bytea, name text);
SELECT encml.classify('sm_patients', 'name', 'pii');
SELECT encml.audit_enable('sm_patients');
ALTER TABLE sm_patients ENABLE ROW LEVEL SECURITY;
SELECT max(id) AS b3 FROM encml.audit_log \gset
ALTER TABLE sm_patients DISABLE ROW LEVEL SECURITY;
ALTER TABLE sm_patients DISABLE TRIGGER encml_audit_row;
ALTER TABLE sm_patients ENABLE TRIGGER encml_audit_row;
-- Other tables are nobody's business here.
CREATE TABLE sm_scratch (id int);
ALTER TABLE sm_scratch DISABLE TRIGGER ALL;
DROP TABLE sm_scratch;
SELECT severity, kind, coalesce(detail->>'action', detail->'problems'->>0, detail->>'command_tag') AS action,
       table_name FROM encml.security_events
 WHERE id > :b3 AND kind NOT IN ('decrypt') ORDER BY id;

-- Bulk reads of a classified table: a result above encml.large_result_rows, and any COPY TO.
INSERT INTO sm_patients SELECT i, 'acme', NULL, 'patient ' || i FROM generate_series(1, 20) i;
SELECT max(id) AS b4 FROM encml.audit_log \gset
SET encml.large_result_rows = 10;
SELECT count(*) FROM (SELECT * FROM sm_patients) s;      -- one row out: not an event
SELECT name FROM sm_patients WHERE id <= 5 ORDER BY id;  -- five rows: below the threshold
SELECT length(string_agg(name, ',')) > 0 AS many FROM (SELECT name FROM sm_patients) s;
CREATE TEMP TABLE sm_sink AS SELECT * FROM sm_patients;  -- not a result to the client
SELECT id, name FROM sm_patients ORDER BY id LIMIT 12;
COPY (SELECT id FROM sm_patients WHERE id = 1) TO STDOUT;
COPY sm_patients (id) TO STDOUT WITH (FORMAT csv, HEADER false) ;
RESET encml.large_result_rows;
SELECT severity, kind, detail->'tables' AS tables, detail->'rows' AS rows FROM encml.security_events
 WHERE id > :b4 AND kind IN ('large_result', 'copy_to') ORDER BY id;

-- Exfiltration: decrypting above the threshold raises a critical alert, written outside the
-- caller's transaction (it survives the ROLLBACK); block mode then refuses.
CREATE ROLE sm_reader;
SELECT encml.create_key('regress-sm-alert') AS ka \gset
SELECT encml.create_key('regress-sm-block') AS kb \gset
SELECT encml.grant_key(:'ka', 'sm_reader', 'decrypt'), encml.grant_key(:'kb', 'sm_reader', 'decrypt');
CREATE TABLE sm_vault AS
  SELECT i, encml.encrypt('value ' || i, :'ka') AS a, encml.encrypt('value ' || i, :'kb') AS b
    FROM generate_series(1, 200) i;
GRANT SELECT ON sm_vault TO sm_reader;
SELECT max(id) AS b5 FROM encml.audit_log \gset
SET encml.decrypt_alert_threshold = 100;
-- Ordinary roles cannot raise their own limit.
SET ROLE sm_reader;
SELECT pg_temp.t('SET encml.decrypt_alert_threshold = 0') AS cannot_raise;
BEGIN;
SELECT count(encml.decrypt_text(a)) AS decrypted FROM sm_vault WHERE i <= 90;   -- under the threshold
SELECT count(encml.decrypt_text(a)) AS decrypted FROM sm_vault WHERE i > 90;    -- 200 in the minute
ROLLBACK;
RESET ROLE;
SELECT severity, kind, who, detail->>'role' AS role, (detail->>'values_per_minute')::int > 100 AS over,
       detail->>'threshold' AS threshold, detail->>'action' AS action
  FROM pg_temp.events(:b5) WHERE kind LIKE 'decrypt_rate%';
SET encml.decrypt_limit_action = 'block';
SET ROLE sm_reader;
SELECT regexp_replace(pg_temp.t('SELECT count(encml.decrypt_text(b)) FROM sm_vault'), '\d+ values', 'N values') AS blocked;
-- Still blocked for that key while the last minute is over the limit; other keys are not.
SELECT regexp_replace(pg_temp.t('SELECT encml.decrypt_text(b) FROM sm_vault WHERE i = 1'), '\d+ values', 'N values') AS still_blocked;
RESET ROLE;
SELECT kind, detail->>'action' AS action FROM pg_temp.events(:b5) WHERE kind LIKE 'decrypt_rate%';
-- The threshold is per role: the superuser is not blocked by the reader's reads.
SELECT encml.decrypt_text(b) AS other_role FROM sm_vault WHERE i = 1;
RESET encml.decrypt_limit_action;
RESET encml.decrypt_alert_threshold;

-- Monitoring: the summary counts events by severity and kind; metrics() speaks Prometheus text.
SELECT severity, kind, events > 0 AS seen FROM encml.security_summary('1 hour')
 WHERE kind IN ('role_superuser', 'admin_role_granted', 'rls_disabled', 'decrypt_rate_exceeded', 'copy_to')
 ORDER BY kind;
SELECT count(*) FILTER (WHERE line LIKE '# TYPE %') > 10 AS families,
       bool_or(line = 'encml_preloaded 1') AS preloaded,
       bool_or(line LIKE 'encml_decrypt_rate_alerts_total %') AS rate_alerts,
       bool_or(line LIKE 'encml_audit_chain_ok %') AS chain,
       bool_or(line ~ '^encml_key_encryptions_total\{key="[0-9a-f-]{36}",version="[0-9]+"\} [1-9][0-9]*$') AS key_encryptions
  FROM regexp_split_to_table(encml.metrics(), E'\n') AS line;
-- Lockouts need TCP logins with passwords (tests/integration/threats.sh); none here.
SELECT count(*) AS locked FROM encml.auth_failures WHERE locked_until IS NOT NULL AND role_name LIKE 'sm\_%';
SELECT encml.unlock('sm_nobody') AS released;
-- Who may read what.
SET ROLE sm_reader;
SELECT pg_temp.t('SELECT encml.metrics()') AS metrics;
SELECT pg_temp.t('SELECT count(*) FROM encml.security_events') AS events;
SELECT pg_temp.t('SELECT encml.unlock(''x'')') AS unlock;
RESET ROLE;

DROP TABLE sm_patients, sm_vault;
SET client_min_messages = warning;
DROP OWNED BY sm_reader, sm_app;
DROP ROLE sm_reader, sm_app, sm_team;
RESET client_min_messages;
