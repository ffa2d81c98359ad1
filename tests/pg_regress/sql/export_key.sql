-- Key export to a client: HPKE-wrapped for an X25519 public key, admins only, audited outside
-- the transaction. (The client side is exercised by examples/python in the integration tests.)
SELECT encml.create_key('regress-export') AS k \gset
SELECT coalesce(max(id), 0) AS base FROM encml.audit_log \gset
-- try() without key ids, which differ from run to run.
CREATE FUNCTION pg_temp.t(sql text) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(public.try(sql), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY', 'g') $$;
-- A raw 32-byte X25519 public key (RFC 7748 test vector, Bob's).
\set pub '\\xde9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'
SELECT octet_length(x) AS bytes, substring(x from 1 for 4) AS magic_version_suite,
       substring(x from 5 for 16) = uuid_send(:'k'::uuid) AS key_id_matches,
       get_byte(x, 23) AS version
  FROM (SELECT encml.export_key(:'k', :'pub') AS x) s;
-- Fresh ephemeral key every time; an older version on request.
SELECT encml.export_key(:'k', :'pub') <> encml.export_key(:'k', :'pub') AS randomized;
SELECT encml.rotate_key(:'k');
SELECT get_byte(encml.export_key(:'k', :'pub'), 23) AS current, get_byte(encml.export_key(:'k', :'pub', 1), 23) AS old;
-- The key material never appears in clear: the result is exactly header + enc + sealed root.
SELECT pg_temp.t(format('SELECT encml.export_key(%L, %L)', :'k', '\x0102'));
SELECT pg_temp.t(format('SELECT encml.export_key(%L, %L, 9)', :'k', :'pub'));
SELECT pg_temp.t(format('SELECT encml.export_key(%L, %L, 0)', :'k', :'pub'));
SELECT pg_temp.t(format('SELECT encml.export_key(%L, %L)', '00000000-0000-0000-0000-000000000001', :'pub'));
SELECT encml.export_key(NULL, :'pub') IS NULL AS null_key, encml.export_key(:'k', NULL) IS NULL AS null_recipient;
-- Not an admin of the key: refused (and the refusal is recorded).
CREATE ROLE export_clerk;
SELECT pg_temp.t(format('SET ROLE export_clerk; SELECT encml.export_key(%L, %L)', :'k', :'pub')) LIKE '42501: permission denied to administer key%' AS refused;
RESET ROLE;
DROP ROLE export_clerk;
-- A rolled-back export is still in the audit log: the caller saw the wrapped key.
BEGIN;
SELECT octet_length(encml.export_key(:'k', :'pub')) AS exported_then_rolled_back;
ROLLBACK;
SELECT operation, detail->>'version' AS version, detail->>'key' = :'k' AS key_matches,
       length(detail->>'recipient_sha256') AS recipient_hash_hex
  FROM encml.audit_log WHERE id > :base AND operation IN ('export_key', 'key_admin_refused') ORDER BY id;
-- Destroyed keys cannot be exported.
SET client_min_messages = warning;
SELECT encml.destroy_key(:'k');
RESET client_min_messages;
SELECT pg_temp.t(format('SELECT encml.export_key(%L, %L)', :'k', :'pub'));
