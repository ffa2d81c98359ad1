-- Order-revealing encryption: range queries, ORDER BY, min/max through ordinary btree indexes.
SELECT encml.create_key('regress-ore', 'ore') AS k \gset
CREATE TABLE salaries (id int PRIMARY KEY, amount encml.ore_int8, plain bigint);
INSERT INTO salaries SELECT i, encml.ore_encrypt((i * 7919) % 100000 - 20000, :'k'), (i * 7919) % 100000 - 20000
  FROM generate_series(1, 20000) i;
CREATE INDEX salaries_amount ON salaries (amount);
ANALYZE salaries;

-- Ranges and order agree with the plaintext.
SELECT count(*) AS encrypted, (SELECT count(*) FROM salaries WHERE plain BETWEEN 50000 AND 52000) AS plaintext
  FROM salaries WHERE amount BETWEEN encml.ore_encrypt(50000, :'k') AND encml.ore_encrypt(52000, :'k');
SELECT bool_and(encml.ore_decrypt(amount) = plain) AS decrypts,
       count(*) FILTER (WHERE amount < encml.ore_encrypt(0, :'k')) = count(*) FILTER (WHERE plain < 0) AS negatives
  FROM salaries;
SELECT array_agg(encml.ore_decrypt(amount) ORDER BY amount) = array_agg(plain ORDER BY plain) AS order_by_matches
  FROM salaries;
SELECT encml.ore_decrypt(min(amount)) AS min, encml.ore_decrypt(max(amount)) AS max,
       min(plain) AS plain_min, max(plain) AS plain_max FROM salaries;

-- The btree index serves range scans, ORDER BY and min/max.
SET plan_cache_mode = force_generic_plan;
PREPARE salary_range(encml.ore_int8, encml.ore_int8) AS
    SELECT count(*) FROM salaries WHERE amount BETWEEN $1 AND $2;
EXPLAIN (COSTS OFF) EXECUTE salary_range(encml.ore_encrypt(50000, :'k'), encml.ore_encrypt(51000, :'k'));
EXECUTE salary_range(encml.ore_encrypt(50000, :'k'), encml.ore_encrypt(51000, :'k'));
EXPLAIN (COSTS OFF) SELECT id FROM salaries ORDER BY amount LIMIT 3;
SELECT encml.ore_decrypt(amount) FROM salaries ORDER BY amount LIMIT 3;
EXPLAIN (COSTS OFF) SELECT max(amount) FROM salaries;

-- Floats: negatives, -0.0 = +0.0, infinities, NaN above everything (as Postgres orders float8).
CREATE TABLE readings (x float8, c encml.ore_float8);
INSERT INTO readings SELECT x, encml.ore_encrypt(x, :'k')
  FROM unnest(ARRAY['-Infinity', -1e308, -2.5, -1e-300, '-0', 0, 1e-300, 2.5, 1e308, 'Infinity', 'NaN']::float8[]) x;
SELECT array_agg(x ORDER BY c) = array_agg(x ORDER BY x) AS float_order_matches FROM readings;
SELECT encml.ore_encrypt('-0'::float8, :'k') = encml.ore_encrypt(0::float8, :'k') AS zeroes_equal,
       encml.ore_decrypt(encml.ore_encrypt('NaN'::float8, :'k')) AS nan,
       encml.ore_decrypt(encml.ore_encrypt('-Infinity'::float8, :'k')) AS neg_inf;

-- Timestamps, including infinities.
SELECT array_agg(encml.ore_decrypt(c) ORDER BY c) = array_agg(t ORDER BY t) AS timestamp_order_matches
  FROM (SELECT t, encml.ore_encrypt(t, :'k') c FROM unnest(ARRAY['-infinity', '1970-01-01 00:00:00+00',
        '2026-11-23 10:00:00+00', '2026-11-23 10:00:00.000001+00', 'infinity']::timestamptz[]) t) s;

-- Several keys in one indexed column: a range under one key finds only that key's values, and
-- each key's values sort together.
SELECT encml.create_tenant('tenant-2');
SELECT encml.create_key('regress-ore-tenant2', 'ore', 'tenant-2') AS k2 \gset
CREATE TABLE shared (tenant int, amount encml.ore_int8);
INSERT INTO shared SELECT 1, encml.ore_encrypt(i, :'k') FROM generate_series(1, 100) i;
INSERT INTO shared SELECT 2, encml.ore_encrypt(i, :'k2') FROM generate_series(1, 100) i;
CREATE INDEX shared_amount ON shared (amount);
SELECT tenant, count(*) FROM shared
 WHERE amount BETWEEN encml.ore_encrypt(10, :'k2') AND encml.ore_encrypt(19, :'k2') GROUP BY tenant;
SELECT count(DISTINCT tenant) AS tenants_in_first_100 FROM (SELECT tenant FROM shared ORDER BY amount LIMIT 100) s;

-- Rotation: new values keep their version apart; the column stays insertable and indexable, and
-- ore_reencrypt rewrites it in one step.
SELECT encml.rotate_key(:'k') AS v2;
INSERT INTO shared SELECT 1, encml.ore_encrypt(i, :'k') FROM generate_series(101, 110) i;
SELECT encml.key_version(amount) AS version, count(*) FROM shared WHERE tenant = 1 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS v2_range_sees_only_v2 FROM shared
 WHERE amount BETWEEN encml.ore_encrypt(1, :'k') AND encml.ore_encrypt(1000, :'k');
UPDATE shared SET amount = encml.ore_reencrypt(amount) WHERE tenant = 1;
SELECT count(*) AS after_reencrypt FROM shared
 WHERE amount BETWEEN encml.ore_encrypt(1, :'k') AND encml.ore_encrypt(1000, :'k');
ALTER TABLE salaries ALTER COLUMN amount TYPE encml.ore_int8 USING encml.ore_reencrypt(amount);
SELECT encml.key_version(amount), count(*) FROM salaries GROUP BY 1;

-- Errors: tampering (refused at input since issue 27: the HMAC is checked there), wrong purpose, another ORE type's bytes, NULL key.
SELECT left(try(format('SELECT encml.ore_decrypt(%L::bytea::encml.ore_int8)',
                       set_byte(amount::bytea, 56, get_byte(amount::bytea, 56) # 1))), 60) AS tampered
  FROM salaries WHERE id = 1;
SELECT encml.create_key('regress-ore-det', 'deterministic') AS kd \gset
SELECT replace(try(format('SELECT encml.ore_encrypt(1::bigint, %L)', :'kd')), :'kd', '<kd>');
SELECT try(format('SELECT %L::bytea::encml.ore_float8', amount::bytea)) FROM salaries WHERE id = 1;
SELECT try('SELECT encml.ore_encrypt(1::bigint, NULL)');
SELECT length(encml.ore_encrypt(1::bigint, :'k')::bytea) AS ore_bytes;
DEALLOCATE ALL;
RESET plan_cache_mode;
DROP TABLE salaries, readings, shared;
