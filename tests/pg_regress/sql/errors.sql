-- Every bad input gives a clear ERROR with a SQLSTATE, never a crash or wrong plaintext.
SELECT encml.create_key('regress-errors') AS k \gset
CREATE TABLE good AS SELECT encml.encrypt('attack at dawn', :'k')::bytea AS b;

-- Tampering: a flipped bit in the header, the nonce, the ciphertext or the tag. A changed key id
-- or version names a key that does not exist; anything else fails authentication. (SQLSTATEs
-- only: the altered key ids are random.)
SELECT pos, left(try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)',
                       set_byte(b, pos, get_byte(b, pos) # 1))), 5) AS sqlstate
  FROM good, (VALUES (3), (10), (22), (30), (40), (55)) AS p(pos);
-- Truncation: cut inside the header, inside the body, or the tag.
SELECT len, try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)', substring(b FROM 1 FOR len)))
  FROM good, (VALUES (2), (20), (51), (60), (65)) AS l(len);
-- An unknown format version or algorithm.
SELECT try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)', set_byte(b, 2, 9))) AS version,
       try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)', set_byte(b, 3, 7))) AS algorithm
  FROM good;
-- Another key's id in the header (a forged header) does not decrypt either.
SELECT encml.create_key('regress-errors-other') AS k2 \gset
SELECT try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)',
               overlay(b PLACING decode(replace(:'k2', '-', ''), 'hex') FROM 5 FOR 16)))
  FROM good;

-- Malformed text input.
SELECT try($$SELECT 'not base64!'::encml.enc_bytea$$);
SELECT try($$SELECT 'aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBjaXBoZXJ0ZXh0IGF0IGFsbCwgbm8gbm8gbm8='::encml.enc_bytea$$);
SELECT try($$SELECT ''::encml.enc_bytea$$);

-- Unknown key, NULL key, wrong purpose, unknown version.
SELECT try($$SELECT encml.encrypt('x'::text, '00000000-0000-0000-0000-000000000000')$$);
SELECT try($$SELECT encml.encrypt('x'::text, NULL)$$);
SELECT encml.create_key('regress-errors-det', 'deterministic') AS kd \gset
SELECT replace(try(format('SELECT encml.encrypt(%L::text, %L)', 'x', :'kd')), :'kd', '<kd>');
SELECT replace(try(format('SELECT encml.decrypt(%L::bytea::encml.enc_bytea)', set_byte(b, 23, 9))), :'k', '<k>') FROM good;

-- Destroyed key: a clear error naming the key.
SELECT encml.encrypt('to be shredded', :'k2') AS shredded \gset
SET client_min_messages = warning;
SELECT encml.destroy_key(:'k2');
RESET client_min_messages;
SELECT replace(try(format('SELECT encml.decrypt(%L)', :'shredded')), :'k2', '<k2>');
SELECT replace(try(format('SELECT encml.encrypt(%L::text, %L)', 'x', :'k2')), :'k2', '<k2>');
SELECT replace(try(format('SELECT encml.rotate_key(%L)', :'k2')), :'k2', '<k2>');

-- Text that is not valid in the server encoding is refused by decrypt_text, not returned.
SELECT try(format('SELECT encml.decrypt_text(encml.encrypt(%L::bytea, %L))', '\xff00fe', :'k'));
SELECT encml.decrypt(encml.encrypt('\xff00fe'::bytea, :'k')) AS raw_bytes_are_fine;

-- Argument checks of the key functions.
SELECT try($$SELECT encml.create_key('')$$);
SELECT try($$SELECT encml.create_key(NULL)$$);
-- Names have at most 256 characters (they go into messages, events and views).
SELECT try(format('SELECT encml.create_key(%L)', repeat('n', 257)));
SELECT try(format('SELECT encml.create_key(%L)', repeat('é', 256)));
SELECT try($$SELECT encml.create_key('x', 'rot13')$$);
SELECT try($$SELECT encml.create_key('regress-errors')$$);
SELECT try($$SELECT encml.rotate_key('00000000-0000-0000-0000-000000000000')$$);
-- Arrays with NULLs where the function takes none: the error of the argument, not an internal
-- one from the array's conversion (attacker pass of issue 30: XX000 "array contains NULL",
-- raised before audit_enable's owner check).
CREATE TABLE nulls_t (i int);
SELECT try($$SELECT encml.audit_enable('nulls_t', '{NULL}'::text[], true)$$);
SELECT try($$SELECT encml.audit_enable('nulls_t', '{a,NULL}'::text[])$$);
SELECT try($$SELECT encml.fhe_encrypt('{1,NULL}'::float8[], '00000000-0000-0000-0000-000000000000')$$);
DROP TABLE nulls_t;
-- After all these caught errors the session still runs as its own role.
SELECT current_user = session_user AS role_restored, current_setting('search_path') AS search_path;
DROP TABLE good;
