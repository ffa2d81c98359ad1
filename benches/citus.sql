-- Citus vs a single node, in one run on the same machine: the coordinator's own local tables are
-- the single node (same server, same settings), distributed tables (32 shards over two workers
-- on the same two cores) the cluster.
--  1. INSERT ... SELECT encml.encrypt of :crows rows from a plaintext staging table (co-located
--     for the distributed case), against the same INSERT of the plaintext;
--  2. :clookups det_text point lookups by prepared statement (ciphertext as the parameter);
--  3. dp_sum over :cdprows rows, against sum().
-- Best of :runs runs each (the workloads differ in size; ratios compare the same statement).
\set QUIET on
SET client_min_messages = error;
\o /dev/null
SELECT encml.create_key('bench-citus-aead-' || md5(random()::text)) AS ak \gset
SELECT encml.create_key('bench-citus-det-' || md5(random()::text), 'deterministic') AS dk \gset
SELECT encml.set_privacy_budget(current_user::regrole, 1e9, 0.5);
DROP TABLE IF EXISTS b_stage_l, b_stage_d, b_enc_l, b_enc_d, b_users_l, b_users_d, b_dp_l, b_dp_d;
CREATE TABLE b_stage_l (id bigint, v text);
CREATE TABLE b_stage_d (id bigint, v text);
SELECT create_distributed_table('b_stage_d', 'id', shard_count => 32);
INSERT INTO b_stage_l SELECT i, md5(i::text) FROM generate_series(1, :crows) i;
INSERT INTO b_stage_d SELECT * FROM b_stage_l;
CREATE TABLE b_enc_l (id bigint, v text, c encml.enc_bytea);
CREATE TABLE b_enc_d (id bigint, v text, c encml.enc_bytea);
SELECT create_distributed_table('b_enc_d', 'id', colocate_with => 'b_stage_d');
CREATE TABLE b_users_l (email encml.det_text PRIMARY KEY, n int);
CREATE TABLE b_users_d (email encml.det_text PRIMARY KEY, n int);
SELECT create_distributed_table('b_users_d', 'email', shard_count => 32);
INSERT INTO b_users_l SELECT encml.det_encrypt('user' || i || '@example.com', :'dk'), i FROM generate_series(1, 100000) i;
INSERT INTO b_users_d SELECT * FROM b_users_l;
CREATE TABLE b_dp_l (id bigint, x float8);
CREATE TABLE b_dp_d (id bigint, x float8);
SELECT create_distributed_table('b_dp_d', 'id', shard_count => 32);
INSERT INTO b_dp_l SELECT i, (i % 100)::float8 FROM generate_series(1, :cdprows) i;
INSERT INTO b_dp_d SELECT * FROM b_dp_l;
VACUUM ANALYZE b_stage_l, b_users_l, b_dp_l;
VACUUM ANALYZE b_stage_d, b_users_d, b_dp_d;
CREATE TEMP TABLE lookups AS
SELECT encml.det_encrypt('user' || (1 + (i * 7919) % 100000) || '@example.com', :'dk') AS c
  FROM generate_series(1, :clookups) i;
CREATE TEMP TABLE timings (workload text, variant text, node text, ms float8);

CREATE FUNCTION pg_temp.best(sql text, runs int, setup text DEFAULT NULL) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; best float8 := 'infinity';
BEGIN
    FOR r IN 1 .. runs LOOP
        IF setup IS NOT NULL THEN EXECUTE setup; END IF;
        t0 := clock_timestamp();
        EXECUTE sql;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
    RETURN best;
END $$;
-- Point lookups: one prepared router query per ciphertext.
CREATE FUNCTION pg_temp.lookups(tbl text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE c encml.det_text; n int;
BEGIN
    FOR c IN SELECT l.c FROM lookups l LOOP
        EXECUTE format('SELECT n FROM %s WHERE email = $1', tbl) INTO n USING c;
    END LOOP;
END $$;

INSERT INTO timings SELECT 'INSERT ... SELECT encrypt (' || :crows || ' rows)', 'plaintext', 'single',
    pg_temp.best('INSERT INTO b_enc_l (id, v) SELECT id, v FROM b_stage_l', :runs, 'TRUNCATE b_enc_l');
INSERT INTO timings SELECT 'INSERT ... SELECT encrypt (' || :crows || ' rows)', 'plaintext', 'citus',
    pg_temp.best('INSERT INTO b_enc_d (id, v) SELECT id, v FROM b_stage_d', :runs, 'TRUNCATE b_enc_d');
INSERT INTO timings SELECT 'INSERT ... SELECT encrypt (' || :crows || ' rows)', 'encrypted', 'single',
    pg_temp.best(format('INSERT INTO b_enc_l (id, c) SELECT id, encml.encrypt(v, %L) FROM b_stage_l', :'ak'), :runs, 'TRUNCATE b_enc_l');
INSERT INTO timings SELECT 'INSERT ... SELECT encrypt (' || :crows || ' rows)', 'encrypted', 'citus',
    pg_temp.best(format('INSERT INTO b_enc_d (id, c) SELECT id, encml.encrypt(v, %L) FROM b_stage_d', :'ak'), :runs, 'TRUNCATE b_enc_d');
INSERT INTO timings SELECT 'det_text point lookups (' || :clookups || ')', 'encrypted', 'single',
    pg_temp.best($$SELECT pg_temp.lookups('b_users_l')$$, :runs);
INSERT INTO timings SELECT 'det_text point lookups (' || :clookups || ')', 'encrypted', 'citus',
    pg_temp.best($$SELECT pg_temp.lookups('b_users_d')$$, :runs);
INSERT INTO timings SELECT 'aggregate over ' || :cdprows || ' rows', 'sum (plaintext)', 'single',
    pg_temp.best('SELECT sum(x) FROM b_dp_l', :runs);
INSERT INTO timings SELECT 'aggregate over ' || :cdprows || ' rows', 'sum (plaintext)', 'citus',
    pg_temp.best('SELECT sum(x) FROM b_dp_d', :runs);
INSERT INTO timings SELECT 'aggregate over ' || :cdprows || ' rows', 'dp_sum', 'single',
    pg_temp.best('SELECT encml.dp_sum(x, 0, 100, 1.0) FROM b_dp_l', :runs);
INSERT INTO timings SELECT 'aggregate over ' || :cdprows || ' rows', 'dp_sum', 'citus',
    pg_temp.best('SELECT encml.dp_sum(x, 0, 100, 1.0) FROM b_dp_d', :runs);
\o
\echo
\echo '### Citus (coordinator + 2 workers on this machine) vs a single node'
\echo
SELECT s.workload, s.variant, round(s.ms::numeric, 1) AS single_ms, round(c.ms::numeric, 1) AS citus_ms,
       round((c.ms / s.ms)::numeric, 2) AS citus_over_single
  FROM timings s JOIN timings c USING (workload, variant)
 WHERE s.node = 'single' AND c.node = 'citus'
 ORDER BY s.workload, s.variant;
\echo 'Where the work runs (EXPLAIN of the distributed statements):'
EXPLAIN (COSTS OFF) INSERT INTO b_enc_d (id, c) SELECT id, encml.encrypt(v, :'ak') FROM b_stage_d;
SELECT c AS c1 FROM lookups LIMIT 1 \gset
EXPLAIN (COSTS OFF) SELECT n FROM b_users_d WHERE email = :'c1';
EXPLAIN (COSTS OFF) SELECT encml.dp_sum(x, 0, 100, 1.0) FROM b_dp_d;
\o /dev/null
DROP TABLE b_stage_l, b_stage_d, b_enc_l, b_enc_d, b_users_l, b_users_d, b_dp_l, b_dp_d;
