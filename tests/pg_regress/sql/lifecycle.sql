-- Key lifecycle automation: re-encryption jobs (background and foreground), rotation policies,
-- compromised keys (docs/keys.md "Rotation policies and re-encryption jobs"). The jobs run in
-- the lifecycle worker; wait_jobs() waits for the queue to empty.
-- Waits (up to 30 s) until the query returns true; returns what it waited for, or 'timeout'.
CREATE FUNCTION pg_temp.wait_until(what text, query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE done boolean;
BEGIN
    FOR i IN 1..600 LOOP
        EXECUTE query INTO done;
        IF done THEN RETURN what; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN 'timeout';
END
$$;
CREATE FUNCTION pg_temp.wait_jobs() RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.wait_until('idle',
        'SELECT NOT EXISTS (SELECT FROM encml.reencryption_jobs WHERE state IN (''queued'', ''running''))')
$$;
SELECT encml.create_key('lc-aead') AS k \gset
SELECT encml.create_key('lc-det', 'deterministic') AS kd \gset
SELECT encml.create_key('lc-ore', 'ore') AS ko \gset
CREATE TABLE lc_people (
    id int PRIMARY KEY,
    note encml.enc_bytea,
    diagnosis encml.enc_bytea,                -- bound to 'lc.diagnosis:{id}'
    email encml.det_text UNIQUE,
    salary encml.ore_int8,
    profile jsonb,
    plain text
);
CREATE INDEX ON lc_people (salary);
INSERT INTO lc_people
SELECT i, encml.encrypt('note ' || i, :'k'),
       encml.encrypt('diagnosis ' || i, :'k', 'lc.diagnosis:' || i),
       encml.det_encrypt('user' || i || '@example.com', :'kd'),
       encml.ore_encrypt(i * 100, :'ko'),
       encml.encrypt_jsonb(jsonb_build_object('ssn', 'ssn-' || i, 'city', 'c' || (i % 3)), :'k', '{ssn}'),
       'p' || i
  FROM generate_series(1, 300) i;

-- Refusals, before anything is queued.
SELECT try($$SELECT * FROM encml.reencrypt_table(NULL, 'note')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'nope')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'plain')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'email', aad => 'x')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.{id')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.}')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.{}')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.{missing}')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'profile')$$);
CREATE VIEW lc_view AS SELECT * FROM lc_people;
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_view', 'note')$$);
-- Nothing under an older version yet: no job.
SELECT count(*) AS jobs FROM encml.reencrypt_table('lc_people', 'note');

-- Rotate all three keys; queue every column.
SELECT encml.rotate_key(:'k') AS aead_v, encml.rotate_key(:'kd') AS det_v, encml.rotate_key(:'ko') AS ore_v;
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'note');
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.diagnosis:{id}');
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'email');
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'salary');
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'profile', key => :'k');
-- Queuing the same column and key again joins the live job.
SELECT count(*) AS live_jobs FROM encml.reencryption_jobs WHERE state IN ('queued', 'running');
SELECT pg_temp.wait_jobs();
SELECT column_name, kind, reason, state, rows_done, rows_left, pass, error
  FROM encml.reencryption_progress ORDER BY job;
-- Every value is on the new versions, reads back, and the searchable columns still search.
SELECT encml.key_version(note) AS note_v, encml.key_version(diagnosis) AS diagnosis_v,
       encml.key_version(email) AS email_v, encml.key_version(salary) AS salary_v,
       count(*),
       bool_and(encml.decrypt_text(note) = 'note ' || id) AS notes_read,
       bool_and(encml.decrypt_text(diagnosis, 'lc.diagnosis:' || id) = 'diagnosis ' || id) AS diagnoses_read,
       bool_and(encml.det_decrypt(email) = 'user' || id || '@example.com') AS emails_read,
       bool_and(encml.ore_decrypt(salary) = id * 100) AS salaries_read,
       bool_and(encml.decrypt_jsonb(profile) ->> 'ssn' = 'ssn-' || id) AS profiles_read
  FROM lc_people GROUP BY 1, 2, 3, 4;
SELECT id FROM lc_people WHERE email = encml.det_encrypt('user7@example.com', :'kd');
SELECT count(*) AS in_range FROM lc_people
 WHERE salary BETWEEN encml.ore_encrypt(1000, :'ko') AND encml.ore_encrypt(2000, :'ko');
-- The UNIQUE constraint still holds on the new version.
SELECT try(format('INSERT INTO lc_people (id, email) VALUES (1000, encml.det_encrypt(%L, %L))',
                  'user7@example.com', :'kd'));
-- The versions no value uses any more can be retired.
SELECT encml.retire_key_version(:'k', 1), encml.retire_key_version(:'kd', 1), encml.retire_key_version(:'ko', 1);
-- Each job left its events in the audit log.
SELECT operation, count(*) FROM encml.audit_log
 WHERE operation IN ('reencryption_queued', 'reencryption_started', 'reencryption_finished')
 GROUP BY 1 ORDER BY 1;

-- Searching a column that is half re-encrypted (as during a job): equality under every
-- searchable version, and one ORE range per version joined laterally, each using the index.
SELECT encml.rotate_key(:'kd') AS det_v, encml.rotate_key(:'ko') AS ore_v;
UPDATE lc_people SET email = encml.det_reencrypt(email), salary = encml.ore_reencrypt(salary)
 WHERE id % 2 = 0;
SELECT encml.key_version(email) AS email_v, encml.key_version(salary) AS salary_v, count(*)
  FROM lc_people GROUP BY 1, 2 ORDER BY 1;
SELECT id FROM lc_people WHERE email = ANY (encml.det_encrypt_all_versions('user7@example.com', :'kd'))
UNION ALL
SELECT id FROM lc_people WHERE email = ANY (encml.det_encrypt_all_versions('user8@example.com', :'kd'));
SELECT count(*) AS in_range, min(p.id), max(p.id)
  FROM encml.key_versions v
  JOIN lc_people p ON p.salary BETWEEN encml.ore_encrypt(1000, v.key_id, v.version)
                                   AND encml.ore_encrypt(2000, v.key_id, v.version)
 WHERE v.key_id = :'ko' AND v.status = 'active';
CREATE FUNCTION pg_temp.plan_uses(query text, node text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line LIKE '%' || node || '%' THEN RETURN true; END IF;
    END LOOP;
    RETURN false;
END
$$;
SET enable_seqscan = off;
SELECT pg_temp.plan_uses(format($$SELECT p.id FROM encml.key_versions v
  JOIN lc_people p ON p.salary BETWEEN encml.ore_encrypt(1000, v.key_id, v.version)
                                   AND encml.ore_encrypt(2000, v.key_id, v.version)
 WHERE v.key_id = %L AND v.status = 'active'$$, :'ko'), 'Index Scan on lc_people_salary_idx') AS ranges_use_the_index,
       pg_temp.plan_uses(format($$SELECT id FROM lc_people
 WHERE email = ANY (encml.det_encrypt_all_versions('user7@example.com', %L))$$, :'kd'), 'lc_people_email_key') AS equality_uses_the_index;
RESET enable_seqscan;
SELECT replace(try(format('SELECT encml.ore_encrypt(1, %L, 9)', :'ko')), :'ko', '<ko>');
SELECT try(format('SELECT encml.ore_encrypt(1, %L, NULL)', :'ko'));
SELECT pg_typeof(encml.ore_encrypt(1, :'ko', 2)) AS int_gives, pg_typeof(encml.ore_encrypt(1.5, :'ko', 2)) AS numeric_gives;
-- Retiring a version still used is refused, ORE columns and materialized views included.
CREATE MATERIALIZED VIEW lc_salaries AS SELECT id, salary FROM lc_people;
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 2)', :'ko')), :'ko', '<ko>');
SELECT table_name FROM encml.reencrypt_table('lc_people', 'email');
SELECT table_name FROM encml.reencrypt_table('lc_people', 'salary');
SELECT pg_temp.wait_jobs();
SELECT encml.key_version(email) AS email_v, encml.key_version(salary) AS salary_v, count(*)
  FROM lc_people GROUP BY 1, 2 ORDER BY 1;
-- The materialized view still holds the old version until refreshed.
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 2)', :'ko')), :'ko', '<ko>');
DROP MATERIALIZED VIEW lc_salaries;

-- The foreground variant, for small tables: one UPDATE in the caller's transaction.
SELECT encml.rotate_key(:'k') AS aead_v;
SELECT encml.reencrypt_table_now('lc_people', 'note') AS moved;
SELECT encml.reencrypt_table_now('lc_people', 'note') AS moved_again;
SELECT encml.reencrypt_table_now('lc_people', 'diagnosis', aad => 'lc.diagnosis:{id}') AS moved;
SELECT encml.key_version(note), encml.key_version(diagnosis), count(*) FROM lc_people GROUP BY 1, 2;
-- A value that an owner's trigger keeps as it was is not counted as moved (attacker pass).
SELECT encml.create_key('lc-kept') AS kk \gset
CREATE TABLE lc_kept (id int, v encml.enc_bytea);
INSERT INTO lc_kept SELECT i, encml.encrypt('k' || i, :'kk') FROM generate_series(1, 5) i;
SELECT encml.rotate_key(:'kk') AS kept_v;
CREATE FUNCTION lc_keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER lc_keep BEFORE UPDATE ON lc_kept FOR EACH ROW EXECUTE FUNCTION lc_keep();
SELECT encml.reencrypt_table_now('lc_kept', 'v') AS counted_as_moved;
SELECT encml.key_version(v), count(*) FROM lc_kept GROUP BY 1;
DROP TABLE lc_kept;
DROP FUNCTION lc_keep();
-- A wrong AAD template fails on the first value and moves nothing.
SELECT encml.rotate_key(:'k') AS aead_v;
SELECT try($$SELECT encml.reencrypt_table_now('lc_people', 'diagnosis', aad => 'wrong:{id}')$$);
-- (A template of any length: 150 columns read, still the wrong AAD.)
SELECT try($$SELECT encml.reencrypt_table_now('lc_people', 'diagnosis', aad => repeat('{id}', 150))$$);
SELECT encml.key_version(diagnosis), count(*) FROM lc_people GROUP BY 1;
-- In the background it fails the job, with the error on the job.
SELECT table_name FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'wrong:{id}');
SELECT pg_temp.wait_jobs();
SELECT column_name, state, rows_done, error FROM encml.reencryption_progress WHERE state = 'failed';
SELECT operation, detail ->> 'severity' AS severity FROM encml.audit_log
 WHERE operation = 'reencryption_failed';

-- reencrypt_key finds every column holding older versions of the key (enc_bytea, jsonb), and
-- uses the AAD template the column's last job was given.
SELECT table_name, target_version FROM encml.reencrypt_table('lc_people', 'diagnosis', aad => 'lc.diagnosis:{id}');
SELECT pg_temp.wait_jobs();
SELECT encml.rotate_key(:'k') AS aead_v;
SELECT table_name, column_name, target_version FROM encml.reencrypt_key(:'k') ORDER BY 2;
SELECT pg_temp.wait_jobs();
SELECT encml.key_version(note), encml.key_version(diagnosis), count(*) FROM lc_people GROUP BY 1, 2;
SELECT count(*) FILTER (WHERE state = 'done') AS done FROM encml.reencryption_jobs
 WHERE key_id = :'k' AND target_version = 5;

-- A job queued in a transaction starts at commit; cancelled before, it never runs.
SELECT encml.rotate_key(:'k') AS aead_v;
BEGIN;
SELECT job AS j FROM encml.reencrypt_table('lc_people', 'note') \gset
SELECT encml.cancel_reencryption(:j) AS cancelled;
COMMIT;
SELECT pg_temp.wait_jobs();
SELECT state FROM encml.reencryption_jobs WHERE id = :j;
SELECT encml.cancel_reencryption(:j) AS cancelled_again;
SELECT try('SELECT encml.cancel_reencryption(-1)');
SELECT encml.key_version(note), count(*) FROM lc_people GROUP BY 1;

-- Rights: a role that may not update the column, or may not use the key, is refused; the job
-- of a role runs with that role's rights.
CREATE ROLE lc_user LOGIN;
GRANT SELECT ON lc_people TO lc_user;
SET ROLE lc_user;
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_people', 'note')$$);
SELECT replace(try(format('SELECT * FROM encml.reencrypt_key(%L)', :'k')), :'k', '<k>');
SELECT replace(try(format('SELECT encml.set_rotation_policy(%L, %L)', :'k', '30 days')), :'k', '<k>');
SELECT replace(try(format('SELECT encml.compromise_key(%L, %L)', :'k', 'test')), :'k', '<k>');
SELECT try('SELECT encml.run_key_lifecycle()');
SELECT replace(try(format('SELECT encml.cancel_reencryption(%s)', :j)), :'j', '<j>');
SELECT count(*) AS visible_jobs FROM encml.reencryption_progress;
SELECT try('SELECT count(*) FROM encml.reencryption_jobs');
RESET ROLE;
GRANT UPDATE (note) ON lc_people TO lc_user;
SET ROLE lc_user;
SELECT replace(try($$SELECT * FROM encml.reencrypt_table('lc_people', 'note')$$), :'k', '<k>');
RESET ROLE;
SELECT encml.grant_key(:'k', 'lc_user', 'decrypt'), encml.grant_key(:'k', 'lc_user', 'encrypt');
-- A batch runs as the table's owner (here the superuser who created lc_people), session_user
-- included, in a security-restricted operation: the owner's triggers cannot SET ROLE.
CREATE TABLE lc_seen (session_role text, effective_role text, set_role text);
GRANT INSERT ON lc_seen TO lc_user;
CREATE FUNCTION lc_seen_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE attempt text := 'allowed';
BEGIN
    BEGIN
        SET ROLE postgres;
    EXCEPTION WHEN OTHERS THEN
        attempt := SQLSTATE || ': ' || SQLERRM;
    END;
    INSERT INTO public.lc_seen VALUES (session_user, current_user, attempt);
    RETURN NULL;
END
$$;
CREATE TRIGGER lc_seen AFTER UPDATE ON lc_people FOR EACH STATEMENT EXECUTE FUNCTION lc_seen_trigger();
SET ROLE lc_user;
SELECT table_name FROM encml.reencrypt_table('lc_people', 'note');
RESET ROLE;
SELECT pg_temp.wait_jobs();
SELECT DISTINCT session_role, effective_role, set_role FROM lc_seen;
DROP TRIGGER lc_seen ON lc_people;
SELECT run_as, state, rows_done FROM encml.reencryption_progress
 WHERE column_name = 'note' ORDER BY job DESC LIMIT 1;
-- A job keeps the authority it was queued with: revoking the role's decrypt privilege afterwards
-- does not stop it (it only moves ciphertexts of the key; nothing is decrypted for anyone).
SELECT encml.rotate_key(:'k') AS aead_v;
BEGIN;
SET LOCAL ROLE lc_user;
SELECT job AS j FROM encml.reencrypt_table('lc_people', 'note') \gset
RESET ROLE;
SELECT encml.revoke_key(:'k', 'lc_user', 'decrypt');
COMMIT;
SELECT pg_temp.wait_jobs();
SELECT state, replace(error, :'k', '<k>') AS error FROM encml.reencryption_jobs WHERE id = :j;
SELECT encml.reencrypt_table_now('lc_people', 'note') AS moved_by_owner;

-- Attacker pass of issue 31: a table whose column holds a forged header naming another role's
-- key makes that key's jobs visit it. The batch runs as the table's owner, so the owner's row
-- security policy never runs with the key administrator's rights (it ran as the victim's role
-- before the fix), and the bait fails that table's job only.
CREATE ROLE lc_mallory LOGIN;
GRANT CREATE ON SCHEMA public TO lc_mallory;
SELECT encml.create_key('lc-victim') AS kv \gset
CREATE TABLE lc_victim (id int, v encml.enc_bytea);
INSERT INTO lc_victim SELECT i, encml.encrypt('v' || i, :'kv') FROM generate_series(1, 20) i;
SET ROLE lc_mallory;
CREATE TABLE lc_bait (id int, c encml.enc_bytea);
INSERT INTO lc_bait VALUES (1, ('\x454d0101' || replace(:'kv', '-', '') || '00000001'
    || repeat('00', 12) || '41' || repeat('00', 16))::bytea::encml.enc_bytea);
SELECT encml.key_id(c) = :'kv' AS forged_header_names_the_victim_key FROM lc_bait;
-- The policy says who runs it in the job's error (anything it wrote would be rolled back).
CREATE FUNCTION lc_gate() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the bait policy ran as %/%', current_user, session_user;
END
$$;
ALTER TABLE lc_bait ENABLE ROW LEVEL SECURITY;
ALTER TABLE lc_bait FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON lc_bait USING (lc_gate());
RESET ROLE;
SELECT encml.rotate_key(:'kv') AS victim_v;
SELECT table_name, column_name FROM encml.reencrypt_key(:'kv') ORDER BY 1;
SELECT pg_temp.wait_jobs();
SELECT table_name, state, rows_done, error FROM encml.reencryption_progress
 WHERE key_id = :'kv' ORDER BY 1;
SELECT encml.key_version(v), count(*) FROM lc_victim GROUP BY 1;
-- The creator of a key (not a key administrator) reports it compromised.
SET ROLE lc_mallory;
SELECT encml.compromise_key(encml.create_key('lc-own'), 'test') AS new_version;
RESET ROLE;
DROP TABLE lc_victim, lc_bait;
DROP FUNCTION lc_gate();

-- Rotation policies: validated; due ones rotate and re-encrypt without manual steps.
SELECT try(format('SELECT encml.set_rotation_policy(%L, %L)', :'k', '10 seconds'));
SELECT try(format('SELECT encml.set_rotation_policy(%L, NULL)', :'k'));
SELECT try(format('SELECT encml.set_rotation_policy(%L, %L, retire_after => %L)', :'k', '30 days', '-1 day'));
SELECT try(format('SELECT encml.set_rotation_policy(%L, %L, max_encryptions => 0)', :'k', '30 days'));
SELECT try(format('SELECT encml.set_rotation_policy(%L, %L, max_encryptions => 10)', :'kd', '30 days'));
SELECT encml.create_key('lc-fpe', 'fpe') AS kf \gset
SELECT replace(try(format('SELECT encml.set_rotation_policy(%L, %L)', :'kf', '30 days')), :'kf', '<kf>');
SELECT encml.set_rotation_policy(:'k', '30 days', retire_after => '0 seconds');
SELECT name, rotate_every, reencrypt, retire_after, next_rotation > now() AS not_due, last_error
  FROM encml.rotation_policy_status;
SELECT version AS before_v FROM encml.keys WHERE id = :'k' \gset
-- Make the current version look 31 days old, then run the worker as a server without the
-- launcher's rounds would.
UPDATE encml.data_key_versions SET created_at = now() - interval '31 days'
 WHERE key_id = :'k' AND version = :before_v;
SELECT encml.run_key_lifecycle();
SELECT pg_temp.wait_until('rotated', format('SELECT version > %s FROM encml.keys WHERE id = %L', :before_v, :'k'));
SELECT pg_temp.wait_jobs();
SELECT version - :before_v AS versions_added FROM encml.keys WHERE id = :'k';
SELECT encml.key_version(note) = v.version AS note_current, encml.key_version(diagnosis) = v.version AS diagnosis_current, count(*)
  FROM lc_people, encml.keys v WHERE v.id = :'k' GROUP BY 1, 2;
SELECT reason, state, count(*) FROM encml.reencryption_jobs
 WHERE key_id = :'k' AND reason = 'policy' GROUP BY 1, 2;
-- retire_after => 0: the older versions no value uses are retired after the jobs.
SELECT pg_temp.wait_until('retired', format($$SELECT count(*) = 1 FROM encml.key_versions WHERE key_id = %L AND status = 'active'$$, :'k'));
SELECT operation, detail ->> 'by' AS by FROM encml.audit_log
 WHERE operation IN ('rotate_key', 'retire_key_version') AND detail ->> 'by' IS NOT NULL
 GROUP BY 1, 2 ORDER BY 1;
SELECT check_name, status FROM encml.compliance_report() WHERE check_name = 'key_compromises';
SELECT encml.drop_rotation_policy(:'k');
SELECT encml.drop_rotation_policy(:'k') AS dropped_again;

-- Compromise: rotate at once, mark the earlier versions, re-encrypt first, report when clear.
SELECT encml.create_key('lc-det2', 'deterministic') AS kc \gset
CREATE TABLE lc_accounts (id int PRIMARY KEY, login encml.det_text UNIQUE);
INSERT INTO lc_accounts SELECT i, encml.det_encrypt('login' || i, :'kc') FROM generate_series(1, 50) i;
SELECT try(format('SELECT encml.compromise_key(%L, %L)', :'kc', ' '));
BEGIN;
SELECT encml.compromise_key(:'kc', 'laptop with an export of the key stolen') AS new_version;
SELECT version, reason, cleared_at IS NULL AS open FROM encml.compromised_key_versions WHERE key_id = :'kc';
-- Searches no longer encrypt under the compromised version.
SELECT array_length(encml.det_encrypt_all_versions('login1', :'kc'), 1) AS search_versions;
SELECT check_name, status FROM encml.compliance_report() WHERE check_name = 'key_compromises';
COMMIT;
SELECT pg_temp.wait_jobs();
SELECT reason, priority, state, rows_done FROM encml.reencryption_jobs WHERE key_id = :'kc';
-- (The worker looks at the compromise in a transaction of its own after the job.)
SELECT pg_temp.wait_until('cleared', format('SELECT bool_and(cleared_at IS NOT NULL) FROM encml.compromised_key_versions WHERE key_id = %L', :'kc'));
SELECT version, cleared_at IS NOT NULL AS cleared FROM encml.compromised_key_versions WHERE key_id = :'kc';
SELECT id FROM lc_accounts WHERE login = ANY (encml.det_encrypt_all_versions('login9', :'kc'));
SELECT operation, detail ->> 'severity' AS severity FROM encml.audit_log
 WHERE operation IN ('key_compromised', 'key_compromise_cleared') ORDER BY id;
SELECT check_name, status FROM encml.compliance_report() WHERE check_name = 'key_compromises';
-- A compromise of a key no value uses is cleared at once.
SELECT encml.create_key('lc-unused') AS ku \gset
SELECT encml.compromise_key(:'ku', 'test') AS new_version;
SELECT version, cleared_at IS NOT NULL AS cleared FROM encml.compromised_key_versions WHERE key_id = :'ku';

-- A det_text column with a UNIQUE index of its own: a value written under the new version during
-- the job, equal to an older one not yet moved, is left (not a 23505 failing the whole job),
-- every other value moves, and the job names the duplicates at its end.
SELECT encml.create_key('lc-det3', 'deterministic') AS ku3 \gset
CREATE TABLE lc_logins (id int PRIMARY KEY, login encml.det_text UNIQUE);
INSERT INTO lc_logins SELECT i, encml.det_encrypt('name' || i, :'ku3') FROM generate_series(1, 40) i;
BEGIN;
SELECT encml.rotate_key(:'ku3') AS v;
SELECT count(*) AS jobs FROM encml.reencrypt_table('lc_logins', 'login');
INSERT INTO lc_logins VALUES (41, encml.det_encrypt('name7', :'ku3')), (42, encml.det_encrypt('name9', :'ku3'));
COMMIT;
SELECT pg_temp.wait_jobs();
SELECT state, rows_done, error FROM encml.reencryption_progress WHERE table_name = 'lc_logins'::regclass;
SELECT encml.key_version(login) AS v, count(*) FROM lc_logins GROUP BY 1 ORDER BY 1;
SELECT id FROM lc_logins WHERE login = ANY (encml.det_encrypt_all_versions('name7', :'ku3')) ORDER BY id;
DROP TABLE lc_logins;

-- Large objects: an oid column naming lo_encrypt objects. Each row is pointed at a new object
-- under the current version; the replaced objects are unlinked once no oid column names them.
SELECT encml.create_key('lc-lo') AS kl \gset
CREATE TABLE lc_docs (id int PRIMARY KEY, doc oid);
-- (lo_encrypt reads its source with the statement's snapshot: the plaintext objects first.)
INSERT INTO lc_docs
SELECT i, lo_from_bytea(0, convert_to(repeat('page ' || i || ' ', 2000), 'UTF8')) FROM generate_series(1, 6) i;
UPDATE lc_docs SET doc = encml.lo_encrypt(doc, :'kl', 4096) WHERE lo_unlink(doc) = 1;
SELECT lo_unlink(doc) FROM lc_docs WHERE id = 2;
UPDATE lc_docs SET doc = (SELECT doc FROM lc_docs WHERE id = 1) WHERE id = 2;  -- shared by two rows
INSERT INTO lc_docs VALUES (7, NULL), (8, lo_from_bytea(0, 'not encrypted')), (9, 4294967000);
CREATE TABLE lc_docs_copy AS SELECT doc FROM lc_docs WHERE id = 3;   -- another table names doc 3
SELECT array_agg(doc ORDER BY id) AS old_docs FROM lc_docs WHERE id <= 6 \gset
SELECT doc AS plain_doc FROM lc_docs WHERE id = 8 \gset
SELECT try($$SELECT * FROM encml.reencrypt_table('lc_docs', 'doc')$$);
SELECT try($$SELECT * FROM encml.reencrypt_table('pg_largeobject', 'loid', key => gen_random_uuid())$$);
SELECT encml.rotate_key(:'kl') AS lo_v;
SELECT table_name, target_version FROM encml.reencrypt_table('lc_docs', 'doc', key => :'kl');
SELECT pg_temp.wait_jobs();
SELECT kind, state, rows_done, error FROM encml.reencryption_progress WHERE column_name = 'doc';
-- Every encrypted object is new, under version 2, and reads back; the shared one stays shared.
SELECT id, doc = ANY (:'old_docs'::oid[]) AS same_object, (encml.lo_encryption_info(doc)).key_version,
       convert_from(encml.lo_decrypt_range(doc, 0, 100000), 'UTF8')
         = repeat('page ' || CASE id WHEN 2 THEN 1 ELSE id END || ' ', 2000) AS reads_back
  FROM lc_docs WHERE id <= 6 ORDER BY id;
SELECT count(DISTINCT doc) AS objects_for_rows_1_2 FROM lc_docs WHERE id IN (1, 2);
-- The replaced objects are gone, except the one lc_docs_copy still names; others untouched.
SELECT count(*) AS old_objects_left FROM pg_largeobject_metadata WHERE oid = ANY (:'old_docs'::oid[]);
SELECT EXISTS (SELECT FROM pg_largeobject_metadata m JOIN lc_docs_copy c ON c.doc = m.oid) AS copy_kept,
       EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = :plain_doc) AS plain_kept;
SELECT count(*) AS recorded FROM encml.reencryption_large_objects;
-- The foreground variant, and a trigger keeping the old value: the object it made is unlinked.
SELECT encml.rotate_key(:'kl') AS lo_v;
CREATE TABLE lc_docs_kept (id int, doc oid);
INSERT INTO lc_docs_kept SELECT 1, lo_from_bytea(0, 'kept');
UPDATE lc_docs_kept SET doc = encml.lo_encrypt(doc, :'kl') WHERE lo_unlink(doc) = 1;
SELECT count(*) AS objects_before FROM pg_largeobject_metadata \gset
CREATE FUNCTION lc_keep_doc() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER keep BEFORE UPDATE ON lc_docs_kept FOR EACH ROW EXECUTE FUNCTION lc_keep_doc();
SELECT encml.reencrypt_table_now('lc_docs_kept', 'doc', key => :'kl') AS counted_as_moved;
SELECT (SELECT count(*) FROM pg_largeobject_metadata) - :objects_before AS objects_added;
SELECT encml.reencrypt_table_now('lc_docs', 'doc', key => :'kl') AS moved;
SELECT (encml.lo_encryption_info(doc)).key_version, count(*) FROM lc_docs WHERE id <= 6 GROUP BY 1;
SELECT (SELECT count(*) FROM pg_largeobject_metadata) - :objects_before AS objects_added;
-- Found by reencrypt_key with the other columns of the key (lc_docs_copy too); compromise
-- clears once moved.
DROP TRIGGER keep ON lc_docs_kept;
SELECT encml.compromise_key(:'kl', 'test') AS new_version;
SELECT pg_temp.wait_jobs();
SELECT table_name::text, kind, state, error FROM encml.reencryption_progress
 WHERE column_name = 'doc' AND reason = 'compromise' ORDER BY 1;
SELECT pg_temp.wait_until('cleared', format('SELECT bool_and(cleared_at IS NOT NULL) FROM encml.compromised_key_versions WHERE key_id = %L', :'kl'));
SELECT count(*) AS objects_under_older_versions FROM pg_largeobject
 WHERE pageno = 0 AND substring(data FROM 5 FOR 16) = uuid_send(:'kl')
   AND substring(data FROM 21 FOR 4) <> '\x00000004'::bytea;
SELECT lo_unlink(doc) FROM lc_docs_copy;
SELECT lo_unlink(doc) FROM lc_docs WHERE id IN (1, 3, 4, 5, 6, 8);
SELECT lo_unlink(doc) FROM lc_docs_kept;
DROP TABLE lc_docs, lc_docs_copy, lc_docs_kept;
DROP FUNCTION lc_keep_doc();

DROP TABLE lc_people, lc_accounts, lc_seen CASCADE;
DROP FUNCTION lc_seen_trigger();
DROP OWNED BY lc_user, lc_mallory;
DROP ROLE lc_user, lc_mallory;
