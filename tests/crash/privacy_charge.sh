#!/usr/bin/env bash
# Crashes around a privacy charge (recorded by a background worker in its own transaction, while
# the analyst's backend waits; docs/privacy.md).
# 1. The charge worker paused after recording the charge, before its commit, and killed (kill -9:
#    the postmaster resets every backend): the analyst's query fails, no noisy value is
#    released, and after recovery nothing was charged.
# 2. The analyst's backend paused after the charge committed, before the aggregate's result is
#    released, and killed: the charge stays (the analyst saw no result, but the query ran far
#    enough to be charged), so the budget spent equals the sum of the committed charges.
# In both cases the budget's spent total equals the sum of its granted charges.
source "$(dirname "$0")/lib.sh"
crash_cluster
q "CREATE ROLE crash_analyst LOGIN; CREATE TABLE stats (v int); INSERT INTO stats SELECT generate_series(1, 1000);
   GRANT SELECT ON stats TO crash_analyst; SELECT encml.set_privacy_budget('crash_analyst', 5, 0)" >/dev/null
ledger() { # spent | sum of granted charges | granted charges
  q "SELECT (SELECT epsilon_spent FROM encml.privacy_budgets WHERE analyst = 'crash_analyst'::regrole),
            (SELECT coalesce(sum(epsilon), 0) FROM encml.privacy_charges WHERE granted AND analyst = 'crash_analyst'::regrole),
            (SELECT count(*) FROM encml.privacy_charges WHERE granted AND analyst = 'crash_analyst'::regrole)"
}
DP="SET ROLE crash_analyst; SELECT encml.dp_count(v, 0.5) FROM stats"

kill_at charge_worker backend "$DP"
assert_match "the analyst's query failed, no result released" "^(psql: |ERROR|FATAL|server closed|WARNING|SSL)" \
  "$(head -1 "$CRASH_WORK/victim.out")"
assert_eq "a charge killed before its commit: nothing charged" "0|0|0" "$(ledger)"

kill_at charge_granted backend "$DP"
if grep -q '^ *[0-9]\+$' "$CRASH_WORK/victim.out"; then
  echo "FAIL: a result was released: $(cat "$CRASH_WORK/victim.out")" >&2; exit 1
fi
assert_eq "the analyst killed after the charge committed: the charge stays" "0.5|0.5|1" "$(ledger)"

got=$(psql -X -q -At -d "$DB" -c "SET ROLE crash_analyst" -c "SELECT encml.dp_count(v, 0.5) FROM stats")
assert_match "after recovery the analyst queries again" '^[0-9]+$' "$got"
assert_eq "spent equals the sum of the committed charges" "1|1|2" "$(ledger)"
