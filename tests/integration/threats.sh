#!/usr/bin/env bash
# Threat detection against real connections (issue 10): brute-force lockout of a
# (role, address) pair over TCP with scram-sha-256, unlock, role-change and exfiltration alerts
# received with LISTEN while the decrypting transaction is still open, metrics parsed by
# prometheus_client, and the JSON event lines of the server log. Opens TCP on 127.0.0.1 for the
# test and restores the cluster's settings afterwards.
source "$(dirname "$0")/lib.sh"
DB=encml_it_threats
HBA=$DATA/pg_hba.conf
restore() {
  as_postgres sed -i '/# encml threats test/d' "$HBA" || true
  psql -X -q -d postgres -c "LOAD 'pg_encrypt_ml'" -c "ALTER SYSTEM RESET listen_addresses" \
    -c "ALTER SYSTEM RESET encml.max_auth_failures" -c "ALTER SYSTEM RESET encml.auth_lockout" \
    -c "ALTER SYSTEM RESET encml.log_events_json" >/dev/null || true
  restart_cluster || true
}
trap restore EXIT
python3 -c 'import psycopg, prometheus_client' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]' prometheus_client
# Password logins over TCP; the test's own admin sessions use the Unix socket (trust).
as_postgres sed -i -e "1i local all th_victim scram-sha-256 # encml threats test" \
  -e "1i host all all 127.0.0.1/32 scram-sha-256 # encml threats test" "$HBA"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "LOAD 'pg_encrypt_ml'" \
  -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1'" \
  -c "ALTER SYSTEM SET encml.max_auth_failures = 3" -c "ALTER SYSTEM SET encml.auth_lockout = '10min'" \
  -c "ALTER SYSTEM SET encml.log_events_json = on" >/dev/null
restart_cluster
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml"
LOG_START=$(stat -c %s "$CLUSTER_DIR/server.log")
PGDATABASE=$DB SERVER_LOG="$CLUSTER_DIR/server.log" LOG_START=$LOG_START python3 tests/integration/threats.py
dropdb "$DB"
psql -X -q -d postgres -c "DROP ROLE IF EXISTS th_victim, th_reader"
