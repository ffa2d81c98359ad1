-- jsonb documents with encrypted fields: paths, wildcards, nested arrays, missing paths, exact
-- numbers, moved-field and moved-row detection, tenants, CHECK constraints.
SELECT encml.create_key('regress-json') AS k \gset
CREATE TEMP TABLE docs (id int, doc jsonb);
INSERT INTO docs VALUES (1, '{
  "model": "resnet", "version": 3, "metrics": {"acc": 0.9312},
  "weights": [[0.1, -0.25], [1e-7, 123456789012345678901234567890.123456789]],
  "layers": [{"name": "l1", "bias": [0.5, 1]}, {"name": "l2"}, {"name": "l3", "bias": {"b": null}}],
  "tags": ["a", "b"], "*": "a key named star"
}');

-- Encrypt the weights and every layer bias; metadata stays queryable.
CREATE TEMP TABLE enc AS
  SELECT id, encml.encrypt_jsonb(doc, :'k', ARRAY['{weights}', '{layers,*,bias}']) AS doc FROM docs;
SELECT doc->>'model' AS model, doc->'version' AS version, doc->'metrics' AS metrics,
       left(doc->>'weights', 9) AS weights_prefix,
       jsonb_typeof(doc->'weights') AS weights_type,
       left(doc#>>'{layers,0,bias}', 9) AS bias0, doc#>'{layers,1}' AS layer1,
       left(doc#>>'{layers,2,bias}', 9) AS bias2, doc->'tags' AS tags
  FROM enc;
-- Decryption restores the document exactly, including a 39-digit numeric.
SELECT encml.decrypt_jsonb(e.doc) = d.doc AS exact, encml.decrypt_jsonb(e.doc)#>'{weights,1,1}' AS big
  FROM enc e JOIN docs d USING (id);

-- A bare key, an index, a negative index and a nested-array wildcard.
SELECT encml.decrypt_jsonb(x) = '{"a":[[1,2],[3,4]],"b":"x"}' AS exact,
       x->'a'->0->>0 LIKE 'encml:v1:%' AS a00, x->'a'->0->>1 LIKE 'encml:v1:%' AS a01, x->'a'->1->0 AS a10,
       x->'a'->1->>1 LIKE 'encml:v1:%' AS a11, x->>'b' LIKE 'encml:v1:%' AS b
  FROM (SELECT encml.encrypt_jsonb('{"a":[[1,2],[3,4]],"b":"x"}', :'k',
                                   ARRAY['b', '{a,*,-1}', '{a,0,0}']) AS x) s;
-- A key named * is written \\* inside the array literal (array input removes one backslash); a
-- quoted path element; paths that match nothing change nothing.
SELECT encml.encrypt_jsonb('{"*": 1, "x": 2}', :'k', ARRAY['{\\*}'])->>'x' AS x_plain;
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{"a,b": {"c d": 5}}', :'k', ARRAY['{"a,b","c d"}'])) AS quoted;
SELECT encml.encrypt_jsonb('{"a": 1}', :'k', ARRAY['{missing}', '{a,b}', '{a,0}', '{-1}']) AS unchanged;
-- The empty path (the whole document) is refused: that is encml.encrypt's job.
SELECT try(format('SELECT encml.encrypt_jsonb(%L, %L, ARRAY[%L])', '{"a": 1}', :'k', '{}'));
-- The nesting limit (docs/ml.md): 127 levels pass, deeper documents are refused.
SELECT encml.encrypt_jsonb((repeat('{"a":', 127) || '1' || repeat('}', 127))::jsonb, :'k', ARRAY['a']) IS NOT NULL AS depth_127;
SELECT try(format('SELECT encml.encrypt_jsonb(%L::jsonb, %L, ARRAY[%L])', repeat('{"a":', 200) || '1' || repeat('}', 200), :'k', 'a')) AS depth_200;
SELECT try(format('SELECT encml.decrypt_jsonb(%L::jsonb)', repeat('[', 128) || repeat(']', 128))) AS decrypt_depth_128;
SELECT try(format('SELECT encml.jsonb_is_encrypted(%L::jsonb, ARRAY[%L])', repeat('[', 128) || repeat(']', 128), 'a')) AS check_depth_128;
-- Encrypting again skips values already encrypted.
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb(encml.encrypt_jsonb('{"a": 1}', :'k', '{a}'), :'k', '{a}')) AS once;
-- Overlapping paths (inner first, then the object around it) decrypt completely.
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb(encml.encrypt_jsonb('{"a": {"b": 1, "c": 2}}', :'k', '{a,b}'), :'k', '{a}')) AS overlapping;
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{"a": {"b": 1, "c": 2}}', :'k', ARRAY['{a,b}', '{a}'])) AS overlapping_one_call;
-- A plaintext that merely starts with the prefix is encrypted, and is not "encrypted" for CHECKs.
SELECT (encml.encrypt_jsonb('{"s": "encml:v1:secret"}', :'k', '{s}')->>'s') <> 'encml:v1:secret' AS prefix_plaintext_encrypted,
       encml.jsonb_is_encrypted('{"s": "encml:v1:secret"}', '{s}') AS prefix_plaintext_passes_check;
-- Scalars, null and strings at the path keep their JSON type.
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{"n": null, "s": "txt", "t": true, "o": {}}', :'k', '{n,s,t,o}'))
       AS types_kept;
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{"n": null, "s": "txt", "t": true, "o": {}}', :'k', ARRAY['n','s','t','o']))
       AS types_kept;

-- A ciphertext moved to another field, another array position or another row does not open.
SELECT try(format('SELECT encml.decrypt_jsonb(jsonb_set(%L::jsonb, ''{metrics}'', %L::jsonb #> ''{weights}''))', doc, doc)) FROM enc;
SELECT try(format('SELECT encml.decrypt_jsonb(jsonb_set(%L::jsonb, ''{layers,0,bias}'', %L::jsonb #> ''{layers,2,bias}''))', doc, doc)) FROM enc;
SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{"w": [1]}', :'k', '{w}', 'row 1'), 'row 1') AS with_row_aad;
SELECT try(format('SELECT encml.decrypt_jsonb(%L::jsonb, %L)',
           encml.encrypt_jsonb('{"w": [1]}', :'k', '{w}', 'row 1'), 'row 2'));
SELECT try(format('SELECT encml.decrypt_jsonb(%L::jsonb)',
           encml.encrypt_jsonb('{"w": [1]}', :'k', '{w}', 'row 1')));
-- Damaged ciphertext strings are errors, not silently kept.
SELECT try('SELECT encml.decrypt_jsonb(''{"w": "encml:v1:***"}'')');
SELECT try('SELECT encml.decrypt_jsonb(''{"w": "encml:v1:AAAA"}'')');
SELECT try(format('SELECT encml.decrypt_jsonb(%L::jsonb)',
           jsonb_build_object('w', overlay(encml.encrypt_jsonb('{"w": 1}', :'k', '{w}')->>'w' placing 'AAAA' from 62))));
-- Argument errors.
SELECT try(format('SELECT encml.encrypt_jsonb(%L, %L, NULL)', '{}', :'k'));
SELECT try(format('SELECT encml.encrypt_jsonb(%L, %L, ARRAY[NULL])', '{}', :'k'));
SELECT try(format('SELECT encml.encrypt_jsonb(%L, %L, ARRAY[%L])', '{}', :'k', '{a'));
SELECT try('SELECT encml.encrypt_jsonb(''{"a":1}'', NULL, ''{a}'')');
SELECT encml.encrypt_jsonb(NULL, :'k', '{a}') IS NULL AS null_doc, encml.decrypt_jsonb(NULL) IS NULL AS null_decrypt;

-- Rotation: reencrypt_jsonb moves values to the current version; retiring the old version is
-- refused while a jsonb column still holds values under it.
SELECT encml.create_key('regress-json-rot') AS kr \gset
CREATE TABLE rot_docs (id int, doc jsonb);
INSERT INTO rot_docs SELECT 1, encml.encrypt_jsonb('{"w": [1, 2], "n": 1}', :'kr', ARRAY['w', 'n'], '1');
SELECT encml.rotate_key(:'kr');
SELECT regexp_replace(try(format('SELECT encml.retire_key_version(%L, 1)', :'kr')), '[0-9a-f]{8}-[0-9a-f-]{27}', 'KEY') AS retire_refused;
UPDATE rot_docs SET doc = encml.reencrypt_jsonb(doc, id::text);
SELECT encml.decrypt_jsonb(doc, id::text) AS after_rotation,
       encml.reencrypt_jsonb(doc, id::text) = doc AS already_current FROM rot_docs;
SELECT encml.retire_key_version(:'kr', 1);
DROP TABLE rot_docs;

-- CHECK constraint: weights are never stored in clear.
CREATE TEMP TABLE models (id int, meta jsonb);
ALTER TABLE models ADD CHECK (encml.jsonb_is_encrypted(meta, ARRAY['weights', '{layers,*,bias}']));
INSERT INTO models SELECT id, doc FROM enc;
SELECT try('INSERT INTO models VALUES (2, ''{"weights": [1, 2]}'')');
SELECT try('INSERT INTO models VALUES (3, ''{"layers": [{"bias": 1}]}'')');
INSERT INTO models VALUES (4, '{"name": "no weights yet"}');
SELECT count(*) FROM models;

-- Tenant-bound keys: another tenant's fields stay encrypted for a member of one tenant; the
-- tenant's own fields open. A destroyed key leaves its fields encrypted (crypto-shredding).
SELECT encml.create_tenant('json-a'), encml.create_tenant('json-b');
CREATE ROLE json_member;
SELECT encml.grant_tenant('json-a', 'json_member');
SELECT encml.set_tenant('json-a');
SELECT encml.encrypt_jsonb('{"x": 1, "y": 2}', encml.tenant_key(), '{x}') AS da \gset
SELECT encml.set_tenant('json-b');
SELECT encml.encrypt_jsonb(:'da'::jsonb, encml.tenant_key(), ARRAY['x', 'y']) AS dab \gset
SELECT encml.reset_tenant();
SET ROLE json_member;
SELECT encml.set_tenant('json-a');
SELECT d->'x' AS x_open, left(d->>'y', 9) AS y_still_encrypted
  FROM (SELECT encml.decrypt_jsonb(:'dab'::jsonb) AS d) s;
RESET ROLE;
SELECT encml.reset_tenant();
SELECT encml.create_key('regress-json-shred') AS ks \gset
SELECT encml.encrypt_jsonb(encml.encrypt_jsonb('{"keep": 1, "gone": 2}', :'k', '{keep}'), :'ks', '{gone}') AS shred \gset
SET client_min_messages = warning;
SELECT encml.destroy_key(:'ks');
RESET client_min_messages;
SELECT d->'keep' AS keep, left(d->>'gone', 9) AS gone FROM (SELECT encml.decrypt_jsonb(:'shred'::jsonb) AS d) s;
DROP OWNED BY json_member;
DROP ROLE json_member;
