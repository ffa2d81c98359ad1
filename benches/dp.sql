-- Benchmark of the dp aggregates against their plain twins over :dprows float8 rows, parallel
-- plans allowed for both (the server's defaults). Each round runs every query once, in an order
-- that rotates; the table shows the median. The dp timings include recording the privacy
-- charge (one background worker per aggregate evaluation).
\set QUIET on
SET client_min_messages = warning;
\o /dev/null
-- person: 10 consecutive rows, each in another of the 100 groups (g), so every person is in 10
-- groups and max_groups_contributed 5 drops half of its rows.
CREATE TABLE dp_bench AS SELECT (i % 1000)::float8 AS x, i AS id, (i / 10)::int AS person, (i % 100)::int AS g
  FROM generate_series(1, :dprows::bigint) i;
VACUUM ANALYZE dp_bench;
SELECT encml.set_privacy_budget(current_user::regrole, 1e9, 0.5, scope => 'bench');
SET encml.privacy_scope = 'bench';
CREATE TEMP TABLE dparams AS SELECT :runs::int AS runs;
CREATE TEMP TABLE dtimings (kind int, ms float8);
CREATE FUNCTION pg_temp.timed(kind int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); r float8;
BEGIN
    CASE kind
    WHEN 1 THEN SELECT sum(x) INTO r FROM dp_bench;
    WHEN 2 THEN SELECT encml.dp_sum(x, 0, 1000, 1.0) INTO r FROM dp_bench;
    WHEN 3 THEN SELECT count(x) INTO r FROM dp_bench;
    WHEN 4 THEN SELECT encml.dp_count(x, 1.0) INTO r FROM dp_bench;
    -- percentile_cont sorts every value in one process: it never runs in parallel.
    WHEN 5 THEN SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO r FROM dp_bench;
    WHEN 6 THEN SELECT encml.dp_percentile(x, 0.5, 0, 1000, 1.0) INTO r FROM dp_bench;
    WHEN 7 THEN SELECT var_pop(x) INTO r FROM dp_bench;
    WHEN 8 THEN SELECT encml.dp_var_pop(x, 0, 1000, 1.0) INTO r FROM dp_bench;
    WHEN 9 THEN SELECT sum(n) INTO r FROM (SELECT g, count(x) AS n FROM dp_bench GROUP BY g) s;
    ELSE        SELECT sum(n) INTO r FROM (
                    SELECT g, encml.dp_count(x, 1.0, 0, person::text, 1) AS n FROM dp_bench GROUP BY g
                    HAVING encml.dp_partition(1.0, 1e-6, person::text, 5)) s;
    END CASE;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
DO $$
BEGIN
    PERFORM pg_temp.timed(k) FROM generate_series(1, 10) k;   -- warm-up
    FOR r IN 1 .. (SELECT runs FROM dparams) LOOP
        INSERT INTO dtimings SELECT 1 + (k + r) % 10, pg_temp.timed(1 + (k + r) % 10) FROM generate_series(0, 9) k;
    END LOOP;
END $$;
\o
\pset format aligned
\pset border 2
\pset footer off
\set QUIET off
\echo
\echo 'DP aggregates:' :dprows 'float8 rows, parallel plans allowed; median of' :runs 'rounds (targets: x_plain <= 1.5; dp_percentile <= 3 x percentile_cont, which never runs in parallel; the grouped query with a privacy unit and max_groups_contributed <= 3 x GROUP BY)'
SELECT m.name AS measure,
       round(p.ms::numeric, 1) AS plain_ms, round(d.ms::numeric, 1) AS dp_ms, round((d.ms / p.ms)::numeric, 2) AS x_plain
  FROM (VALUES (1, 'sum(x) vs dp_sum(x, 0, 1000, 1.0)', 1, 2), (2, 'count(x) vs dp_count(x, 1.0)', 3, 4),
               (3, 'percentile_cont(0.5) (serial) vs dp_percentile(x, 0.5, 0, 1000, 1.0)', 5, 6),
               (4, 'var_pop(x) vs dp_var_pop(x, 0, 1000, 1.0)', 7, 8),
               (5, '100 groups: count(x) GROUP BY g vs dp_count(x, 1.0, 0, person::text, 1) with dp_partition(1.0, 1e-6, person::text, 5)', 9, 10)) AS m(ord, name, plain, dp),
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM dtimings WHERE kind = m.plain) p,
       LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM dtimings WHERE kind = m.dp) d
 ORDER BY m.ord;
EXPLAIN (COSTS OFF) SELECT encml.dp_sum(x, 0, 1000, 1.0) FROM dp_bench;
EXPLAIN (COSTS OFF) SELECT encml.dp_percentile(x, 0.5, 0, 1000, 1.0) FROM dp_bench;
EXPLAIN (COSTS OFF) SELECT g, count(x) FROM dp_bench GROUP BY g;
EXPLAIN (COSTS OFF) SELECT g, encml.dp_count(x, 1.0, 0, person::text, 1) FROM dp_bench GROUP BY g
  HAVING encml.dp_partition(1.0, 1e-6, person::text, 5);
\set QUIET on
\o /dev/null
RESET encml.privacy_scope;
DROP TABLE dp_bench;
