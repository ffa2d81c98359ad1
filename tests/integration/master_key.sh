#!/usr/bin/env bash
# Master-key providers and master-key rotation: a file with current and previous keys, rotation
# with the old key removed afterwards (data keys and the audit chain's service keys), an old
# backup's key, bad provider output, a command.
source "$(dirname "$0")/lib.sh"
DB=encml_it_master
KEYDIR=$CLUSTER_DIR/master-keys
KEYFILE=$KEYDIR/master.keys
newkey() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
write_keys() {
  printf '%s\n' "$@" > "$KEYFILE"
  chown postgres:postgres "$KEYFILE" 2>/dev/null || true
  chmod 600 "$KEYFILE"
}
cleanup() {
  set_server_setting encml.allow_development_master_key on || true
  set_server_setting encml.master_key_command "" || true
  set_server_setting encml.master_key_file "" || true
}
trap cleanup EXIT

mkdir -p "$KEYDIR" && chown postgres:postgres "$KEYDIR" 2>/dev/null || true
chmod 700 "$KEYDIR"
K1=$(newkey); K2=$(newkey)
dropdb --if-exists "$DB" && createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml"
# Without a provider, keys are refused unless the development key is allowed (issue 27: a
# configuration that lost its provider wrapped new keys under the development key silently).
set_server_setting encml.allow_development_master_key off
err=$(psql -X -q -d "$DB" -c "SELECT encml.create_key('no-provider')" 2>&1 || true)
assert_match "no provider, development key not allowed: refused" "no master key provider is configured" "$err"
set_server_setting encml.allow_development_master_key on
write_keys "# current master key" "$K1"
set_server_setting encml.master_key_file "$KEYFILE"

# The settings are SIGHUP: no session can point the provider elsewhere, not even by setting the
# name before the library is loaded (the placeholder value is discarded when it loads).
err=$(psql -X -q -d "$DB" -c "LOAD 'pg_encrypt_ml'" -c "SET encml.master_key_file = '/tmp/elsewhere'" 2>&1 || true)
assert_match "master_key_file cannot be SET in a session" "cannot be changed now" "$err"
FP=$(psql -X -q -At -d "$DB" -c "SET encml.master_key_file = '/tmp/elsewhere'" \
  -c "SELECT encml.create_key('spoof-attempt')" \
  -c "SELECT master_key_fingerprint FROM encml.key_versions JOIN encml.keys ON id = key_id WHERE name = 'spoof-attempt'" \
  2>/dev/null | tail -n1)
assert_match "a placeholder SET before loading is ignored" '^[0-9a-f]{16}$' "$FP"

# Audit rows outlive the master key that sealed them. A database created at 0.1.0 seals rows with
# keys derived from the master key (mac_key = its fingerprint); after the update the chain and
# redaction keys are service keys in the catalog, imported from every configured master key.
AUD=encml_it_master_audit
dropdb --if-exists "$AUD" && createdb "$AUD"
q "$AUD" "CREATE EXTENSION pg_encrypt_ml VERSION '0.1.0'"
q "$AUD" "CREATE TABLE p (id int, ssn text)"
q "$AUD" "SELECT encml.audit_enable('p', '{ssn}')" >/dev/null
q "$AUD" "INSERT INTO p SELECT i, 'ssn ' || i FROM generate_series(1, 20) i"
q "$AUD" "SELECT encml.audit_seal()" >/dev/null
assert_match "0.1.0 rows are sealed under the master key's fingerprint" '^[0-9a-f]{16}$' \
  "$(q "$AUD" "SELECT string_agg(DISTINCT mac_key, ',') FROM encml.audit_log")"
TOKEN=$(q "$AUD" "SELECT new_row->>'ssn' FROM encml.audit_log WHERE new_row->>'id' = '1'")
q "$AUD" "ALTER EXTENSION pg_encrypt_ml UPDATE"
q "$AUD" "INSERT INTO p VALUES (21, 'ssn 1')"
q "$AUD" "SELECT encml.audit_seal()" >/dev/null
assert_eq "after the update rows are sealed with a service key" "svc:audit-chain:2" \
  "$(q "$AUD" "SELECT mac_key FROM encml.audit_log WHERE new_row->>'id' = '21'")"
assert_eq "redaction tokens continue across the update" "$TOKEN" \
  "$(q "$AUD" "SELECT new_row->>'ssn' FROM encml.audit_log WHERE new_row->>'id' = '21'")"

A=$(q "$DB" "SELECT encml.create_key('rotating')")
B=$(q "$DB" "SELECT encml.create_key('to-shred')")
q "$DB" "CREATE TABLE t AS SELECT i, encml.encrypt('value ' || i, '$A') AS v FROM generate_series(1, 100) i"
q "$DB" "SELECT encml.rotate_key('$A')" >/dev/null
q "$DB" "INSERT INTO t SELECT i, encml.encrypt('value ' || i, '$A') FROM generate_series(101, 150) i"
q "$DB" "INSERT INTO t VALUES (0, encml.encrypt('shredded', '$B'))"
q "$DB" "SELECT encml.destroy_key('$B')" >/dev/null 2>&1
FP1=$(q "$DB" "SELECT string_agg(DISTINCT master_key_fingerprint, ',') FROM encml.key_versions")
assert_match "one master key fingerprint, 16 hex digits" '^[0-9a-f]{16}$' "$FP1"
assert_eq "destroyed key awaits a master-key rotation" "t" \
  "$(q "$DB" "SELECT awaiting_master_key_rotation FROM encml.keys WHERE id = '$B'")"
assert_eq "the compliance report warns that backups still hold the destroyed key" "warn" \
  "$(q "$DB" "SELECT status FROM encml.compliance_report() WHERE check_name = 'erasure_in_backups'")"

# Rotation: the new key first, the old one still offered; rewraps the live versions (A v1, A v2,
# spoof-attempt v1), not the destroyed ones.
write_keys "$K2" "$K1"
assert_eq "rotate_master_key rewraps every live version" "3" "$(q "$DB" "SELECT encml.rotate_master_key()")"
FP2=$(q "$DB" "SELECT string_agg(DISTINCT master_key_fingerprint, ',') FROM encml.key_versions WHERE status = 'active'")
assert_match "live versions now under the new master key" '^[0-9a-f]{16}$' "$FP2"
[ "$FP1" != "$FP2" ] || { echo "FAIL: fingerprint did not change"; exit 1; }
assert_eq "a second rotation has nothing left to rewrap" "0" "$(q "$DB" "SELECT encml.rotate_master_key()")"
q "$AUD" "SELECT encml.rotate_master_key()" >/dev/null
assert_eq "the service keys are rewrapped under the new master key" "$FP2" \
  "$(q "$AUD" "SELECT string_agg(DISTINCT master_key_fingerprint, ',') FROM encml.service_keys")"
assert_eq "the destroyed key no longer awaits a master-key rotation" "f" \
  "$(q "$DB" "SELECT awaiting_master_key_rotation FROM encml.keys WHERE id = '$B'")"
assert_eq "and the compliance report passes" "pass" \
  "$(q "$DB" "SELECT status FROM encml.compliance_report() WHERE check_name = 'erasure_in_backups'")"

# The old master key leaves the provider: everything still decrypts.
write_keys "$K2"
assert_eq "all values decrypt with the old master key removed" "150" \
  "$(q "$DB" "SELECT count(*) FROM t WHERE i > 0 AND encml.decrypt_text(v) = 'value ' || i")"

assert_eq "with the old master key removed, every audit row (0.1.0 and 0.2.0) still verifies" "t|t" \
  "$(q "$AUD" "SELECT ok::text::char || '|' || (rows_checked = (SELECT count(*) FROM encml.audit_log))::text::char
                 FROM encml.audit_verify()")"
q "$AUD" "INSERT INTO p VALUES (22, 'ssn 1')"
assert_eq "and redaction tokens no longer change with the master key" "$TOKEN" \
  "$(q "$AUD" "SELECT new_row->>'ssn' FROM encml.audit_log WHERE new_row->>'id' = '22'")"
assert_eq "the new rows verify too" "t" "$(q "$AUD" "SELECT ok FROM encml.audit_verify()")"
dropdb "$AUD"

# A provider offering only the old key (an old backup's situation) cannot unwrap: clear error.
write_keys "$K1"
err=$(q_err "$DB" "SELECT count(encml.decrypt(v)) FROM t WHERE i > 0")
assert_match "unknown master key: SQLSTATE F0000 and the fingerprint" "F0000.*master key $FP2" "$err"
[[ "$err" != *"$K1"* && "$err" != *"$K2"* ]] || { echo "FAIL: key material in an error"; exit 1; }

# Bad provider output: named by line number, never echoed.
printf 'not-a-key-%s\n' "$K2" > "$KEYFILE"
err=$(q_err "$DB" "SELECT encml.create_key('bad-provider')")
assert_match "malformed provider output is refused" "F0000.*line 1 is not 64 hexadecimal characters" "$err"
[[ "$err" != *"$K2"* ]] || { echo "FAIL: provider output echoed in an error"; exit 1; }
rm -f "$KEYFILE"
err=$(q_err "$DB" "SELECT encml.create_key('no-provider')")
assert_match "missing key file is a clear error" "F0000.*could not read master key file" "$err"

# A command provider (as a KMS or Vault CLI would be) takes precedence over the file.
write_keys "$K2"
cp "$KEYFILE" "$KEYDIR/kms-output" && chown postgres:postgres "$KEYDIR/kms-output" 2>/dev/null || true
set_server_setting encml.master_key_file "/nonexistent/file"
set_server_setting encml.master_key_command "cat $KEYDIR/kms-output"
assert_eq "values decrypt through the command provider" "150" \
  "$(q "$DB" "SELECT count(*) FROM t WHERE i > 0 AND encml.decrypt_text(v) = 'value ' || i")"
set_server_setting encml.master_key_command "echo $K2; exit 3"
err=$(q_err "$DB" "SELECT encml.create_key('failing-command')")
assert_match "a failing command is a clear error" "F0000.*master_key_command failed.*3" "$err"
[[ "$err" != *"$K2"* ]] || { echo "FAIL: command output echoed in an error"; exit 1; }

dropdb "$DB"
