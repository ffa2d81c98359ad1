-- Per-key privileges: encrypt, decrypt and admin, checked on every use, inherited through role
-- membership, effective in other sessions at their next statement, refusals audited.
CREATE ROLE kg_owner;
CREATE ROLE kg_app;
CREATE ROLE kg_readers;
CREATE ROLE kg_analyst IN ROLE kg_readers;
CREATE ROLE kg_stranger;
SET ROLE kg_owner;
SELECT encml.create_key('regress-grants') AS k \gset
SELECT encml.encrypt('secret', :'k', 'row 1') AS c \gset
-- The creator holds every privilege.
SELECT encml.decrypt_text(:'c', 'row 1') AS owner_reads;
RESET ROLE;
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') $$;

-- Without a grant: no decryption, no encryption, no administration (42501 naming the key).
SET ROLE kg_app;
SELECT pg_temp.t(format('SELECT encml.decrypt_text(%L, %L)', :'c', 'row 1'));
SELECT pg_temp.t(format('SELECT encml.encrypt(%L::text, %L)', 'x', :'k'));
SELECT pg_temp.t(format('SELECT encml.rotate_key(%L)', :'k'));
SELECT pg_temp.t(format('SELECT encml.grant_key(%L, %L, %L)', :'k', 'kg_app', 'decrypt'));
RESET ROLE;

-- The owner grants encrypt to the application and decrypt to a group.
SET ROLE kg_owner;
SELECT encml.grant_key(:'k', 'kg_app', 'encrypt') AS granted,
       encml.grant_key(:'k', 'kg_app', 'encrypt') AS granted_again,
       encml.grant_key(:'k', 'kg_readers', 'decrypt') AS granted_group;
SELECT pg_temp.t(format('SELECT encml.grant_key(%L, %L, %L)', :'k', 'kg_app', 'read'));
RESET ROLE;
SET ROLE kg_app;
SELECT encml.encrypt('by the app', :'k', 'row 2') AS c2 \gset
SELECT pg_temp.t(format('SELECT encml.decrypt_text(%L, %L)', :'c2', 'row 2')) AS app_cannot_read;
RESET ROLE;
-- A member of the group inherits decrypt.
SET ROLE kg_analyst;
SELECT encml.decrypt_text(:'c2', 'row 2') AS analyst_reads;
SELECT pg_temp.t(format('SELECT encml.encrypt(%L::text, %L)', 'x', :'k')) AS analyst_cannot_write;
RESET ROLE;
SET ROLE kg_stranger;
SELECT pg_temp.t(format('SELECT encml.decrypt_text(%L, %L)', :'c2', 'row 2')) AS stranger;
RESET ROLE;

-- Every kind of decryption is covered: tensors, jsonb (left encrypted), large objects, det, ore.
SELECT encml.encrypt_tensor('{1,2}'::real[], :'k') AS tensor \gset
SELECT encml.encrypt_jsonb('{"a": 1}', :'k', '{a}') AS doc \gset
SET ROLE kg_stranger;
SELECT pg_temp.t(format('SELECT encml.decrypt_tensor_real(%L)', :'tensor'));
SELECT left(encml.decrypt_jsonb(:'doc')->>'a', 9) AS jsonb_left_encrypted;
RESET ROLE;
SELECT encml.create_key('regress-grants-det', 'deterministic') AS kd \gset
SELECT encml.create_key('regress-grants-ore', 'ore') AS ko \gset
SET ROLE kg_stranger;
SELECT pg_temp.t(format('SELECT encml.det_encrypt(%L::text, %L)', 'x', :'kd'));
SELECT pg_temp.t(format('SELECT encml.ore_encrypt(5::bigint, %L)', :'ko'));
RESET ROLE;

-- Admin can be granted; revoking takes it away again.
SET ROLE kg_owner;
SELECT encml.grant_key(:'k', 'kg_app', 'admin');
RESET ROLE;
SET ROLE kg_app;
SELECT encml.rotate_key(:'k') AS app_rotated;
RESET ROLE;
SET ROLE kg_owner;
SELECT encml.revoke_key(:'k', 'kg_app', 'admin') AS revoked, encml.revoke_key(:'k', 'kg_app', 'admin') AS revoked_again;
SELECT encml.revoke_key(:'k', 'kg_readers', 'decrypt');
RESET ROLE;
SET ROLE kg_app;
SELECT pg_temp.t(format('SELECT encml.rotate_key(%L)', :'k')) AS app_admin_revoked;
RESET ROLE;
SET ROLE kg_analyst;
SELECT pg_temp.t(format('SELECT encml.decrypt_text(%L, %L)', :'c2', 'row 2')) AS analyst_revoked;
RESET ROLE;

-- A revocation in another session takes effect at this session's next statement, even in an
-- open transaction that already decrypted with the key.
SET ROLE kg_owner;
SELECT encml.grant_key(:'k', 'kg_readers', 'decrypt');
RESET ROLE;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
BEGIN;
SET LOCAL ROLE kg_analyst;
SELECT encml.decrypt_text(:'c2', 'row 2') AS before_revoke;
RESET ROLE;
SELECT r AS revoked_in_other_session
  FROM dblink(:'conninfo', format('SELECT encml.revoke_key(%L, %L, %L)', :'k', 'kg_readers', 'decrypt')) AS t(r bool);
SET LOCAL ROLE kg_analyst;
SELECT pg_temp.t(format('SELECT encml.decrypt_text(%L, %L)', :'c2', 'row 2')) AS after_revoke;
ROLLBACK;

-- Refusals are security events; grants and revokes are events too.
SELECT operation, detail->>'privilege' AS privilege, effective_role
  FROM encml.audit_log WHERE id > :base AND operation IN ('key_privilege_refused', 'key_admin_refused', 'grant_key', 'revoke_key')
 ORDER BY id;
-- The grant table is not readable by PUBLIC and is dumped with the extension.
SET ROLE kg_stranger;
SELECT pg_temp.t('SELECT * FROM encml.key_grants');
RESET ROLE;
SELECT count(*) > 0 AS dumped FROM pg_extension e, unnest(e.extconfig) AS c WHERE c = 'encml.key_grants'::regclass;

-- (DROP OWNED removes the key grants: a role holding one is not dropped.)
DROP OWNED BY kg_analyst, kg_readers, kg_app, kg_stranger;
DROP ROLE kg_analyst, kg_readers, kg_app, kg_stranger;
SET client_min_messages = warning;
DROP OWNED BY kg_owner;
DROP ROLE kg_owner;
RESET client_min_messages;
