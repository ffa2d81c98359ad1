-- Groups per privacy unit (docs/privacy.md "Groups per privacy unit"): with
-- HAVING encml.dp_partition(epsilon, delta, privacy_unit, max_groups_contributed) a unit's rows
-- reach at most that many groups, the noise of each group is for that share of the loss, the
-- query is charged once, and what cannot be bounded is refused before any charge.
CREATE ROLE encml_dpg_analyst NOLOGIN;
-- One person (p-0) with two rows in each of 50 clinics; 1000 others with one row in one clinic
-- each, 20 per clinic.
CREATE TABLE dpg AS
SELECT 'p-0' AS person, 'clinic-' || c AS clinic, 1.0::float8 AS cost
  FROM generate_series(1, 50) c, generate_series(1, 2)
UNION ALL
SELECT 'p-' || i, 'clinic-' || (1 + i % 50), 2.0 FROM generate_series(1, 1000) i;
-- 100 people in every one of 50 clinics, two rows each.
CREATE TABLE dpg_many AS
SELECT p AS person, 'clinic-' || c AS clinic, (p % 7)::float8 AS cost
  FROM generate_series(1, 100) p, generate_series(1, 50) c, generate_series(1, 2);
-- 3000 people in one clinic.
CREATE TABLE dpg_big AS SELECT p AS person, 'big' AS clinic FROM generate_series(1, 3000) p;
ANALYZE dpg; ANALYZE dpg_many; ANALYZE dpg_big;
GRANT SELECT ON dpg, dpg_many, dpg_big TO encml_dpg_analyst;
SELECT encml.set_privacy_budget('encml_dpg_analyst', 1e9, 0.5);
SET ROLE encml_dpg_analyst;

-- Never more than k groups: at an epsilon so large that the noise rounds to nothing, every
-- clinic (20 one-clinic people, and p-0 where its keyed rank puts the clinic among its first
-- three) is released, and p-0 is counted in exactly 3 of the 50.
SELECT count(*) AS clinics, sum(units) AS units, sum(units) - 1000 AS clinics_of_p0,
       sum(n) - 1000 AS rows_of_p0
  FROM (SELECT clinic, encml.dp_count_rows(1e6, 0, person, 2) AS n,
               encml.dp_count(person, 1e6, 0, person, 1) AS units
          FROM dpg GROUP BY clinic
        HAVING encml.dp_partition(1e6, 0.01, person, 3)) s;
-- 100 people in 50 clinics each: at most k groups each, whatever k.
SELECT sum(units) BETWEEN 1 AND 100 AS k1
  FROM (SELECT clinic, encml.dp_count(person, 1e6, 0, person::text, 1) AS units
          FROM dpg_many GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person::text, 1)) s;
SELECT sum(units) BETWEEN 101 AND 700 AS k7
  FROM (SELECT clinic, encml.dp_count(person, 1e6, 0, person::text, 1) AS units
          FROM dpg_many GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person::text, 7)) s;
-- k from an enclosing query cannot be moved into the bounded level.
SELECT try($$SELECT k, (SELECT count(*) FROM (
               SELECT clinic FROM dpg_many GROUP BY clinic
               HAVING encml.dp_partition(1e6, 0.01, person::text, k)) s)
              FROM (VALUES (1), (2)) v(k)$$) AS correlated_k;
-- The unit's rows are bounded in each group too (max_rows_per_unit): 2 rows of each of the
-- 3 clinics of p-0 with max_rows 2, 1 with max_rows 1.
SELECT sum(n) - 1000 AS rows_of_p0
  FROM (SELECT clinic, encml.dp_count_rows(1e6, 0, person, 1) AS n FROM dpg GROUP BY clinic
        HAVING encml.dp_partition(1e6, 0.01, person, 3)) s;
-- Which three: a keyed hash drawn at each planning, so not always the same ones.
CREATE TEMP TABLE picks(round int, clinic text);
DO $$
BEGIN
    FOR r IN 1..8 LOOP
        INSERT INTO picks
        SELECT r, clinic FROM dpg GROUP BY clinic
        HAVING encml.dp_partition(1e6, 0.01, person, 3)
           AND encml.dp_count(person, 1e6, 0, person, 1) > 20;
    END LOOP;
END $$;
SELECT count(*) = 24 AS three_per_round, count(DISTINCT clinic) > 3 AS varies FROM picks;

-- Charged once, (epsilon, delta) as written, not times k.
SELECT count(*) AS charges_before FROM encml.privacy_ledger \gset
SELECT count(*) FROM (SELECT clinic FROM dpg GROUP BY clinic
                       HAVING encml.dp_partition(0.5, 1e-6, person, 10)
                          AND encml.dp_count_rows(0.25, 0, person, 2) > 0) s;
SELECT epsilon, delta FROM encml.privacy_ledger ORDER BY id DESC LIMIT 1;

-- Each group's noise is for epsilon / k: over 30 runs the noisy count of a 3000-person clinic
-- spreads about k times wider (discrete Laplace of scale k / epsilon).
CREATE TEMP TABLE spread(k int, n bigint);
DO $$
BEGIN
    FOR r IN 1..30 LOOP
        INSERT INTO spread
        SELECT 1, encml.dp_count_rows(1.0, 0, person::text, 1) FROM dpg_big GROUP BY clinic
        HAVING encml.dp_partition(10.0, 1e-3, person::text, 1);
        INSERT INTO spread
        SELECT 40, encml.dp_count_rows(1.0, 0, person::text, 1) FROM dpg_big GROUP BY clinic
        HAVING encml.dp_partition(10.0, 1e-3, person::text, 40);
    END LOOP;
END $$;
SELECT k, count(*) AS runs, stddev(n) < 6 AS narrow, stddev(n) > 15 AS wide
  FROM spread GROUP BY k ORDER BY k;

-- Everywhere a query level can be: a FROM subquery, a WITH query, a prepared statement with k
-- as a parameter, several group keys, the quantile and variance aggregates, a parallel plan.
WITH per_clinic AS (
    SELECT clinic, encml.dp_count(person, 1e6, 0, person, 1) AS units FROM dpg GROUP BY clinic
    HAVING encml.dp_partition(1e6, 0.01, person, 3))
SELECT sum(units) - 1000 AS clinics_of_p0 FROM per_clinic;
PREPARE bounded(int) AS
SELECT sum(units) - 1000 AS clinics_of_p0
  FROM (SELECT clinic, encml.dp_count(person, 1e6, 0, person, 1) AS units FROM dpg
         GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person, $1)) s;
EXECUTE bounded(2);
EXECUTE bounded(5);
DEALLOCATE bounded;
-- (k folds to a constant.)
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 1 + 1)$$) AS k_folded;
SELECT count(*) BETWEEN 1 AND 100 AS some_groups, sum(units) <= 400 AS at_most_4_each
  FROM (SELECT clinic, person % 2 AS half, encml.dp_count(person, 1e6, 0, person::text, 1) AS units
          FROM dpg_many GROUP BY clinic, person % 2
        HAVING encml.dp_partition(1e6, 0.01, person::text, 4)) s;
SELECT count(*) BETWEEN 1 AND 50 AS some_clinics, bool_and(m BETWEEN 0 AND 6) AS medians_in_bounds,
       bool_and(v BETWEEN 0 AND 36) AS variances_in_bounds
  FROM (SELECT clinic, encml.dp_median(cost, 0, 6, 1e4, 0, person::text, 2) AS m,
               encml.dp_var_pop(cost, 0, 6, 1e4, 0, person::text, 2) AS v
          FROM dpg_many GROUP BY clinic
        HAVING encml.dp_partition(1e6, 0.01, person::text, 5)) s;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;
SELECT bool_or(line ~ 'Gather') AS parallel_scan,
       bool_or(line ~ 'Run Condition: \(dense_rank\(\) OVER \(\?\) <= 2\)') AS bounded
  FROM pg_temp.plan_of($$SELECT clinic FROM dpg_many GROUP BY clinic
                         HAVING encml.dp_partition(1e6, 0.01, person::text, 2)$$) line;
SELECT sum(units) BETWEEN 1 AND 200 AS at_most_2_each
  FROM (SELECT clinic, encml.dp_count(person, 1e6, 0, person::text, 1) AS units
          FROM dpg_many GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person::text, 2)) s;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;

-- A group key or unit that is not immutable is computed once (attacker re-check: random() in
-- the key, evaluated again for the rank's hash, split one unit's rows in a group so that their
-- place restarted, and a group of one unit counted it k times and was released). One unit with
-- 1000 rows: no group of it passes the threshold, whatever its key.
CREATE TEMP TABLE one_unit AS SELECT 999 AS u FROM generate_series(1, 1000);
SELECT count(*) AS released, coalesce(max(n), 0) AS most_rows
  FROM (SELECT (random() * 3)::int AS g, encml.dp_count_rows(1e6, 0, u::text, 1) AS n
          FROM one_unit GROUP BY 1 HAVING encml.dp_partition(1e6, 1e-9, u::text, 16)) s;
SELECT count(*) AS released
  FROM (SELECT (random() * 3)::int AS g FROM one_unit
         GROUP BY 1 HAVING encml.dp_partition(1e6, 1e-9, (u + (random() * 0)::int)::text, 16)) s;

-- Refused, before any charge.
SELECT count(*) AS charges_before FROM encml.privacy_ledger \gset
-- a privacy unit in the aggregates and none in dp_partition
SELECT try($$SELECT clinic, encml.dp_count(person, 1.0, 0, person, 1) FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6)$$) AS unit_without_bounded_groups;
-- an aggregate without the unit, or with another unit
SELECT try($$SELECT clinic, encml.dp_count_rows(1.0) FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS aggregate_without_unit;
SELECT try($$SELECT clinic, encml.dp_count_rows(1.0, 0, clinic, 1) FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS aggregate_with_other_unit;
-- k from the rows, zero, NULL
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, length(person))$$) AS k_from_rows;
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 0)$$) AS k_zero;
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, NULL)$$) AS k_null;
-- k and max_rows_per_unit that could change between the executor start (noise, charge) and the
-- rows (the bound): only constants and parameters (attacker pass: a stable function reading
-- the statistics the charge moves made k 1 for the noise and a million for the rows).
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person,
                    CASE WHEN pg_stat_get_tuples_inserted('encml.privacy_charges'::regclass) > 0
                         THEN 1000000 ELSE 1 END)$$) AS k_from_statistics;
SELECT try($$SELECT clinic, encml.dp_count_rows(1.0, 0, person, length(current_user)) FROM dpg
             GROUP BY clinic HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS max_rows_not_fixed;
-- A k so large that delta / k calibrates no threshold is refused before the charge, whether or
-- not any row matches (attacker pass: refused only when a group formed, it told whether one did).
SELECT try($$SELECT clinic FROM dpg WHERE person = 'p-0' GROUP BY clinic
             HAVING encml.dp_partition(1e-6, 1e-8, person, 2147483647)$$) AS huge_k_rows;
SELECT try($$SELECT clinic FROM dpg WHERE person = 'nobody' GROUP BY clinic
             HAVING encml.dp_partition(1e-6, 1e-8, person, 2147483647)$$) AS huge_k_no_rows;
-- a subquery in the select list, grouping sets, a second selection
SELECT try($$SELECT clinic, (SELECT 1) FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS subquery_in_targets;
SELECT try($$SELECT clinic, GROUPING(clinic) FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS grouping_func;
SELECT try($$SELECT clinic FROM dpg GROUP BY ROLLUP (clinic)
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)$$) AS rollup;
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2)
                AND encml.dp_partition(1.0, 1e-6)$$) AS two_selections;
-- not under a top-level AND: no selection at all
SELECT try($$SELECT clinic FROM dpg GROUP BY clinic
             HAVING encml.dp_partition(1.0, 1e-6, person, 2) OR clinic = 'x'$$) AS ored;
-- a SQL function the planner inlines after the rewrite: refused at executor start, unbounded
-- rows never released.
CREATE FUNCTION pg_temp.inlined() RETURNS TABLE(clinic text) LANGUAGE sql STABLE AS $$
    SELECT clinic FROM dpg GROUP BY clinic HAVING encml.dp_partition(1.0, 1e-6, person, 2) $$;
SELECT try($$SELECT * FROM pg_temp.inlined()$$) AS inlined_function;
SELECT count(*) - :charges_before AS charged_by_refusals FROM encml.privacy_ledger;
-- A function the planner does not inline plans its own query: rewritten, bounded.
CREATE FUNCTION pg_temp.planned() RETURNS SETOF numeric LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT sum(units) - 1000 FROM (
        SELECT clinic, encml.dp_count(person, 1e6, 0, person, 1) AS units FROM dpg
         GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person, 3)) s;
END $$;
SELECT * FROM pg_temp.planned() AS clinics_of_p0;
RESET ROLE;

-- DP-only tables: the privacy-unit form of dp_partition over the table's unit column lifts the
-- refusal of a noisy threshold on a table with several rows per unit.
CREATE TABLE dpg_only AS SELECT person, clinic, cost FROM dpg_many;
SELECT encml.dp_protect('dpg_only', 'person', 2);
GRANT SELECT ON dpg_only TO encml_dpg_analyst;
SET ROLE encml_dpg_analyst;
CREATE TEMP TABLE only_total(units bigint);
DO $$
DECLARE r record; total bigint := 0;
BEGIN
    -- (An outer aggregate over a DP-only table's dp block is refused; the sum is taken here.)
    FOR r IN SELECT clinic, encml.dp_count(cost, 1e6, 0, person::text, 1) AS units
               FROM dpg_only GROUP BY clinic HAVING encml.dp_partition(1e6, 0.01, person::text, 3)
    LOOP
        total := total + r.units;
    END LOOP;
    INSERT INTO only_total VALUES (total);
END $$;
SELECT units BETWEEN 1 AND 300 AS at_most_3_each FROM only_total;
SELECT try($$SELECT clinic, encml.dp_count(cost, 1.0, 0, person::text, 2) FROM dpg_only
             GROUP BY clinic HAVING encml.dp_partition(1.0, 1e-6)$$) AS rows_not_units;
SELECT try($$SELECT clinic, encml.dp_count(cost, 1.0, 0, clinic, 2) FROM dpg_only
             GROUP BY clinic HAVING encml.dp_partition(1.0, 1e-6, clinic, 3)$$) AS other_unit;
RESET ROLE;
SELECT encml.dp_unprotect('dpg_only');
DROP TABLE dpg, dpg_many, dpg_big, dpg_only;
DROP OWNED BY encml_dpg_analyst;
DROP ROLE encml_dpg_analyst;
