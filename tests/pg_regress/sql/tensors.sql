-- Encrypted tensors: every dtype, 0-d (empty), 1-d, 3-d shapes, lower bounds, sizes, errors.
SELECT encml.create_key('regress-tensor') AS k \gset

-- Round trips keep values, shape and lower bounds exactly.
SELECT a, encml.decrypt_tensor_real(encml.encrypt_tensor(a, :'k')) = a AS same
  FROM (VALUES ('{}'::real[]), ('{1.5}'), ('{1,-2.25,3.4028235e38,-1.1754944e-38,Infinity,-Infinity}'),
               ('{{{1,2},{3,4}},{{5,6},{7,8}},{{9,10},{11,12}}}'), ('[-1:1]={7,8,9}')) AS t(a);
SELECT encml.decrypt_tensor_float8(encml.encrypt_tensor(a, :'k')) AS a
  FROM (VALUES ('{}'::float8[]), ('{3.141592653589793}'), ('{{1e-300,2},{1e300,-0}}'),
               ('[0:1][5:5][1:2]={{{1,2}},{{3,4}}}')) AS t(a);
SELECT encml.decrypt_tensor_smallint(encml.encrypt_tensor('{{-32768,0},{1,32767}}'::smallint[], :'k'));
SELECT encml.decrypt_tensor_int(encml.encrypt_tensor('{-2147483648,0,2147483647}'::integer[], :'k'));
SELECT encml.decrypt_tensor_int(encml.encrypt_tensor('{}'::integer[], :'k')) AS empty_int;
-- NaN survives bit for bit (NaN = NaN in Postgres arrays).
SELECT encml.decrypt_tensor_real(encml.encrypt_tensor('{NaN}'::real[], :'k')) AS nan;

-- tensor_info reads the clear descriptor without the key.
SELECT dtype, shape, lower_bounds, element_count, key_id = :'k'::uuid AS key_matches, key_version
  FROM encml.tensor_info(encml.encrypt_tensor('[0:1][1:3]={{1,2,3},{4,5,6}}'::float8[], :'k'));
SELECT dtype, shape, lower_bounds, element_count FROM encml.tensor_info(encml.encrypt_tensor('{}'::smallint[], :'k'));

-- Size: 4 bytes per float32 plus a header fixed by ndim (24 header + 2 + 4 + 8/dim descriptor
-- + 12 nonce + 16 tag), no JSON or base64 inside.
SELECT n, octet_length(encml.encrypt_tensor(array_fill(0.5::real, ARRAY[n]), :'k')::bytea) - 4 * n AS overhead
  FROM (VALUES (1), (1000), (1000000)) AS t(n);
SELECT octet_length(encml.encrypt_tensor(array_fill(0.5::real, ARRAY[10, 10, 10]), :'k')::bytea) - 4000 AS overhead_3d;

-- The AAD binds a tensor to its row.
SELECT encml.decrypt_tensor_real(encml.encrypt_tensor('{1,2}'::real[], :'k', 'model 7'), 'model 7');
SELECT try(format('SELECT encml.decrypt_tensor_real(encml.encrypt_tensor(%L::real[], %L, %L), %L)', '{1,2}', :'k', 'model 7', 'model 8'));

-- Errors: dtype mismatch names the right function; NULL elements; not a tensor; NULL key.
SELECT try(format('SELECT encml.decrypt_tensor_float8(encml.encrypt_tensor(%L::real[], %L))', '{1}', :'k'));
SELECT try(format('SELECT encml.decrypt_tensor_real(encml.encrypt_tensor(%L::integer[], %L))', '{1}', :'k'));
SELECT try(format('SELECT encml.decrypt_tensor_int(encml.encrypt_tensor(%L::smallint[], %L))', '{1}', :'k'));
SELECT try(format('SELECT encml.encrypt_tensor(%L::real[], %L)', '{1,NULL}', :'k'));
SELECT try(format('SELECT encml.decrypt_tensor_real(encml.encrypt(%L::text, %L))', 'not a tensor', :'k'));
SELECT try(format('SELECT encml.tensor_info(encml.encrypt(%L::text, %L))', 'not a tensor', :'k'));
SELECT try('SELECT encml.encrypt_tensor(''{1}''::real[], NULL)');
SELECT encml.encrypt_tensor(NULL::real[], :'k') IS NULL AS null_in_null_out,
       encml.decrypt_tensor_real(NULL) IS NULL AS null_decrypt;

-- The clear descriptor is authenticated: editing the shape (2x3 claimed as 3x2), the dtype
-- (int32 claimed as float32) or one value byte is detected at decryption.
CREATE TEMP TABLE t AS SELECT encml.encrypt_tensor('{{1,2,3},{4,5,6}}'::integer[], :'k')::bytea AS b;
-- descriptor: offset 24 length, 26 type, 27 version, 28 dtype, 29 ndim, 30.. dims
SELECT try(format('SELECT encml.decrypt_tensor_int(%L::bytea::encml.enc_bytea)',
       overlay(overlay(b placing '\x00000003'::bytea from 31) placing '\x00000002'::bytea from 39))) FROM t;
SELECT try(format('SELECT encml.decrypt_tensor_real(%L::bytea::encml.enc_bytea)',
       set_byte(b, 28, 1))) FROM t;
SELECT try(format('SELECT encml.decrypt_tensor_int(%L::bytea::encml.enc_bytea)',
       set_byte(b, 60, get_byte(b, 60) # 1))) FROM t;
-- A descriptor whose shape does not match the length is refused before any key is used.
SELECT try(format('SELECT encml.tensor_info(%L::bytea::encml.enc_bytea)',
       overlay(b placing '\x00000009'::bytea from 31))) FROM t;
-- Truncation.
SELECT try(format('SELECT encml.decrypt_tensor_int(%L::bytea::encml.enc_bytea)',
       substring(b from 1 for length(b) - 1))) FROM t;

-- decrypt() of a tensor gives its packed little-endian values; reencrypt keeps the descriptor.
SELECT encml.decrypt(encml.encrypt_tensor('{1,256}'::integer[], :'k')) AS packed;
SELECT encml.rotate_key(:'k') AS new_version;
SELECT encml.key_version(r) AS version, encml.decrypt_tensor_int(r) AS values, (encml.tensor_info(r)).shape
  FROM (SELECT encml.reencrypt(encml.encrypt_tensor('{{1,2},{3,4}}'::integer[], :'k')) AS r) s;

-- Stored tensors, with a key bound to a model: metadata and weights side by side.
CREATE TABLE model_weights (model text, layer int, w encml.enc_bytea);
INSERT INTO model_weights
  SELECT 'm1', l, encml.encrypt_tensor(array_fill(l::real, ARRAY[4, 8]), :'k', 'm1/' || l)
    FROM generate_series(1, 3) AS l;
SELECT layer, (encml.tensor_info(w)).shape, (encml.decrypt_tensor_real(w, 'm1/' || layer))[2][3] AS w23
  FROM model_weights ORDER BY layer;
DROP TABLE model_weights;
