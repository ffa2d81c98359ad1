-- Deterministic encryption (det_text): equality search through ordinary indexes.
SELECT encml.create_key('regress-det', 'deterministic') AS k \gset
CREATE TABLE users (id int PRIMARY KEY, email encml.det_text UNIQUE);
INSERT INTO users SELECT i, encml.det_encrypt('user' || i || '@example.com', :'k') FROM generate_series(1, 20000) i;
ANALYZE users;

-- Equal plaintexts give equal ciphertexts, so a lookup finds the row, through the unique index.
SELECT encml.det_encrypt('a@b.example', :'k') = encml.det_encrypt('a@b.example', :'k') AS deterministic,
       encml.det_encrypt('a@b.example', :'k') = encml.det_encrypt('a@b.examplf', :'k') AS distinct_values;
SELECT id, encml.det_decrypt(email) FROM users WHERE email = encml.det_encrypt('user4242@example.com', :'k');
SET plan_cache_mode = force_generic_plan;
PREPARE by_email(encml.det_text) AS SELECT id FROM users WHERE email = $1;
EXPLAIN (COSTS OFF) EXECUTE by_email(encml.det_encrypt('user4242@example.com', :'k'));
EXECUTE by_email(encml.det_encrypt('user4242@example.com', :'k'));

-- UNIQUE holds on the ciphertext.
SELECT try(format('INSERT INTO users VALUES (0, encml.det_encrypt(%L, %L))', 'user7@example.com', :'k'));

-- A hash index, GROUP BY, DISTINCT and count(DISTINCT) work on ciphertext.
CREATE TABLE visits (user_email encml.det_text, at int);
INSERT INTO visits SELECT encml.det_encrypt('user' || (i % 50 + 1) || '@example.com', :'k'), i FROM generate_series(1, 5000) i;
CREATE INDEX visits_email_hash ON visits USING hash (user_email);
ANALYZE visits;
PREPARE visits_of(encml.det_text) AS SELECT count(*) FROM visits WHERE user_email = $1;
EXPLAIN (COSTS OFF) EXECUTE visits_of(encml.det_encrypt('user3@example.com', :'k'));
EXECUTE visits_of(encml.det_encrypt('user3@example.com', :'k'));
SELECT count(DISTINCT user_email) AS distinct_users, count(*) AS visits FROM visits;
SELECT encml.det_decrypt(user_email) AS email, count(*) FROM visits GROUP BY user_email
 ORDER BY 1 LIMIT 3;
SELECT count(*) FROM (SELECT DISTINCT user_email FROM visits) s;

-- Joins between two det_text columns under the same key: hash join and merge join.
SET enable_mergejoin = off; SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM visits v JOIN users u ON u.email = v.user_email;
SELECT count(*) FROM visits v JOIN users u ON u.email = v.user_email;
RESET enable_mergejoin; RESET enable_nestloop;
SET enable_hashjoin = off; SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM visits v JOIN users u ON u.email = v.user_email;
SELECT count(*) FROM visits v JOIN users u ON u.email = v.user_email;
RESET enable_hashjoin; RESET enable_nestloop;

-- Another tenant's key gives unrelated ciphertexts: nothing joins across keys.
SELECT encml.create_tenant('other-tenant');
SELECT encml.create_key('regress-det-other', 'deterministic', 'other-tenant') AS k2 \gset
SELECT encml.det_encrypt('user1@example.com', :'k2') = encml.det_encrypt('user1@example.com', :'k') AS equal_across_keys;
SELECT count(*) AS cross_key_matches FROM users WHERE email = encml.det_encrypt('user1@example.com', :'k2');

-- Rotation: new values use the new version; search both versions during the rotation; UNIQUE
-- does not hold across versions; det_reencrypt moves values.
SELECT encml.rotate_key(:'k') AS v2;
SELECT encml.key_version(encml.det_encrypt('x', :'k')) AS new_values_version;
INSERT INTO users VALUES (20001, encml.det_encrypt('user1@example.com', :'k'));
SELECT count(*) AS found_with_current_only FROM users WHERE email = encml.det_encrypt('user1@example.com', :'k');
SELECT id, encml.key_version(email) FROM users
 WHERE email = ANY (encml.det_encrypt_all_versions('user1@example.com', :'k')) ORDER BY id;
SELECT array_length(encml.det_encrypt_all_versions('user1@example.com', :'k'), 1) AS versions;
DELETE FROM users WHERE id = 20001;
UPDATE users SET email = encml.det_reencrypt(email) WHERE encml.key_version(email) < 2;
SELECT encml.key_version(email), count(*) FROM users GROUP BY 1;
SELECT id FROM users WHERE email = encml.det_encrypt('user4242@example.com', :'k');
SELECT encml.det_reencrypt(email) = email AS unchanged_when_current FROM users WHERE id = 1;

-- The documented way to rotate a UNIQUE column: one transaction, writers kept out; afterwards
-- every value is on the new version and UNIQUE holds again.
BEGIN;
LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE;
SELECT encml.rotate_key(:'k') AS v3;
UPDATE users SET email = encml.det_reencrypt(email);
COMMIT;
SELECT encml.key_version(email), count(*) FROM users GROUP BY 1;
SELECT try(format('INSERT INTO users VALUES (0, encml.det_encrypt(%L, %L))', 'user7@example.com', :'k'));

-- bytea values, NULLs, casts and text I/O.
SELECT encml.det_decrypt_bytea(encml.det_encrypt('\x00ff10'::bytea, :'k')) AS bytes;
SELECT encml.det_encrypt(NULL::text, :'k') IS NULL AS null_in_null_out;
SELECT length(encml.det_encrypt('12345678', :'k')::bytea) AS ciphertext_bytes_for_8;
SELECT email::text::encml.det_text = email AS text_round_trip FROM users WHERE id = 2;

-- Errors: wrong purpose, tampering, truncation, NULL key, another type's bytes.
SELECT encml.create_key('regress-det-aead') AS ka \gset
SELECT replace(try(format('SELECT encml.det_encrypt(%L, %L)', 'x', :'ka')), :'ka', '<ka>');
SELECT replace(try(format('SELECT encml.encrypt(%L::text, %L)', 'x', :'k')), :'k', '<k>');
SELECT left(try(format('SELECT encml.det_decrypt(%L::bytea::encml.det_text)',
                       set_byte(email::bytea, 30, get_byte(email::bytea, 30) # 1))), 70) AS tampered
  FROM users WHERE id = 3;
SELECT try(format('SELECT encml.det_decrypt(%L::bytea::encml.det_text)', substring(email::bytea FROM 1 FOR 30)))
  FROM users WHERE id = 3;
SELECT try(format('SELECT encml.det_encrypt(%L, NULL)', 'x'));
SELECT try(format('SELECT %L::bytea::encml.det_text', encml.encrypt('x', :'ka')::bytea));
DEALLOCATE ALL;
RESET plan_cache_mode;
DROP TABLE users, visits;
