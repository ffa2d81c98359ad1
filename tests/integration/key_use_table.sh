#!/usr/bin/env bash
# Encryption counts under attack (issue 27, attacker round 2): a role fills the shared key-use
# table with thousands of throwaway key versions while another session holds every background
# worker slot, so that nothing can be recorded. Another session's encryptions under a new key
# must still be counted (before, the full table handed them out to be recorded at once, the
# recording failed, and they were lost: 500,001 encryptions showed as 1).
source "$(dirname "$0")/lib.sh"
DB=encml_it_key_use
dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
q "$DB" "SET client_min_messages = error; CREATE EXTENSION pg_encrypt_ml"
q "$DB" "SET client_min_messages = error; CREATE TABLE fill AS SELECT encml.create_key('fill-' || g) AS k FROM generate_series(1, 4200) g"
q "$DB" "CREATE TABLE hog (i int) WITH (parallel_workers = 8); INSERT INTO hog SELECT generate_series(1, 1600); ANALYZE hog"
V=$(q "$DB" "SET client_min_messages = error; SELECT encml.create_key('victim')")

log_start=$(stat -c %s "$CLUSTER_DIR/server.log")
# Every background worker slot (max_worker_processes = 8 here) held for a few seconds.
workers=$(q "$DB" "SHOW max_worker_processes")
psql -X -q -d "$DB" -c "SET max_parallel_workers_per_gather = $workers; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET parallel_leader_participation = off;
  SELECT count(*) FROM hog WHERE pg_sleep(0.06) IS NOT NULL" >/dev/null &
hog=$!
for _ in $(seq 50); do
  [ "$(q "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'")" -ge 6 ] && break
  sleep 0.1
done
# The table filled with one encryption under each throwaway key, then the victim's statements.
q "$DB" "SELECT count(encml.encrypt('x', k)) FROM fill" >/dev/null
# The victim's session: its statements run while no worker is free, so it keeps its counts
# (the table has no room and nothing can be recorded); its first statement after the workers
# are free records them. Nothing another session does can take them away.
victim=$(psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" <<SQL
SELECT count(encml.encrypt('secret', '$V')) FROM generate_series(1, 50000);
SELECT count(encml.encrypt('secret', '$V')) FROM generate_series(1, 5);
SELECT count(*) >= 6 AS workers_held FROM pg_stat_activity WHERE backend_type = 'parallel worker';
DO \$\$BEGIN
  WHILE (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker') > 0 LOOP
    PERFORM pg_sleep(0.2);
  END LOOP;
END\$\$;
SELECT encml.encrypt('x', '$V') IS NOT NULL;
SQL
)
assert_eq "the victim's statements ran while no worker was free" "50000 5 t t" "$(echo $victim)"
wait $hog
assert_eq "every encryption under the victim's key is counted" "50006" \
  "$(q "$DB" "SELECT encryptions FROM encml.key_usage WHERE key_id = '$V'")"
# The filling session kept counts it could not record and exited meanwhile: those are lost,
# and the server log says how many (docs/keys.md).
assert_match "counts that could not be kept are reported in the server log" "[0-9]+ AES-GCM encryptions could not be counted" \
  "$(tail -c +$((log_start + 1)) "$CLUSTER_DIR/server.log" | grep -o '[0-9]* AES-GCM encryptions could not be counted' | tail -1)"
dropdb "$DB"
