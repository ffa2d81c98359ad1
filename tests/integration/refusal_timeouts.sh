#!/usr/bin/env bash
# A refusal event outlives a statement_timeout that fires while the caller waits for the
# worker writing it (docs/audit.md, "Security events"; attacker pass of issue 29 lost 13 of 58).
# Every refusal the server log shows must be in the audit log, however the statement ended.
source "$(dirname "$0")/lib.sh"
DB=encml_it_refusal_timeouts
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml"
q "$DB" "DROP ROLE IF EXISTS rt_outsider; CREATE ROLE rt_outsider; SELECT encml.create_tenant('rt-other')" >/dev/null
LOG_START=$(stat -c %s "$CLUSTER_DIR/server.log")
# 120 refused set_tenant calls, each under a statement_timeout of 1 to 8 ms (a worker starts in
# a few ms here): some end with the refusal, others with the timeout while waiting.
script=$(mktemp)
for i in $(seq 1 120); do
  echo "SET application_name = 'rt_$i'; SET statement_timeout = '$(( i % 8 + 1 ))ms'; SELECT encml.set_tenant('rt-other');"
done > "$script"
echo "RESET statement_timeout;" >> "$script"
chmod 644 "$script"
outcomes=$(psql -X -q -d "$DB" -c "SET ROLE rt_outsider" -f "$script" 2>&1 | grep -c '^psql.*ERROR' || true)
rm -f "$script"
# Workers the timeouts left behind finish on their own: wait until none runs.
for _ in $(seq 1 100); do
  [ "$(q "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_encrypt_ml%'")" = 0 ] && break
  sleep 0.1
done
logged=$(tail -c +"$((LOG_START + 1))" "$CLUSTER_DIR/server.log" \
  | grep -o 'pg_encrypt_ml security event: .*"application_name":"rt_[0-9]*"' \
  | grep -o 'rt_[0-9]*' | sort -u)
recorded=$(q "$DB" "SELECT application_name FROM encml.audit_log WHERE application_name LIKE 'rt\_%' AND operation = 'set_tenant_refused'" | sort -u)
n_logged=$(echo "$logged" | grep -c . || true)
missing=$(comm -23 <(echo "$logged") <(echo "$recorded") | tr '\n' ' ')
echo "statements that failed: $outcomes; refusals in the server log: $n_logged"
assert_match "refusals seen in the server log (at least 20 of 120)" '^([2-9][0-9]|1[0-9][0-9])$' "$n_logged"
assert_eq "every refusal in the server log is in the audit log, also after a statement_timeout" "" "$missing"
dropdb "$DB"
psql -X -q -d postgres -c "DROP ROLE IF EXISTS rt_outsider"
