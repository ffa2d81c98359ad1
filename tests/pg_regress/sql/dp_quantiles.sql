-- Quantiles, variance and standard deviation (docs/privacy.md "Quantiles, variance"): answers
-- near the truth at a generous epsilon, the same charges and refusals as the other dp
-- aggregates, contribution bounding per unit, parallel plans, GROUP BY, DP-only tables, and the
-- support functions closed to other aggregates.
CREATE ROLE encml_dpq_analyst NOLOGIN;
CREATE TABLE dpq AS
SELECT i, (i % 100)::float8 AS x, 'person-' || (i % 1000) AS person, i % 4 AS g
  FROM generate_series(1, 40000) i;
ANALYZE dpq;
GRANT SELECT ON dpq TO encml_dpq_analyst;
SELECT encml.set_privacy_budget('encml_dpq_analyst', 100, 1e-5);
SET ROLE encml_dpq_analyst;

-- Near the truth: x is 0..99 uniformly (median 49.5, 90th percentile 89, variance 833.25); the
-- answer of a quantile is one of 1024 candidates over [lower, upper] (steps of about 0.1).
SELECT abs(encml.dp_median(x, 0, 100, 2.0) - 49.5) < 2 AS median_near,
       abs(encml.dp_percentile(x, 0.9, 0, 100, 2.0) - 89.5) < 2 AS p90_near,
       abs(encml.dp_var_pop(x, 0, 100, 2.0) - 833.25) < 40 AS var_near,
       abs(encml.dp_stddev_pop(x, 0, 100, 2.0) - 28.87) < 1 AS stddev_near
  FROM dpq;
SELECT array_length(p, 1) AS n, p[1] < p[2] AND p[2] < p[3] AS increasing,
       abs(p[1] - 9.5) < 2 AND abs(p[2] - 49.5) < 2 AND abs(p[3] - 98.5) < 2 AS near
  FROM (SELECT encml.dp_percentiles(x, '{0.1, 0.5, 0.99}', 0, 100, 3.0) AS p FROM dpq) s;
-- A quantile is always a candidate of the grid: a multiple of 100/1023 here.
SELECT abs(q * 1023 / 100 - round(q * 1023 / 100)) < 1e-9 AS on_the_grid
  FROM (SELECT encml.dp_median(x, 0, 100, 1.0) AS q FROM dpq) s;
-- Charged when the query starts, each aggregate its epsilon (5 + 3 + 1 so far).
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining;
SELECT epsilon, delta FROM encml.privacy_ledger WHERE analyst = current_user::regrole ORDER BY id;

-- Refused before anything is charged, with 22023 (or 22004 for NULL).
SELECT try($$SELECT encml.dp_percentile(x, 0.5, 0, 100, 1.0, 1e-6) FROM dpq$$) AS percentile_with_delta;
SELECT try($$SELECT encml.dp_percentile(x, 1.5, 0, 100, 1.0) FROM dpq$$) AS percentile_out_of_range;
SELECT try($$SELECT encml.dp_percentile(x, NULL, 0, 100, 1.0) FROM dpq$$) AS percentile_null;
SELECT try($$SELECT encml.dp_percentile(x, x / 100, 0, 100, 1.0) FROM dpq$$) AS percentile_from_the_rows;
SELECT try($$SELECT encml.dp_percentiles(x, '{}', 0, 100, 1.0) FROM dpq$$) AS no_percentiles;
SELECT try($$SELECT encml.dp_percentiles(x, '{0.5, NULL}', 0, 100, 1.0) FROM dpq$$) AS null_percentile;
SELECT try($$SELECT encml.dp_median(x, 100, 100, 1.0) FROM dpq$$) AS empty_bounds;
SELECT try($$SELECT encml.dp_var_pop(x, 100, 0, 1.0) FROM dpq$$) AS reversed_bounds;
SELECT try($$SELECT encml.dp_var_pop(x, 0, 100, 0) FROM dpq$$) AS zero_epsilon;
SELECT try($$SELECT encml.dp_median(x, 0, 100, 1.0) OVER () FROM dpq$$) AS as_a_window;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_unchanged;

-- The delta form of the variance is Gaussian; the answer stays within [0, half-width²].
SELECT v BETWEEN 0 AND 2500 AS in_range FROM (SELECT encml.dp_var_pop(x, 0, 100, 1.0, 1e-6) AS v FROM dpq) s;
-- An empty input is released and charged like any other (whether rows matched stays private).
SELECT q BETWEEN 0 AND 100 AS released FROM (SELECT encml.dp_median(x, 0, 100, 1.0) AS q FROM dpq WHERE false) s;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_after_empty;
RESET ROLE;

-- One person with many rows: without a unit they decide the median; with one (a row each) not.
CREATE TABLE dpq_heavy AS
SELECT 'whale' AS person, 100::float8 AS x FROM generate_series(1, 5000)
UNION ALL SELECT 'p' || i, 0::float8 FROM generate_series(1, 2000) i;
GRANT SELECT ON dpq_heavy TO encml_dpq_analyst;
SET ROLE encml_dpq_analyst;
SELECT encml.dp_median(x, 0, 100, 2.0) > 50 AS whale_decides,
       encml.dp_median(x, 0, 100, 2.0, 0, person, 1) < 10 AS whale_bounded,
       encml.dp_stddev_pop(x, 0, 100, 2.0, 0, person, 1) < 10 AS spread_bounded
  FROM dpq_heavy;
-- Multiplying rows does not multiply the whale's weight either.
SELECT encml.dp_median(h.x, 0, 100, 2.0, 0, h.person, 1) < 10 AS self_join_bounded
  FROM dpq_heavy h CROSS JOIN generate_series(1, 3);

-- GROUP BY with partition selection: each person in one group, so charged once per aggregate.
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS before_grouped \gset
-- (Group g holds 48 + g ± 4k: the median is 48 + g, and every candidate in the gaps around it
-- scores alike.)
SELECT g, abs(encml.dp_median(x, 0, 100, 1.0) - (48 + g)) < 5 AS median_near
  FROM dpq GROUP BY g HAVING encml.dp_partition(0.5, 1e-6) ORDER BY g;
SELECT round(:before_grouped - encml.privacy_budget_remaining()::numeric, 6) AS grouped_charge;
SELECT try($$SELECT g, encml.dp_var_pop(x, 0, 100, 1.0) FROM dpq GROUP BY g$$) AS grouped_without_selection;
RESET ROLE;

-- Parallel plans: partial histograms and moments merge in the leader, which adds the noise.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT encml.dp_median(x, 0, 100, 1.0), encml.dp_var_pop(x, 0, 100, 1.0, 0, person, 3) FROM dpq;
SELECT encml.set_privacy_budget('encml_dpq_analyst', 200, 1e-5);
SET ROLE encml_dpq_analyst;
SELECT abs(encml.dp_median(x, 0, 100, 2.0) - 49.5) < 2 AS median_near,
       abs(encml.dp_var_pop(x, 0, 100, 2.0) - 833.25) < 40 AS var_near,
       abs(encml.dp_percentile(x, 0.25, 0, 100, 2.0, 0, person, 40) - 24.5) < 3 AS bounded_p25_near
  FROM dpq;
RESET ROLE;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- DP-only tables: the unit forms bounded by the table's unit column are accepted.
CREATE TABLE dpq_protected AS SELECT person, x FROM dpq;
SELECT encml.dp_protect('dpq_protected', 'person', 40);
GRANT SELECT ON dpq_protected TO encml_dpq_analyst;
SET ROLE encml_dpq_analyst;
SELECT abs(encml.dp_median(x, 0, 100, 2.0, 0, person, 40) - 49.5) < 3 AS protected_median_near FROM dpq_protected;
SELECT try($$SELECT encml.dp_median(x, 0, 100, 2.0) FROM dpq_protected$$) AS without_the_unit;
-- Attacker pass of issue 32: dp_partition counts rows, not units. On a DP-only table with many
-- rows per unit it is refused (it was accepted without GROUP BY, and a cross join made one
-- person's rows pass any threshold: an exact membership oracle).
SELECT try($$SELECT encml.dp_partition(1e-4, 1e-12) FROM dpq_protected d CROSS JOIN generate_series(1, 1000) g
              WHERE d.x = 99$$) AS partition_over_units;
SELECT try($$SELECT 1 FROM dpq_protected d HAVING encml.dp_partition(1e-4, 1e-12)
                 AND encml.dp_count_rows(1e-9, 0, d.person, 25) IS NOT NULL$$) AS partition_in_having;
-- And without GROUP BY it has no groups to select, on any table.
SELECT try($$SELECT encml.dp_partition(0.5, 1e-6) FROM dpq$$) AS partition_without_group_by;
SELECT try($$SELECT 1 FROM dpq HAVING encml.dp_partition(0.5, 1e-6)$$) AS having_without_group_by;
-- Re-check of that pass: a dp aggregate rerun per row (a LATERAL subquery driven by the rows)
-- was charged at every run, so the number of ledger rows counted the rows exactly. Every dp
-- aggregate must now run once per statement.
SELECT count(*) AS ledger_rows FROM encml.privacy_ledger \gset
SELECT try($$SELECT encml.dp_sum(s.c::float8, 0, 1, 1e-9, 0, d.person, 25)
              FROM dpq_protected d CROSS JOIN generate_series(1, 2) k,
                   LATERAL (SELECT encml.dp_count_rows(1e-9) c FROM generate_series(1, 1) g
                             WHERE d.x = 99 AND k > 0) s
             WHERE d.x = 99$$) AS lateral_reruns;
SELECT try($$SELECT encml.dp_sum(s.c::float8, 0, 1, 1e-9, 0, d.person, 25)
              FROM dpq_protected d, LATERAL generate_series(0, d.x::int) k,
                   LATERAL (SELECT encml.dp_count_rows(1e-9) c FROM generate_series(1, 1) g WHERE k >= 0) s
             WHERE d.x > 98$$) AS lateral_count_by_value;
SELECT try($$SELECT g, (SELECT encml.dp_count_rows(0.1) FROM dpq WHERE dpq.g = s.g) FROM generate_series(0, 3) s(g)$$) AS correlated_plain_table;
-- Second re-check: table_to_xml (a stable built-in) runs a view of the caller's choice per row
-- that reaches it, even on constant arguments: refused, with the rest of its family.
RESET ROLE;
CREATE VIEW dpq_counter AS SELECT encml.dp_count_rows(1e-9) c FROM generate_series(1, 1) g;
GRANT SELECT ON dpq_counter TO encml_dpq_analyst;
SET ROLE encml_dpq_analyst;
SELECT try($$SELECT encml.dp_count_rows(1e-9, 0, person, 40) FROM dpq_protected
             WHERE CASE WHEN x > 98 THEN table_to_xml('dpq_counter', true, false, '') IS NOT NULL ELSE false END$$) AS table_to_xml_per_row;
SELECT try($$SELECT encml.dp_median(x, 0, 100, 1e-9, 0, person, 40) FROM dpq_protected
             WHERE schema_to_xml('public', true, false, '') IS NOT NULL$$) AS schema_to_xml;
-- Third re-check: a join to a system catalog keyed by a protected value marks the index
-- entries of rows the analyst deleted (CREATE and DROP TABLE), read back with EXPLAIN: refused.
SELECT try($$SELECT encml.dp_count_rows(0.01, 0, d.person, 40) FROM dpq_protected d
              JOIN pg_catalog.pg_class c ON c.relname = ('t' || d.x::int::text)::name$$) AS catalog_join;
SELECT try($$SELECT encml.dp_count(m.oid, 0.001, 0, d.person, 40) FROM dpq_protected d
              LEFT JOIN pg_largeobject_metadata m ON m.oid = (d.x::int + 200000)::oid$$) AS large_object_catalog_join;
SELECT count(*) - :ledger_rows AS charged FROM encml.privacy_ledger;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS nothing_charged;
RESET ROLE;

-- The support functions serve only the extension's own aggregates: one built over them to
-- return the exact state is refused before any row is read.
CREATE AGGREGATE public.steal_histogram(float8, float8, float8, float8, float8, float8, text, integer) (
    SFUNC = encml.dp_percentile_trans, STYPE = internal,
    FINALFUNC = encml.dp_histogram_serialize);
GRANT EXECUTE ON FUNCTION public.steal_histogram(float8, float8, float8, float8, float8, float8, text, integer) TO encml_dpq_analyst;
SET ROLE encml_dpq_analyst;
SELECT try($$SELECT public.steal_histogram(x, 0.5, 0, 100, 1.0, 0, person, 40) FROM dpq$$) AS stolen_state;
-- The forms without a unit keep an encml.dp_summary, whose support functions are open (Citus
-- checks the caller may execute them): an analyst's own aggregate over them is refused too,
-- and the summary's text is sealed.
CREATE AGGREGATE pg_temp.steal_summary(float8, float8, float8, float8, float8) (
    SFUNC = encml.dp_percentile_summary_trans, STYPE = encml.dp_summary);
SELECT try($$SELECT pg_temp.steal_summary(x, 0.5, 0, 100, 1.0) FROM dpq$$) AS stolen_summary;
SELECT try($$SELECT encml.dp_percentile_summary_final(NULL::encml.dp_summary)$$) AS final_called_directly;
SELECT try($$SELECT '{"rows": 1}'::encml.dp_summary$$) AS forged_summary;
RESET ROLE;

DROP AGGREGATE public.steal_histogram(float8, float8, float8, float8, float8, float8, text, integer);
SELECT encml.dp_unprotect('dpq_protected');
DROP VIEW dpq_counter;
DROP TABLE dpq, dpq_heavy, dpq_protected;
DROP OWNED BY encml_dpq_analyst;
DROP ROLE encml_dpq_analyst;
