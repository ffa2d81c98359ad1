-- Attacks on the dp aggregates by an analyst who can reference the rows inside a query (a view,
-- a wrapper that takes an expression, the DP-only mode) and creates objects of her own: her own
-- aggregates over the extension's support functions, and planted selections. Issue 26.
CREATE ROLE encml_dp_mallory NOLOGIN;
CREATE TABLE dp_secret AS
SELECT i, (i % 7)::bigint AS v, (i % 7)::float8 AS x, i % 3 AS g FROM generate_series(1, 1000) i;
GRANT SELECT ON dp_secret TO encml_dp_mallory;
SELECT encml.set_privacy_budget('encml_dp_mallory', 100, 1e-5);
CREATE SCHEMA dp_mallory AUTHORIZATION encml_dp_mallory;
SET ROLE encml_dp_mallory;

-- 1. The exact state through an aggregate of her own over the support functions: the state
-- type's text output would show the exact count and sum, uncharged. Every support function
-- serves the extension's own aggregates only (recognised by catalog membership).
CREATE AGGREGATE dp_mallory.exact_sum(bigint, bigint, bigint, float8) (
    SFUNC = encml.dp_sum_bigint_trans, STYPE = encml.dp_state, INITCOND = 'dp1:i');
SELECT try($$SELECT dp_mallory.exact_sum(v, 0, 10, 1.0)::text FROM dp_secret$$) AS own_aggregate_state;
CREATE AGGREGATE dp_mallory.exact_float(float8, float8, float8, float8) (
    SFUNC = encml.dp_sum_trans, STYPE = encml.dp_state, INITCOND = 'dp1:f');
SELECT try($$SELECT dp_mallory.exact_float(x, 0, 10, 1.0)::text FROM dp_secret$$) AS own_aggregate_float_state;
CREATE AGGREGATE dp_mallory.exact_rows(float8) (
    SFUNC = encml.dp_count_rows_trans, STYPE = encml.dp_state, INITCOND = 'dp1:i');
SELECT try($$SELECT dp_mallory.exact_rows(1.0)::text FROM dp_secret WHERE g = 1$$) AS own_aggregate_rows;
-- An initial state with its parameters already set (epsilon 1, bounds [0, 10]) would skip the
-- per-row parameter check on the transition's fast path; typed-in exact states are not valid
-- dp_state input at all (only the empty states and server-sealed ones), so even creating the
-- aggregate fails. (Typed in and sealed by the text output, such a state was a sealing oracle.)
SELECT try($q$CREATE AGGREGATE dp_mallory.preset_sum(bigint, bigint, bigint, float8) (
    SFUNC = encml.dp_sum_bigint_trans, STYPE = encml.dp_state,
    INITCOND = 'dp1:0269010000000000000000000000f03f000000000000000000000000000000000a000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000')$q$) AS preset_state;
SELECT try($$SELECT ('dp1:0269010000000000000000000000f03f' || repeat('0', 160))::encml.dp_state::text$$) AS sealing_oracle;
SELECT try($$SELECT 'dp1s:00'::encml.dp_state$$) AS forged_seal;
-- Her aggregate with the same transition as encml.dp_sum and no final function, next to the
-- real one: Postgres would share one transition state between them and return it through hers.
-- Refused when the query starts, before any row is read.
SELECT try($$SELECT encml.dp_sum(x, 0, 10, 1.0), dp_mallory.exact_float(x, 0, 10, 1.0)::text FROM dp_secret$$) AS shared_transition_state;
-- The internal-state forms (privacy units, dp_count, dp_partition): Postgres lets only a
-- superuser create an aggregate with an internal state.
CREATE AGGREGATE dp_mallory.unit_count(anyelement, float8, float8, text, integer) (
    SFUNC = encml.dp_count_trans, STYPE = internal, FINALFUNC = encml.dp_count_final);
-- The combine function as a transition over states she typed in.
CREATE AGGREGATE dp_mallory.merge(encml.dp_state) (
    SFUNC = encml.dp_i64_combine, STYPE = encml.dp_state, INITCOND = 'dp1:i');
SELECT try($$SELECT dp_mallory.merge(s)::text FROM (VALUES ('dp1:i'::encml.dp_state)) t(s)$$) AS own_combine;

-- 2. A planted selection: her own aggregate called dp_partition (in her schema or pg_temp,
-- first on the search_path) that always passes, and her own aggregate reusing the extension's
-- final function next to it. Neither counts as a selection or runs.
CREATE FUNCTION dp_mallory.always(boolean, float8, float8) RETURNS boolean
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS 'SELECT true';
CREATE AGGREGATE dp_mallory.dp_partition(float8, float8) (SFUNC = dp_mallory.always, STYPE = boolean);
SELECT try($$SELECT g, encml.dp_count(v, 1.0) FROM dp_secret GROUP BY g HAVING dp_mallory.dp_partition(1.0, 1e-6)$$) AS planted_selection;
CREATE AGGREGATE pg_temp.dp_partition(float8, float8) (SFUNC = dp_mallory.always, STYPE = boolean);
SELECT try($$SELECT g, encml.dp_count(v, 1.0) FROM dp_secret GROUP BY g HAVING pg_temp.dp_partition(1.0, 1e-6)$$) AS planted_in_pg_temp;
CREATE FUNCTION dp_mallory.keep(encml.dp_state, bigint) RETURNS encml.dp_state
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS 'SELECT $1';
CREATE AGGREGATE dp_mallory.count_final(bigint) (
    SFUNC = dp_mallory.keep, STYPE = encml.dp_state, INITCOND = 'dp1:i', FINALFUNC = encml.dp_count_final);
SELECT try($$SELECT g, dp_mallory.count_final(v) FROM dp_secret GROUP BY g HAVING dp_mallory.dp_partition(1.0, 1e-6)$$) AS own_final;

-- None of this released anything or charged anything.
RESET ROLE;
SELECT count(*) AS charges FROM encml.privacy_ledger WHERE analyst = 'encml_dp_mallory'::regrole;
-- The real aggregates still work for her, with the real selection.
SET ROLE encml_dp_mallory;
SELECT count(*) BETWEEN 0 AND 3 AS released
  FROM (SELECT g, encml.dp_count(v, 1.0) FROM dp_secret GROUP BY g HAVING encml.dp_partition(1.0, 1e-6)) s;
RESET ROLE;
SELECT count(*) AS charges_after_a_real_query FROM encml.privacy_ledger WHERE analyst = 'encml_dp_mallory'::regrole;

-- 3. The charge does not depend on the data: a grouped query is charged when it starts, whether
-- or not any group forms (an empty input charged nothing: once the budget was spent, a
-- non-empty input was refused and an empty one answered, an exact membership oracle).
RESET ROLE;
CREATE VIEW dp_ledger_total AS
SELECT count(*) AS charges, round(coalesce(sum(epsilon), 0)::numeric, 6) AS epsilon
  FROM encml.privacy_ledger
 WHERE analyst = (SELECT oid FROM pg_roles WHERE rolname = 'encml_dp_mallory') AND granted;
GRANT SELECT ON dp_ledger_total TO encml_dp_mallory;
SELECT * FROM dp_ledger_total;
SET ROLE encml_dp_mallory;
SELECT count(*) AS groups FROM (SELECT g, encml.dp_count(v, 1.0) FROM dp_secret WHERE i < 0
 GROUP BY g HAVING encml.dp_partition(1.0, 1e-6)) s;
SELECT * FROM dp_ledger_total;
-- Plain EXPLAIN charges nothing; EXPLAIN ANALYZE, a cursor (at its opening, fetched or not) and
-- each execution of a prepared statement are charged.
EXPLAIN (COSTS OFF) SELECT encml.dp_count_rows(1.0) FROM dp_secret;
SELECT * FROM dp_ledger_total;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT encml.dp_count_rows(1.0) FROM dp_secret;
BEGIN;
DECLARE c CURSOR FOR SELECT encml.dp_count_rows(1.0) FROM dp_secret;
CLOSE c;
COMMIT;
PREPARE q(float8) AS SELECT encml.dp_sum(x, 0, 10, $1) IS NOT NULL AS released FROM dp_secret WHERE i < 0;
EXECUTE q(1.0);
EXECUTE q(0.5);
SELECT * FROM dp_ledger_total;
-- Spent: an empty input and a non-empty one get the same refusal, before any row is read.
RESET ROLE;
SELECT encml.set_privacy_budget('encml_dp_mallory', (SELECT epsilon FROM dp_ledger_total)::float8, 1e-5);
SET ROLE encml_dp_mallory;
SELECT try($$SELECT g, encml.dp_count(v, 1.0) FROM dp_secret WHERE i < 0 GROUP BY g HAVING encml.dp_partition(1.0, 1e-6)$$) AS spent_empty;
SELECT try($$SELECT g, encml.dp_count(v, 1.0) FROM dp_secret WHERE i > 0 GROUP BY g HAVING encml.dp_partition(1.0, 1e-6)$$) AS spent_non_empty;
RESET ROLE;
SELECT encml.set_privacy_budget('encml_dp_mallory', 100, 1e-5);
SET ROLE encml_dp_mallory;

-- 4. No data-dependent error before the charge: NaN is ignored, infinities are clamped, sums
-- cannot overflow; an error the analyst's own row expression raises comes after the charge.
SELECT encml.dp_sum(x, 0, 10, 1.0) IS NOT NULL AS nan_and_infinity_accepted,
       encml.dp_avg(x, 0, 10, 1.0) BETWEEN 0 AND 10 AS avg_in_bounds
  FROM (VALUES ('NaN'::float8), ('Infinity'), ('-Infinity'), (3)) t(x);
SELECT encml.dp_sum(v, 0, 9223372036854775807, 1.0) IS NOT NULL AS bigint_sum_saturates
  FROM (VALUES (9223372036854775807::bigint), (9223372036854775807)) t(v);
SELECT * FROM dp_ledger_total;
SELECT try($$SELECT encml.dp_count(1 / (v - 3), 1.0) FROM dp_secret$$) AS error_in_own_expression;
SELECT * FROM dp_ledger_total;

-- 5. Parameters are constants of the query, the same for every group (the charge used the
-- first group's).
SELECT try($$SELECT g, encml.dp_count(v, CASE WHEN g = 1 THEN 0.01 ELSE 5 END) FROM dp_secret GROUP BY g HAVING encml.dp_partition(1.0, 1e-6)$$) AS epsilon_per_group;
SELECT try($$SELECT encml.dp_sum(x, 0, (SELECT max(x) FROM dp_secret), 1.0) FROM dp_secret$$) AS bound_from_a_subquery;
SELECT * FROM dp_ledger_total;
-- delta is accounted exactly: a zero delta budget grants no Gaussian release however small
-- its delta, and the refusal says what is short.
RESET ROLE;
SELECT encml.set_privacy_budget('encml_dp_mallory', 1000, 0);
SET ROLE encml_dp_mallory;
SELECT try($$SELECT encml.dp_count(v, 1.0, 1e-300) FROM dp_secret$$) AS tiny_delta_without_a_delta_budget;
SELECT try($$SELECT encml.dp_count(v, 2000) FROM dp_secret$$) AS too_much_epsilon;
RESET ROLE;
-- Public keys listed twice (each of their rows would join twice) or NULL: refused before any
-- charge (as a privacy admin, who alone may use dp_public_groups).
SELECT try($$SELECT w.k, encml.dp_count(d.v, 1.0) FROM unnest('{0,1,1}'::int[]) w(k)
  LEFT JOIN dp_secret d ON d.g = w.k GROUP BY w.k HAVING encml.dp_public_groups(w.k, '{0,1,1}'::int[])$$) AS duplicate_keys;
SELECT try($$SELECT w.k, encml.dp_count(d.v, 1.0) FROM unnest('{0,NULL}'::int[]) w(k)
  LEFT JOIN dp_secret d ON d.g = w.k GROUP BY w.k HAVING encml.dp_public_groups(w.k, '{0,NULL}'::int[])$$) AS null_key;
SELECT count(*) AS groups FROM (SELECT w.k, encml.dp_count(d.v, 1.0) FROM unnest('{0,1,2}'::int[]) w(k)
  LEFT JOIN dp_secret d ON d.g = w.k GROUP BY w.k HAVING encml.dp_public_groups(w.k, '{0,1,2}'::int[])) s;
RESET ROLE;
DROP VIEW dp_ledger_total;

SET client_min_messages = warning;  -- the NOTICE names pg_temp_N, which depends on the backend slot
DROP SCHEMA dp_mallory CASCADE;
RESET client_min_messages;
DROP TABLE dp_secret;
DROP OWNED BY encml_dp_mallory;
DROP ROLE encml_dp_mallory;
