#!/usr/bin/env bash
# Refusal events are kept however the refusing statement ends (docs/audit.md, "Security
# events"): every refusal the server log shows must reach the audit log.
# 1. A statement_timeout fires while the caller waits for the worker writing the event
#    (attacker pass of issue 29 lost 13 of 58).
# 2. Refusals in parallel workers that find every worker slot taken by their own query (the
#    attacker's re-check lost them: a worker has no next statement to write them in).
source "$(dirname "$0")/lib.sh"
export PGOPTIONS="-c client_min_messages=error"
DB=encml_it_refusals_kept
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

# --- 2. parallel workers, every slot taken ------------------------------------------------------
q "$DB" "GRANT CREATE ON SCHEMA public TO rt_outsider;
         CREATE TABLE rt_secret AS SELECT g, encml.encrypt('x'::text, k) AS s
           FROM (SELECT encml.create_key('rt-secret') AS k) key, generate_series(1, 20000) g;
         ANALYZE rt_secret; GRANT SELECT ON rt_secret TO rt_outsider" >/dev/null
LOG_START=$(stat -c %s "$CLUSTER_DIR/server.log")
slots=$(q "$DB" "SHOW max_worker_processes")
# Whether the workers' refusals find every slot taken is a race (the first failing worker may end
# the query before the others refuse): the query runs again, at most five times, until it did.
for _attempt in $(seq 1 5); do
  psql -X -q -d "$DB" -c "SET ROLE rt_outsider" -c "SET application_name = 'rt_parallel'" \
    -c "SET force_parallel_mode = on" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
    -c "SET min_parallel_table_scan_size = 0" -c "SET max_parallel_workers_per_gather = $slots" \
    -c "SET parallel_leader_participation = off" \
    -c "SELECT count(encml.decrypt_text(s)) FROM rt_secret" >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    [ "$(q "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_encrypt_ml%' OR backend_type = 'parallel worker'")" = 0 ] && break
    sleep 0.1
  done
  parked=$(tail -c +"$((LOG_START + 1))" "$CLUSTER_DIR/server.log" | grep -c 'no background worker slot free' || true)
  [ "$parked" -gt 0 ] && break
done
in_log=$(tail -c +"$((LOG_START + 1))" "$CLUSTER_DIR/server.log" \
  | grep -c 'pg_encrypt_ml security event: .*"application_name":"rt_parallel".*key_privilege_refused' || true)
echo "parallel refusals in the server log: $in_log, without a free slot: $parked"
q "$DB" "SELECT encml.forward_security_events()" >/dev/null
for _ in $(seq 1 50); do
  [ "$(q "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_encrypt_ml%'")" = 0 ] && break; sleep 0.1
done
in_audit=$(q "$DB" "SELECT count(*) FROM encml.audit_log WHERE application_name = 'rt_parallel' AND operation = 'key_privilege_refused'")
assert_match "parallel workers refused, some with no slot free (the case is exercised)" '^[1-9][0-9]*$' "$parked"
assert_eq "every refusal of a parallel worker reaches the audit log, slots or not" "$in_log" "$in_audit"

dropdb "$DB"
psql -X -q -d postgres -c "DROP ROLE IF EXISTS rt_outsider"
