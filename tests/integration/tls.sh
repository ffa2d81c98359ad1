#!/usr/bin/env bash
# Encryption in transit (issue 30; docs/zero-trust.md "Encryption in transit"): a throw-away CA
# and server certificate, TLS 1.3 on 127.0.0.1; a service role connects with a client
# certificate and is refused without one; a key holder's login in the clear is a security event
# (and counted), one over TLS or by a role without key privileges is not; compliance_report()
# fails pg_hba.conf lines that admit the network in the clear or a service without
# clientcert=verify-full, and passes once they are gone. Restores the cluster's settings.
source "$(dirname "$0")/lib.sh"
export PGOPTIONS="-c client_min_messages=error"
DB=encml_it_tls
HBA=$DATA/pg_hba.conf
PKI=$(mktemp -d)
PORT_TCP=$PGPORT
restore() {
  as_postgres sed -i '/# encml tls test/d' "$HBA" || true
  psql -X -q -d postgres -c "ALTER SYSTEM RESET ssl" -c "ALTER SYSTEM RESET ssl_cert_file" \
    -c "ALTER SYSTEM RESET ssl_key_file" -c "ALTER SYSTEM RESET ssl_ca_file" \
    -c "ALTER SYSTEM RESET ssl_min_protocol_version" -c "ALTER SYSTEM RESET listen_addresses" >/dev/null || true
  restart_cluster || true
  as_postgres rm -f "$DATA/encml_tls_server.crt" "$DATA/encml_tls_server.key" "$DATA/encml_tls_root.crt"
  rm -rf "$PKI"
}
trap restore EXIT

# --- a throw-away PKI: CA, server (127.0.0.1), client certificate for the service role ---------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=encml test CA" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$PKI/san.ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -extfile "$PKI/san.ext" -out "$PKI/server.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=tls_service" -keyout "$PKI/client.key" -out "$PKI/client.csr" 2>/dev/null
openssl x509 -req -in "$PKI/client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -out "$PKI/client.crt" 2>/dev/null
chmod 600 "$PKI/client.key"
for f in server.crt server.key; do cp "$PKI/$f" "$DATA/encml_tls_$f"; done
cp "$PKI/ca.crt" "$DATA/encml_tls_root.crt"
chown postgres:postgres "$DATA"/encml_tls_*; chmod 600 "$DATA"/encml_tls_*

dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null
q "$DB" "DROP ROLE IF EXISTS tls_service; DROP ROLE IF EXISTS tls_holder; DROP ROLE IF EXISTS tls_plain;
         CREATE ROLE tls_service LOGIN; CREATE ROLE tls_holder LOGIN; CREATE ROLE tls_plain LOGIN;
         SELECT encml.grant_key(encml.create_key('tls-key'), 'tls_holder', 'decrypt')" >/dev/null
# First line wins: the service only with a verified certificate; the key holder both ways; two
# lines a compliance check must flag (the network in the clear; a service without certificate).
as_postgres sed -i \
  -e "1i hostssl all tls_service 127.0.0.1/32 cert clientcert=verify-full # encml tls test" \
  -e "1i host all tls_holder 127.0.0.1/32 trust # encml tls test" \
  -e "1i host all tls_plain 127.0.0.1/32 trust # encml tls test" \
  -e "1i host all all 10.0.0.0/8 scram-sha-256 # encml tls test" \
  -e "1i hostssl all all 192.168.0.0/16 scram-sha-256 # encml tls test" "$HBA"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM SET ssl = on" \
  -c "ALTER SYSTEM SET ssl_cert_file = 'encml_tls_server.crt'" -c "ALTER SYSTEM SET ssl_key_file = 'encml_tls_server.key'" \
  -c "ALTER SYSTEM SET ssl_ca_file = 'encml_tls_root.crt'" -c "ALTER SYSTEM SET ssl_min_protocol_version = 'TLSv1.3'" \
  -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1'" >/dev/null
restart_cluster

tcp() { # tcp ROLE SSLMODE [extra conninfo] -- SQL
  local role=$1 mode=$2 extra=$3; shift 3
  psql -X -q -At "host=127.0.0.1 port=$PORT_TCP dbname=$DB user=$role sslmode=$mode $extra" -c "$*"
}
# --- the service: certificate required --------------------------------------------------------
got=$(tcp tls_service verify-full "sslrootcert=$PKI/ca.crt sslcert=$PKI/client.crt sslkey=$PKI/client.key" \
  "SELECT s.ssl, s.version, s.client_dn FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()")
assert_eq "a service connects over TLS 1.3 with its client certificate" "t|TLSv1.3|/CN=tls_service" "$got"
if out=$(tcp tls_service require "sslcert=/nonexistent sslkey=/nonexistent" "SELECT 1" 2>&1); then
  echo "FAIL: a service without a client certificate was admitted: $out" >&2; exit 1
fi
assert_match "a service without a client certificate is refused" "certificate" "$out"

# --- logins in the clear ----------------------------------------------------------------------
base=$(q "$DB" "SELECT coalesce(max(id), 0) FROM encml.audit_log")
tcp tls_holder disable "" "SELECT 1" >/dev/null
tcp tls_holder require "" "SELECT 1" >/dev/null
tcp tls_plain disable "" "SELECT 1" >/dev/null
events=$(q "$DB" "SELECT string_agg(format('%s %s %s', operation, detail->>'role', detail->>'severity'), ',' ORDER BY id)
                    FROM encml.audit_log WHERE id > $base AND operation = 'login_without_tls'")
assert_eq "a key holder's login in the clear is an event; over TLS, or without key privileges, none" \
  "login_without_tls tls_holder warning" "$events"
addr=$(q "$DB" "SELECT host(client_addr) FROM encml.audit_log WHERE id > $base AND operation = 'login_without_tls'")
assert_eq "the event names the client address" "127.0.0.1" "$addr"
# While a connection in the clear is open, the metric and the report see it.
tcp tls_plain disable "" "SELECT pg_sleep(3)" >/dev/null &
sleeper=$!
for _ in $(seq 1 50); do
  [ "$(q "$DB" "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tls_plain'")" = 1 ] && break; sleep 0.1
done
metric=$(q "$DB" "SELECT encml.metrics(false)" | grep '^encml_connections_without_tls ')
assert_eq "metrics count connections in the clear" "encml_connections_without_tls 1" "$metric"
report=$(q "$DB" "SELECT status || ': ' || detail FROM encml.compliance_report() WHERE check_name = 'tls_connections'")
assert_match "compliance_report lists them" "^warn: 1 connection\(s\) over the network without TLS: tls_plain from 127.0.0.1" "$report"
wait $sleeper
events_total=$(q "$DB" "SELECT encml.metrics(false)" | grep -c '^encml_security_events_total{severity="warning",kind="login_without_tls"} 1$')
assert_eq "the event is counted in encml_security_events_total" "1" "$events_total"
# A session in the clear whose first statements run without a snapshot (SHOW, SET, BEGIN with an
# isolation level, as drivers open transactions): they work (attacker pass of issue 30: XX000),
# and the event is recorded at its first statement that reads, within the same session.
base=$(q "$DB" "SELECT coalesce(max(id), 0) FROM encml.audit_log")
got=$(psql -X -q -At "host=127.0.0.1 port=$PORT_TCP dbname=$DB user=tls_holder sslmode=disable" \
  -c "SHOW work_mem" -c "SET application_name = 'tls_first_show'" \
  -c "BEGIN ISOLATION LEVEL SERIALIZABLE" -c "SELECT count(*) FROM pg_class WHERE false" -c "COMMIT" 2>&1)
assert_eq "SHOW, SET and BEGIN ISOLATION LEVEL first, in the clear, work" "4MB
0" "$got"
assert_eq "the event is recorded at the first statement that reads" "1" \
  "$(q "$DB" "SELECT count(*) FROM encml.audit_log WHERE id > $base AND operation = 'login_without_tls' AND detail->>'role' = 'tls_holder'")"

# --- compliance checks on pg_hba.conf and the protocol floor -----------------------------------
q "$DB" "SELECT encml.mark_tls_service_role('tls_service')" >/dev/null
check() { q "$DB" "SELECT status || ': ' || detail FROM encml.compliance_report() WHERE check_name = '$1'"; }
assert_eq "TLSv1.3 floor passes" "pass: ssl_min_protocol_version = TLSv1.3" "$(check tls_min_protocol)"
assert_match "a host line for 10.0.0.0/8 fails hba_remote_tls" "^fail: .*line [0-9]+: host 10\.0\.0\.0 scram-sha-256" "$(check hba_remote_tls)"
assert_match "a hostssl line without clientcert admitting the service fails tls_service_roles" \
  "^fail: .*tls_service \(line [0-9]+: hostssl 192\.168\.0\.0 scram-sha-256\)" "$(check tls_service_roles)"
as_postgres sed -i -e '/10.0.0.0\/8 .*# encml tls test/d' -e '/192.168.0.0\/16 .*# encml tls test/d' "$HBA"
q postgres "SELECT pg_reload_conf()" >/dev/null; sleep 0.5
assert_match "without them, hba_remote_tls passes" "^pass" "$(check hba_remote_tls)"
assert_eq "and the service is admitted only with a verified certificate" \
  "pass: 1 service role(s) admitted from the network only with a verified client certificate" "$(check tls_service_roles)"
refused=$(psql -X -q -At -d "$DB" -c "CREATE ROLE tls_nobody" -c "SET ROLE tls_nobody" \
  -c "SELECT encml.mark_tls_service_role('tls_plain')" 2>&1 || true)
assert_match "only security administrators mark services" "permission denied" "$refused"

dropdb "$DB"
psql -X -q -d postgres -c "DROP ROLE IF EXISTS tls_service, tls_holder, tls_plain, tls_nobody"
