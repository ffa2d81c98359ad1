-- The key catalog: purposes, tenants, rotation, re-encryption, retirement, destruction.
SELECT encml.create_key('regress-keys') AS k \gset
SELECT name, tenant, purpose, version, status, created_by::text, rotated_at IS NULL AS never_rotated
  FROM encml.keys WHERE id = :'k';

-- The same name may exist once per tenant.
SELECT encml.create_tenant('tenant-a'), encml.create_tenant('tenant-b');
SELECT encml.create_key('shared-name', 'aead', 'tenant-a') IS NOT NULL AS a,
       encml.create_key('shared-name', 'aead', 'tenant-b') IS NOT NULL AS b;
SELECT try($$SELECT encml.create_key('shared-name', 'aead', 'tenant-a')$$);
SELECT k.purpose, k.name FROM (
    SELECT encml.create_key('p-' || p, p) AS id FROM unnest(ARRAY['aead', 'deterministic', 'ore', 'hmac']) p
) s JOIN encml.keys k USING (id) ORDER BY k.purpose;

-- Rotation: new values use the new version, old values keep decrypting.
CREATE TABLE notes (id int PRIMARY KEY, body encml.enc_bytea);
INSERT INTO notes SELECT i, encml.encrypt('note ' || i, :'k') FROM generate_series(1, 10) i;
SELECT body AS old_v1 FROM notes WHERE id = 1 \gset
SELECT encml.rotate_key(:'k') AS new_version;
INSERT INTO notes SELECT i, encml.encrypt('note ' || i, :'k') FROM generate_series(11, 20) i;
SELECT encml.key_version(body) AS version, count(*),
       bool_and(encml.decrypt_text(body) = 'note ' || id) AS all_decrypt
  FROM notes GROUP BY 1 ORDER BY 1;
SELECT version, status, rotated_at IS NOT NULL AS rotated FROM encml.keys WHERE id = :'k';
-- A rotation that is rolled back leaves no trace in this session's key cache, even when values
-- were encrypted under the new version before the rollback (they are gone with it).
BEGIN;
SELECT encml.rotate_key(:'k') AS rolled_back_version;
SELECT encml.key_version(encml.encrypt('x', :'k')) AS inside;
ROLLBACK;
SELECT encml.key_version(encml.encrypt('x', :'k')) AS after_rollback;
BEGIN;
SAVEPOINT s;
SELECT encml.rotate_key(:'k') AS rolled_back_version;
SELECT encml.key_version(encml.encrypt('x', :'k')) AS inside;
ROLLBACK TO s;
SELECT encml.key_version(encml.encrypt('x', :'k')) AS after_savepoint_rollback;
COMMIT;
SELECT try(format('SELECT encml.rotate_key(%L), encml.key_version(encml.encrypt(%L, %L)), 1 / 0', :'k', 'x', :'k'));
SELECT encml.key_version(c) AS after_failed_statement, encml.decrypt_text(c) AS decrypts
  FROM (SELECT encml.encrypt('still fine', :'k') AS c) s;


-- Re-encrypt in batches with UPDATE; values already current are left as they are.
UPDATE notes SET body = encml.reencrypt(body) WHERE id <= 5;
SELECT encml.key_version(body) AS version, count(*) FROM notes GROUP BY 1 ORDER BY 1;
-- Retiring version 1 is refused while values in this database still use it.
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 1)', :'k')), :'k', '<k>');
UPDATE notes SET body = encml.reencrypt(body) WHERE encml.key_version(body) < 2;
SELECT encml.key_version(body) AS version, count(*),
       bool_and(encml.decrypt_text(body) = 'note ' || id) AS all_decrypt
  FROM notes GROUP BY 1 ORDER BY 1;
SELECT count(*) AS unchanged FROM notes n
 WHERE encml.reencrypt(n.body)::bytea = n.body::bytea;

-- Retiring a version: not the current one; once nothing uses it, it goes, and a stray copy of
-- one of its values no longer decrypts.
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 2)', :'k')), :'k', '<k>');
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 7)', :'k')), :'k', '<k>');
SELECT encml.retire_key_version(:'k', 1);
SELECT replace(try(format('SELECT encml.decrypt(%L)', :'old_v1')), :'k', '<k>') AS stray_v1_copy;
SELECT encml.rotate_key(:'k') AS v3;
-- force => true retires a version that is still in use (its values become unreadable).
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 2)', :'k')), :'k', '<k>') AS refused;
SELECT encml.retire_key_version(:'k', 2, force => true);
SELECT count(*) FILTER (WHERE try(format('SELECT encml.decrypt(%L)', body)) LIKE '55000%') AS unreadable FROM notes;
SELECT replace(try(format('SELECT encml.decrypt(%L)', encml.encrypt('x', :'k'))), :'k', '<k>') AS v3_works;
SELECT key_id = :'k' AS ours, version, status
  FROM encml.key_versions WHERE key_id = :'k' ORDER BY version;
UPDATE notes SET body = encml.encrypt('note ' || id, :'k');
SELECT encml.key_version(body) AS version, count(*) FROM notes GROUP BY 1;

-- Destroying: every version erased, the key stays listed as destroyed.
SET client_min_messages = warning;
SELECT encml.destroy_key(:'k') AS versions_erased;
RESET client_min_messages;
SELECT version, status, destroyed_at IS NOT NULL AS destroyed, awaiting_master_key_rotation
  FROM encml.keys WHERE id = :'k';
SELECT version, status, master_key_fingerprint IS NOT NULL AS remembers_its_master_key
  FROM encml.key_versions WHERE key_id = :'k' ORDER BY version;
SELECT replace(try('SELECT count(encml.decrypt(body)) FROM notes'), :'k', '<k>');
-- The wrapped material is gone from the catalog itself.
SELECT count(*) FILTER (WHERE wrapped_key IS NOT NULL) AS wrapped_left
  FROM encml.data_key_versions WHERE key_id = :'k';

-- Master-key rotation with a single master key rewraps nothing, and is recorded. The destroyed key
-- still awaits a rotation to a *different* master key (tests/integration/master_key.sh covers it).
SELECT encml.rotate_master_key() AS rewrapped;
SELECT keys_rewrapped, rotated_by::text FROM encml.master_key_rotations ORDER BY rotated_at DESC LIMIT 1;
SELECT awaiting_master_key_rotation FROM encml.keys WHERE id = :'k';
DROP TABLE notes;
