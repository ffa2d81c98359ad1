-- Budget accounting (docs/privacy.md "The budget"): pure, approx (basic composition) and zcdp
-- (rho adds up; its total converts to the budget's (epsilon, delta / 2) by OpenDP's conversion,
-- and noisy thresholds spend the other half of delta).
CREATE ROLE encml_acct_analyst NOLOGIN;
CREATE TABLE acct AS SELECT i, (i % 100)::float8 AS x, i % 4 AS g FROM generate_series(1, 20000) i;
GRANT SELECT ON acct TO encml_acct_analyst;

-- Validated before anything is written.
SELECT try($$SELECT encml.set_privacy_budget('encml_acct_analyst', 1, 0, 'z', 'zcdp')$$) AS zcdp_without_delta;
SELECT try($$SELECT encml.set_privacy_budget('encml_acct_analyst', 1, 1e-6, 'p', 'pure')$$) AS pure_with_delta;
SELECT try($$SELECT encml.set_privacy_budget('encml_acct_analyst', 1, 1e-6, 'x', 'renyi')$$) AS unknown_accounting;
SELECT encml.set_privacy_budget('encml_acct_analyst', 1, 1e-6, 'z', 'zcdp'),
       encml.set_privacy_budget('encml_acct_analyst', 1, 0, 'p', 'pure'),
       encml.set_privacy_budget('encml_acct_analyst', 1, 1e-6, 'a');
-- The rho budget is the largest rho that converts to epsilon 1 at delta 5e-7.
SELECT scope, accounting, round(rho_total::numeric, 8) AS rho_total,
       round(encml.zcdp_epsilon(rho_total, delta_total / 2)::numeric, 6) AS converts_to
  FROM encml.privacy_budget WHERE analyst = 'encml_acct_analyst'::regrole ORDER BY scope;

SELECT encml.set_privacy_budget('encml_acct_analyst', 1, 1e-6, 'z2', 'zcdp');
SET ROLE encml_acct_analyst;
-- zcdp: four Gaussian releases of (0.3, 1e-7) each. Basic composition would spend epsilon 1.2 and
-- refuse the fourth; their rho adds up to what converts to about 0.57.
SET encml.privacy_scope = 'z2';
SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) IS NOT NULL AS first FROM acct;
SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) IS NOT NULL AS second FROM acct;
SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) IS NOT NULL AS third FROM acct;
SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) IS NOT NULL AS fourth FROM acct;
SELECT count(*) AS charges, count(DISTINCT round(rho::numeric, 12)) AS one_rho_each,
       round(sum(epsilon)::numeric, 6) AS basic_epsilon
  FROM encml.privacy_ledger WHERE scope = 'z2' AND granted;
-- The ledger's arithmetic: rho_spent is the sum of the charges' rho, and epsilon_spent what it
-- converts to at delta / 2 (OpenDP's conversion), under the classic bound rho + 2 sqrt(rho ln(2/delta)).
SELECT round(b.rho_spent::numeric, 10) = round(l.rho::numeric, 10) AS rho_adds_up,
       round(b.epsilon_spent::numeric, 9) = round(encml.zcdp_epsilon(b.rho_spent, b.delta_total / 2)::numeric, 9) AS epsilon_converts,
       b.epsilon_spent < 0.6 AS tighter_than_basic,
       b.epsilon_spent <= b.rho_spent + 2 * sqrt(b.rho_spent * ln(2 / b.delta_total)) AS within_the_classic_bound,
       round(encml.privacy_budget_remaining(scope => 'z2')::numeric, 9) = round((1 - b.epsilon_spent)::numeric, 9) AS remaining_consistent
  FROM encml.privacy_budget b, (SELECT sum(rho) AS rho FROM encml.privacy_ledger WHERE scope = 'z2' AND granted) l
 WHERE b.scope = 'z2';
-- A pure (Laplace) release costs epsilon^2 / 2 of rho: more than the rest of this budget.
SELECT try($$SELECT encml.dp_count(x, 0.25) FROM acct$$) AS laplace_under_zcdp;
-- A noisy threshold spends its delta from the half of delta not converted to rho.
SELECT try($$SELECT g, encml.dp_sum(x, 0, 100, 0.1, 1e-8) FROM acct GROUP BY g HAVING encml.dp_partition(0.1, 6e-7)$$) AS threshold_over_half_delta;
SELECT count(*) AS groups FROM (SELECT g, encml.dp_sum(x, 0, 100, 0.1, 1e-8) FROM acct GROUP BY g
                                HAVING encml.dp_partition(0.1, 1e-7)) s;
SELECT round(delta_spent::numeric, 12) AS threshold_delta_spent FROM encml.privacy_budget WHERE scope = 'z2';

-- pure: no delta at all, not even a threshold's.
SET encml.privacy_scope = 'p';
SELECT try($$SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) FROM acct$$) AS gaussian_under_pure;
SELECT encml.dp_sum(x, 0, 100, 0.3) IS NOT NULL AS laplace_under_pure FROM acct;
-- approx: as before, epsilon and delta add up.
SET encml.privacy_scope = 'a';
SELECT encml.dp_sum(x, 0, 100, 0.3, 1e-7) IS NOT NULL AS gaussian_under_approx FROM acct;
SELECT round(epsilon_spent::numeric, 6), round(delta_spent::numeric, 12), rho_spent
  FROM encml.privacy_budget WHERE scope = 'a';
RESET encml.privacy_scope;
RESET ROLE;
SELECT scope, round(epsilon::numeric, 6) AS epsilon, delta, rho IS NOT NULL AS has_rho, granted
  FROM encml.privacy_ledger WHERE analyst = 'encml_acct_analyst'::regrole AND scope <> 'z' ORDER BY id;

-- A budget that spent keeps its accounting.
SELECT try($$SELECT encml.set_privacy_budget('encml_acct_analyst', 2, 1e-6, 'z2', 'approx')$$) AS switch_after_spending;
SELECT encml.set_privacy_budget('encml_acct_analyst', 2, 1e-6, 'z2', 'zcdp');
SELECT round(encml.zcdp_epsilon(rho_total, delta_total / 2)::numeric, 6) AS raised_to FROM encml.privacy_budget WHERE scope = 'z2';
SELECT try($$SELECT encml.zcdp_epsilon(-1, 1e-6)$$) AS negative_rho;

DROP TABLE acct;
DROP OWNED BY encml_acct_analyst;
DROP ROLE encml_acct_analyst;
