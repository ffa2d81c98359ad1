-- Differential-privacy aggregates and the privacy budget ledger. Noisy answers are checked
-- against bounds that a wrong noise scale, a missing clamp or a missing charge would break.
CREATE ROLE encml_dp_analyst NOLOGIN;
CREATE ROLE encml_dp_other NOLOGIN;
CREATE TABLE dp_data AS
SELECT i, (i % 100)::float8 AS x, (i % 100)::bigint AS y, 'person-' || (i % 1000) AS person, i % 4 AS g
  FROM generate_series(1, 40000) i;
ANALYZE dp_data;
GRANT SELECT ON dp_data TO encml_dp_analyst, encml_dp_other;

-- Without a budget an analyst gets nothing, and the refusal is on record.
SET ROLE encml_dp_analyst;
SELECT try($$SELECT encml.dp_count(x, 1.0) FROM dp_data$$) AS no_budget;
SELECT encml.privacy_budget_remaining() IS NULL AS no_budget_row;
SELECT try($$SELECT encml.set_privacy_budget('encml_dp_analyst', 100)$$) AS analyst_sets_own_budget;
RESET ROLE;
SELECT analyst, epsilon, granted, note FROM encml.privacy_ledger WHERE analyst = 'encml_dp_analyst'::regrole;

SELECT encml.set_privacy_budget('encml_dp_analyst', 10, 1e-5);
SET ROLE encml_dp_analyst;
-- Answers near the truth at a generous epsilon; values outside [lower, upper] count as the bound.
SELECT abs(encml.dp_count(x, 1.0) - 40000) < 30 AS count_near,
       abs(encml.dp_count_rows(1.0) - 40000) < 30 AS rows_near,
       abs(encml.dp_sum(x, 0, 10, 1.0) - 378000) < 300 AS clamped_sum_near,
       abs(encml.dp_sum(y, 0, 10, 1.0) - 378000) < 300 AS clamped_bigint_sum_near,
       abs(encml.dp_avg(x, 0, 100, 2.0) - 49.5) < 0.1 AS avg_near
  FROM dp_data;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_after_6;
-- Gaussian (delta > 0) and a privacy unit: 1,000 persons, at most 5 rows each count.
SELECT abs(encml.dp_count(x, 0.5, 1e-6) - 40000) < 100 AS gaussian_near,
       abs(encml.dp_count(x, 0.5, 0, person, 5) - 5000) < 100 AS bounded_per_person
  FROM dp_data;
-- Multiplying rows does not multiply a person's weight.
SELECT abs(encml.dp_count(d.x, 0.5, 0, d.person, 5) - 5000) < 100 AS self_join_bounded
  FROM dp_data d CROSS JOIN generate_series(1, 3);
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_after_7_5;
-- GROUP BY needs partition selection: groups are released only when their noisy count passes
-- a threshold. Each person is in one group, so the groups compose in parallel: the query
-- charges its aggregates once (0.5 + 0.5), however many groups there are.
SELECT try($$SELECT g, encml.dp_count(x, 0.5) FROM dp_data GROUP BY g$$) AS grouped_without_selection;
SELECT try($$SELECT g, encml.dp_count(x, 0.5) FROM dp_data GROUP BY g HAVING encml.dp_partition(0.5, 1e-6) OR true$$) AS selection_ored_away;
SELECT g, abs(encml.dp_count(x, 0.5) - 10000) < 100 AS near
  FROM dp_data GROUP BY g HAVING encml.dp_partition(0.5, 1e-6) ORDER BY g;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_after_8_5;
-- ROLLBACK refunds nothing.
BEGIN;
SELECT encml.dp_count(x, 0.5) IS NOT NULL AS released FROM dp_data;
ROLLBACK;
SELECT round(encml.privacy_budget_remaining()::numeric, 6) AS remaining_after_rollback;
-- Running out: refused, recorded, nothing released.
SELECT try($$SELECT encml.dp_count(x, 1.25) FROM dp_data$$) AS exhausted;
SELECT encml.dp_count(x, 1.0) IS NOT NULL AS the_last_epsilon FROM dp_data;
SELECT try($$SELECT encml.dp_count(x, 0.001) FROM dp_data$$) AS nothing_left;
SELECT count(*) FILTER (WHERE granted) AS granted, count(*) FILTER (WHERE NOT granted) AS refused,
       round(sum(epsilon) FILTER (WHERE granted)::numeric, 6) AS epsilon_granted
  FROM encml.privacy_ledger WHERE analyst = 'encml_dp_analyst'::regrole;
-- Wrong uses.
SELECT try($$SELECT encml.dp_sum(x, 0, 1, 0.1) OVER () FROM dp_data$$) AS window;
SELECT try($$SELECT encml.dp_sum(x, 0, 1, 0) FROM dp_data$$) AS zero_epsilon;
SELECT try($$SELECT encml.dp_sum(x, 5, 1, 0.1) FROM dp_data$$) AS inverted_bounds;
SELECT try($$SELECT encml.dp_sum(x, 0, 'infinity', 0.1) FROM dp_data$$) AS infinite_bound;
-- Parameters OpenDP cannot calibrate noise for are the caller's (22023; issue 29: was XX000).
SELECT try($$SELECT encml.dp_sum(x, 0, 1e308, 1e-300) FROM dp_data$$) AS uncalibratable;
SELECT try($$SELECT encml.dp_sum(x, 0, i, 0.1) FROM dp_data$$) AS bounds_vary;
SELECT try($$SELECT encml.dp_count(x, 0.1, 0, person, 0) FROM dp_data$$) AS zero_rows_per_unit;
SELECT try($$SELECT encml.dp_sum_trans(NULL, 1.0::float8, 0::float8, 1::float8, 1::float8)$$) AS transition_alone;
SELECT try($$SELECT encml.dp_sum(x, 0, i, 0.1) FROM dp_data WHERE false$$) AS empty_input_bounds_from_rows;
-- The fixed-size state of dp_sum, dp_avg and dp_count_rows (docs/formats.md): its support
-- functions refuse to run outside the aggregate, and malformed text is refused.
SELECT try($$SELECT encml.dp_sum_trans('dp1:f', 1.0::float8, 0::float8, 1::float8, 1::float8)$$) AS transition_on_a_state_alone;
SELECT try($$SELECT encml.dp_sum_final('dp1:f')$$) AS final_alone;
SELECT try($$SELECT 'dp1:nonsense'::encml.dp_state$$) AS malformed_state;
-- An exact state typed in is not a dp_state (only the empty ones and sealed ones are).
SELECT try($$SELECT ('dp1:02660300000000000000000000000000' || repeat('0', 160))::encml.dp_state$$) AS typed_in_state;
SELECT try($$SELECT g, encml.dp_count(x, 0.1, 0, person, 2) FROM dp_data GROUP BY g HAVING encml.dp_partition(0.1, 1e-6)$$) AS unit_with_threshold;
SELECT try($$SELECT g, encml.dp_count(x, 0.1) FROM dp_data GROUP BY ROLLUP (g) HAVING encml.dp_partition(0.1, 1e-6)$$) AS rollup;
SELECT try($$SELECT s.g, (SELECT encml.dp_count(d.x, 0.1) FROM dp_data d WHERE d.g = s.g GROUP BY d.g HAVING encml.dp_partition(0.1, 1e-6)) FROM generate_series(0, 3) s(g)$$) AS correlated;
SELECT try($$SELECT g, encml.dp_count(x, 0.1) FROM dp_data GROUP BY g HAVING encml.dp_public_groups(g, '{0,1}')$$) AS public_groups_not_granted;
-- Another analyst sees neither the budget nor the charges of this one.
RESET ROLE;
SET ROLE encml_dp_other;
SELECT count(*) AS others_charges_seen FROM encml.privacy_ledger;
SELECT count(*) AS others_budgets_seen FROM encml.privacy_budget;
SELECT try($$SELECT encml.privacy_budget_remaining('encml_dp_analyst')$$) AS others_remaining;
SELECT try($$SELECT * FROM encml.privacy_budgets$$) AS budget_table;
RESET ROLE;

-- Parallel query: workers share the scan, the leader adds noise once.
-- Bounds of 20 noise scales (sum: 100, bounded count: 5), so a correct run fails about
-- once in 10^9; without the clamp the count would be 40000.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT encml.dp_sum(x, 0, 100, 1.0) FROM dp_data;
SELECT abs(encml.dp_sum(x, 0, 100, 1.0) - 1980000) < 2000 AS parallel_sum_near,
       abs(encml.dp_count(x, 1.0, 0, person, 5) - 5000) < 100 AS parallel_bounded_near
  FROM dp_data;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;

-- The noise has the promised scale: 4,000 groups of 10 rows, dp_count at epsilon 0.5 (discrete
-- Laplace, variance 2e^-2/(1-e^-2)^2 = 7.84, within 2% of 2/epsilon^2 = 8; the sample
-- variance's standard error is sqrt(5/4000) = 3.5%, so 20% is 5.7 standard errors). The
-- selection threshold at epsilon 10 is about 4: every group of 10 passes.
SELECT encml.set_privacy_budget('encml_dp_analyst', 1000, 1e-3, scope => 'calibration');
SET ROLE encml_dp_analyst;
SET encml.privacy_scope = 'calibration';
SELECT count(*) AS groups, abs(avg(n - 10)) < 0.2 AS mean_near_zero,
       abs(var_samp(n) / 8 - 1) < 0.2 AS variance_within_20_percent
  FROM (SELECT encml.dp_count(x, 0.5) AS n FROM dp_data WHERE i <= 40000 GROUP BY i % 4000
        HAVING encml.dp_partition(10, 1e-9)) s;
SELECT try($$SELECT g, encml.dp_count(x, 0.1) FROM dp_data GROUP BY g HAVING encml.dp_partition(0.1, 0)$$) AS partition_without_delta;
-- Single-row groups are suppressed (each passes with probability below delta); the charge does
-- not depend on how many groups there were.
SELECT count(*) AS single_row_groups_released
  FROM (SELECT i, encml.dp_count(x, 0.5) FROM dp_data WHERE i <= 1000 GROUP BY i
        HAVING encml.dp_partition(0.5, 1e-6)) s;
SELECT count(*) AS charges, round(sum(epsilon)::numeric, 6) AS epsilon
  FROM encml.privacy_ledger WHERE scope = 'calibration';
-- An input without rows is released with noise and charged like any other, so whether a
-- filter matched anyone stays private.
SELECT encml.dp_count_rows(1.0) IS NOT NULL AS empty_released,
       encml.dp_sum(x, 0, 10, 1.0) IS NOT NULL AS empty_sum_released,
       encml.dp_avg(x, 0, 10, 1.0) BETWEEN 0 AND 10 AS empty_avg_in_bounds
  FROM dp_data WHERE person = 'nobody';
SELECT count(*) AS charges, round(sum(epsilon)::numeric, 6) AS epsilon
  FROM encml.privacy_ledger WHERE scope = 'calibration';
-- Parallel grouped aggregation: partial states per worker, one selection per group.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF)
SELECT g, encml.dp_sum(x, 0, 100, 1.0) FROM dp_data GROUP BY g HAVING encml.dp_partition(1.0, 1e-6);
SELECT g, abs(encml.dp_sum(x, 0, 100, 1.0) - (480000 + 10000 * g)) < 1000 AS parallel_grouped_near
  FROM dp_data GROUP BY g HAVING encml.dp_partition(1.0, 1e-6) ORDER BY g;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET encml.privacy_scope;
RESET ROLE;

-- A SECURITY DEFINER wrapper (the recommended setup) charges the analyst who calls it, not its
-- owner; the analyst needs no SELECT on the table.
CREATE TABLE dp_private AS SELECT * FROM dp_data;
CREATE FUNCTION public.dp_private_count(eps float8) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT encml.dp_count(x, eps) FROM public.dp_private
$$;
REVOKE ALL ON FUNCTION public.dp_private_count(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.dp_private_count(float8) TO encml_dp_analyst;
SELECT encml.set_privacy_budget('encml_dp_analyst', 1, scope => 'wrapper');
SET ROLE encml_dp_analyst;
SET encml.privacy_scope = 'wrapper';
SELECT try('SELECT count(*) FROM dp_private') AS raw_table;
SELECT abs(public.dp_private_count(0.5) - 40000) < 100 AS through_wrapper;
RESET encml.privacy_scope;
RESET ROLE;
SELECT analyst, epsilon, granted FROM encml.privacy_ledger WHERE scope = 'wrapper';
DROP FUNCTION public.dp_private_count(float8);

-- Groups over a public list of keys, written by a privacy admin: every listed ward appears (the
-- LEFT JOIN), unlisted ones never do, and with a privacy unit (a person may be in every group)
-- the query charges epsilon once per listed key.
CREATE ROLE encml_dp_admin NOLOGIN IN ROLE encml_privacy_admin;
GRANT SELECT ON dp_private TO encml_dp_admin;
CREATE FUNCTION public.dp_private_by_group(eps float8) RETURNS TABLE (g int, n bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.g, encml.dp_count(d.x, eps, 0, d.person, 10)
      FROM unnest('{0,1,2,7}'::int[]) AS k(g) LEFT JOIN public.dp_private d ON d.g = k.g
     GROUP BY k.g HAVING encml.dp_public_groups(k.g, '{0,1,2,7}'::int[])
$$;
ALTER FUNCTION public.dp_private_by_group(float8) OWNER TO encml_dp_admin;
REVOKE ALL ON FUNCTION public.dp_private_by_group(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.dp_private_by_group(float8) TO encml_dp_analyst;
SELECT encml.set_privacy_budget('encml_dp_analyst', 10, scope => 'public-keys');
SET ROLE encml_dp_analyst;
SET encml.privacy_scope = 'public-keys';
SELECT g, abs(n - CASE WHEN g = 7 THEN 0 ELSE 2500 END) < 200 AS near
  FROM public.dp_private_by_group(0.5) ORDER BY g;
RESET encml.privacy_scope;
RESET ROLE;
SELECT epsilon, granted FROM encml.privacy_ledger WHERE scope = 'public-keys';
DROP FUNCTION public.dp_private_by_group(float8);
DROP TABLE dp_private;
DROP OWNED BY encml_dp_admin;
DROP ROLE encml_dp_admin;

-- Concurrent sessions of one analyst cannot overspend: four sessions try three charges of
-- epsilon 1 each at once against a budget of 5.
SELECT encml.set_privacy_budget('encml_dp_analyst', 5, scope => 'race');
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT dblink_connect('race' || n, format('host=%s port=%s dbname=%s user=%s',
       current_setting('unix_socket_directories'), current_setting('port'), current_database(), current_user))
  FROM generate_series(1, 4) n;
SELECT dblink_send_query('race' || n, $q$
DO $race$
BEGIN
    SET ROLE encml_dp_analyst;
    SET encml.privacy_scope = 'race';
    FOR k IN 1 .. 3 LOOP
        BEGIN
            PERFORM encml.dp_count(x, 1.0) FROM dp_data;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END LOOP;
END
$race$
$q$)
  FROM generate_series(1, 4) n;
SELECT count(*) AS sessions_done FROM generate_series(1, 4) n,
       LATERAL dblink_get_result('race' || n) AS r(status text);
SELECT dblink_disconnect('race' || n) FROM generate_series(1, 4) n;
SELECT count(*) FILTER (WHERE granted) AS granted, count(*) FILTER (WHERE NOT granted) AS refused
  FROM encml.privacy_ledger WHERE scope = 'race';
SELECT epsilon_spent FROM encml.privacy_budget WHERE scope = 'race';

DROP TABLE dp_data;
DROP OWNED BY encml_dp_analyst, encml_dp_other;
DROP ROLE encml_dp_analyst, encml_dp_other;
