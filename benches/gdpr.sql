-- Benchmark of consent filtering and per-subject keys: an ML training scan of :grows events of
-- :gusers subjects (half of them consenting to 'model_training') filtered by
-- encml.has_consent(user_id, 'model_training') in an RLS policy, against the unfiltered scan
-- and against the same filter written as a semi-join with a plain consent table (what an
-- application would do without the extension). Also encml.subject_key() per row of a bulk
-- encryption against encrypt() under one key. Median of :runs rounds in rotating order.
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_encrypt_ml;
SET max_parallel_workers_per_gather = 0;
\o /dev/null
DROP ROLE IF EXISTS encml_bench_trainer;
CREATE ROLE encml_bench_trainer;
CREATE TABLE g_events AS
SELECT 'user' || (i % :gusers) AS user_id, (i % 97)::float8 AS feature, (i % 2 = 0) AS label
  FROM generate_series(1, :grows) i;
-- The plain twin of the consent state, for the baseline.
CREATE TABLE g_consenting AS SELECT 'user' || u AS user_id FROM generate_series(0, :gusers - 1) u WHERE u % 2 = 0;
CREATE UNIQUE INDEX ON g_consenting (user_id);
SELECT count(encml.record_consent('user' || u, 'model_training', u % 2 = 0, 'bench'))
  FROM generate_series(0, :gusers - 1) u;
VACUUM ANALYZE g_events, g_consenting;
-- Twin tables, one with the policy.
CREATE TABLE g_events_rls AS SELECT * FROM g_events;
ALTER TABLE g_events_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY consented ON g_events_rls FOR SELECT TO encml_bench_trainer
    USING (encml.has_consent(user_id, 'model_training'));
VACUUM ANALYZE g_events_rls;
GRANT SELECT ON g_events, g_events_rls, g_consenting TO encml_bench_trainer;
CREATE TEMP TABLE gtimings (kind int, ms float8);
CREATE TEMP TABLE gparams AS SELECT :runs::int AS runs;
GRANT ALL ON gtimings, gparams TO encml_bench_trainer;
SET ROLE encml_bench_trainer;
CREATE FUNCTION pg_temp.gtimed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r float8;
BEGIN
    CASE kind
    WHEN 1 THEN SELECT sum(feature) INTO r FROM g_events;
    WHEN 2 THEN SELECT sum(feature) INTO r FROM g_events e
                 WHERE e.user_id IN (SELECT c.user_id FROM g_consenting c);
    ELSE        SELECT sum(feature) INTO r FROM g_events_rls;
    END CASE;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.gtimed(k) FROM generate_series(1, 3) k;   -- warm-up (loads the consent set)
    FOR r IN 1 .. (SELECT runs FROM gparams) LOOP
        INSERT INTO gtimings SELECT 1 + (k + r) % 3, pg_temp.gtimed(1 + (k + r) % 3) FROM generate_series(0, 2) k;
    END LOOP;
END $$;
RESET ROLE;
\o
\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'Consent filter:' :grows 'events of' :gusers 'subjects, half consenting; one backend; median of' :runs 'rounds'
SELECT m.name AS measure, round(t.ms::numeric, 1) AS ms, round((t.ms / b.ms)::numeric, 2) AS x_unfiltered
  FROM (VALUES (1, 'scan, no filter (baseline)'), (2, 'semi-join with a plain consent table'),
               (3, 'RLS policy encml.has_consent(user_id, purpose)')) AS m(kind, name),
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM gtimings WHERE kind = m.kind) t,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM gtimings WHERE kind = 1) b
 ORDER BY m.kind;
\set QUIET on
\o /dev/null
-- First use in a new session: the purpose's consent set is loaded once.
\c
SET max_parallel_workers_per_gather = 0;
SET client_min_messages = warning;
CREATE TEMP TABLE gfirst (t0 timestamptz);
INSERT INTO gfirst SELECT clock_timestamp();
SELECT encml.has_consent('user0', 'model_training');
INSERT INTO gfirst SELECT clock_timestamp();
\o
\set QUIET off
SELECT round((extract(epoch FROM max(t0) - min(t0)) * 1000)::numeric, 1) AS first_has_consent_of_a_session_ms FROM gfirst;
\set QUIET on
\o /dev/null

-- subject_key per row: bulk encryption of one value per subject. Every subject's key must fit
-- in the key cache (encml.key_cache_size, default 1024 versions): a full cache is emptied, and
-- cycling through more keys than it holds unwraps every key again on every use.
SET encml.key_cache_size = 20000;
CREATE TEMP TABLE sparams AS SELECT encml.create_key('bench-one-key') AS k, :runs::int AS runs;
SELECT count(encml.subject_key('user' || u)) FROM generate_series(0, :gusers - 1) u;   -- keys made once
CREATE TEMP TABLE stimings (kind int, ms float8);
CREATE FUNCTION pg_temp.stimed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r bigint; k uuid := (SELECT k FROM sparams);
BEGIN
    IF kind = 1 THEN
        SELECT count(encml.encrypt(user_id, k)) INTO r FROM g_events;
    ELSE
        SELECT count(encml.encrypt(user_id, encml.subject_key(user_id))) INTO r FROM g_events;
    END IF;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.stimed(k) FROM generate_series(1, 2) k;
    FOR r IN 1 .. (SELECT runs FROM sparams) LOOP
        INSERT INTO stimings SELECT 1 + (k + r) % 2, pg_temp.stimed(1 + (k + r) % 2) FROM generate_series(0, 1) k;
    END LOOP;
END $$;
\o
\set QUIET off
\echo
\echo 'Per-subject keys:' :grows 'values of' :gusers 'subjects (keys already made), median of' :runs 'rounds'
SELECT m.name AS measure, round(t.ms::numeric, 1) AS ms, round((t.ms / b.ms)::numeric, 2) AS x_one_key
  FROM (VALUES (1, 'encrypt(v, one key) (baseline)'), (2, 'encrypt(v, subject_key(user_id))')) AS m(kind, name),
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM stimings WHERE kind = m.kind) t,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM stimings WHERE kind = 1) b
 ORDER BY m.kind;
\set QUIET on
\o /dev/null
-- The subject keys stay (the next make bench drops the database).
DROP TABLE g_events, g_events_rls, g_consenting;
DROP OWNED BY encml_bench_trainer;
DROP ROLE encml_bench_trainer;
\o
