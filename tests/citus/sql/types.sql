-- The encrypted types as columns of distributed and reference tables.
SET timezone = 'UTC';
SET client_min_messages = error;
SELECT encml.create_key('citus-det', 'deterministic') AS dk \gset
SELECT encml.create_key('citus-ore', 'ore') AS ok \gset
SELECT encml.create_key('citus-aead') AS ak \gset
RESET client_min_messages;

-- det_text as the distribution column: Citus hashes it with the type's hash function, the
-- same on every node because it hashes the ciphertext bytes.
CREATE TABLE users (email encml.det_text PRIMARY KEY, name encml.enc_bytea,
                    age encml.ore_int8, seen encml.ore_timestamptz, score encml.ore_float8);
SELECT create_distributed_table('users', 'email', shard_count => 8);
INSERT INTO users
SELECT encml.det_encrypt('user' || i || '@example.com', :'dk'), encml.encrypt('name ' || i, :'ak'),
       encml.ore_encrypt(i % 90, :'ok'),
       encml.ore_encrypt('2026-01-01 00:00+00'::timestamptz + i * interval '1 hour', :'ok'),
       encml.ore_encrypt(i / 7.0, :'ok')
  FROM generate_series(1, 5000) i;
-- Rows spread over the shards of both workers.
SELECT count(DISTINCT get_shard_id_for_distribution_column('users', email)) AS shards_used FROM users;

-- An equality lookup is routed to one shard (router plan: Task Count 1) once the ciphertext is
-- a constant: computed first (client side, \gset, or a prepared statement's parameter).
SELECT encml.det_encrypt('user42@example.com', :'dk') AS c42 \gset
SELECT * FROM plan(format('SELECT encml.decrypt_text(name) FROM users WHERE email = %L', :'c42'));
SELECT encml.decrypt_text(name) FROM users WHERE email = :'c42';
PREPARE by_email(encml.det_text) AS SELECT encml.decrypt_text(name) FROM users WHERE email = $1;
EXECUTE by_email(encml.det_encrypt('user4242@example.com', :'dk'));
-- Written inline with constant arguments, det_encrypt is folded into its ciphertext before Citus
-- plans (src/api/det_folding.rs): routed to one shard as well.
SELECT * FROM plan(format('SELECT encml.decrypt_text(name) FROM users WHERE email = encml.det_encrypt(%L, %L::uuid)',
                          'user7@example.com', :'dk'));
SELECT encml.decrypt_text(name) FROM users WHERE email = encml.det_encrypt('user7@example.com', :'dk');
-- UNIQUE on the distribution column holds across the cluster.
SELECT try(format('INSERT INTO users (email) VALUES (%L)', :'c42'));

-- A co-located join on the encrypted column runs shard by shard on the workers.
CREATE TABLE orders (email encml.det_text, amount int);
SELECT create_distributed_table('orders', 'email', colocate_with => 'users');
INSERT INTO orders SELECT encml.det_encrypt('user' || (i % 100 + 1) || '@example.com', :'dk'), i
  FROM generate_series(1, 2000) i;
SELECT * FROM plan('SELECT count(*) FROM users u JOIN orders o ON o.email = u.email');
SELECT count(*), sum(amount) FROM users u JOIN orders o ON o.email = u.email;
SELECT encml.det_decrypt(o.email) AS email, count(*), sum(o.amount) FROM orders o
 WHERE o.email = :'c42' GROUP BY o.email;

-- ORE: range filters and ORDER BY ... LIMIT are pushed down (each shard sorts and cuts, the
-- coordinator merges the few rows left) and give the plaintext order.
SELECT * FROM plan(format('SELECT age FROM users WHERE age > encml.ore_encrypt(85, %L) ORDER BY age DESC, seen LIMIT 3', :'ok'));
SELECT encml.ore_decrypt(age) AS age, encml.ore_decrypt(seen) AS seen
  FROM users WHERE age > encml.ore_encrypt(85, :'ok') ORDER BY age DESC, seen LIMIT 3;
SELECT count(*) FROM users WHERE age BETWEEN encml.ore_encrypt(10, :'ok') AND encml.ore_encrypt(19, :'ok');
SELECT count(*) FROM users
 WHERE seen >= encml.ore_encrypt('2026-01-02 00:00+00'::timestamptz, :'ok')
   AND seen < encml.ore_encrypt('2026-01-03 00:00+00'::timestamptz, :'ok');
SELECT round(encml.ore_decrypt(max(score))::numeric, 4) AS max_score,
       round(encml.ore_decrypt(min(score))::numeric, 4) AS min_score FROM users;
-- The same answers as the plaintext computation.
SELECT (SELECT array_agg(encml.ore_decrypt(age) ORDER BY age, seen) FROM
          (SELECT age, seen FROM users ORDER BY age, seen LIMIT 20) s)
     = (SELECT array_agg((i % 90)::bigint ORDER BY i % 90, i) FROM
          (SELECT i FROM generate_series(1, 5000) i ORDER BY i % 90, i LIMIT 20) s) AS same_order;
-- A btree index on an ORE column of a distributed table.
CREATE INDEX users_age ON users (age);
SELECT count(*) FROM users WHERE age = encml.ore_encrypt(33, :'ok');

-- A reference table with encrypted columns: a copy on every node, joined locally.
CREATE TABLE countries (code encml.det_text PRIMARY KEY, name encml.enc_bytea);
SELECT create_reference_table('countries');
INSERT INTO countries VALUES (encml.det_encrypt('DE', :'dk'), encml.encrypt('Germany', :'ak')),
                             (encml.det_encrypt('FR', :'dk'), encml.encrypt('France', :'ak'));
ALTER TABLE orders ADD COLUMN country encml.det_text;
UPDATE orders SET country = encml.det_encrypt(CASE WHEN amount % 2 = 0 THEN 'DE' ELSE 'FR' END, :'dk');
SELECT encml.decrypt_text(c.name) AS country, count(*) FROM orders o JOIN countries c ON c.code = o.country
 GROUP BY 1 ORDER BY 1;
SELECT success, result FROM run_command_on_all_nodes(
    $$SELECT string_agg(encml.decrypt_text(name), ',' ORDER BY 1) FROM countries$$);

-- A cached plan holding a folded ciphertext is planned again when its key changes: after
-- rotate_key the same prepared statement looks the value up under the new version (a generic
-- plan kept from before would still hold the old ciphertext and find the old row).
SET client_min_messages = error;
SELECT encml.create_key('citus-det-fold', 'deterministic') AS fk \gset
RESET client_min_messages;
CREATE TABLE fold_users (email encml.det_text PRIMARY KEY, version int);
SELECT create_distributed_table('fold_users', 'email', shard_count => 8);
INSERT INTO fold_users VALUES (encml.det_encrypt('fold@example.com', :'fk'), 1);
PREPARE fold_lookup AS SELECT version FROM fold_users WHERE email = encml.det_encrypt('fold@example.com', :'fk');
EXECUTE fold_lookup; EXECUTE fold_lookup; EXECUTE fold_lookup;
EXECUTE fold_lookup; EXECUTE fold_lookup; EXECUTE fold_lookup;
SELECT encml.rotate_key(:'fk');
INSERT INTO fold_users VALUES (encml.det_encrypt('fold@example.com', :'fk'), 2);
EXECUTE fold_lookup;
-- After SET ROLE the lookup runs with the new role's rights: refused without a grant.
CREATE ROLE fold_outsider;
GRANT SELECT ON fold_users TO fold_outsider;
SET ROLE fold_outsider;
SELECT try($$EXECUTE fold_lookup$$);
RESET ROLE;
