#!/usr/bin/env bash
# Crash during rotate_master_key: paused after some data keys are rewrapped under the new master
# key, the server stopped (immediate). After restart nothing is left wrapped under the new key
# alone (the rotation is one transaction); rotating again finishes; then the old key is removed
# from the provider and every value still decrypts, the audit chain verifies.
source "$(dirname "$0")/lib.sh"
crash_cluster
for i in 1 2 3 4 5; do q "SELECT encml.create_key('crash-mk-$i')" >/dev/null; done
q "CREATE TABLE t (id int, v encml.enc_bytea);
   INSERT INTO t SELECT i, encml.encrypt('value ' || i, (SELECT id FROM encml.data_keys WHERE name = 'crash-mk-' || (1 + i % 5)))
     FROM generate_series(1, 500) i;
   SELECT encml.audit_enable('t', '{}'); UPDATE t SET id = id WHERE id <= 10; SELECT encml.audit_seal()" >/dev/null
OLD=$(head -1 "$CRASH_WORK/master.keys")
NEW=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
printf '%s\n%s\n' "$NEW" "$OLD" > "$CRASH_WORK/master.keys"
q "SELECT pg_reload_conf()" >/dev/null
kill_at rotate_master_key:3 server "SELECT encml.rotate_master_key()"
assert_eq "after the crash every data key is still under the old master key" "1" \
  "$(q "SELECT count(DISTINCT master_key_fingerprint) FROM encml.data_key_versions WHERE wrapped_key IS NOT NULL")"
assert_eq "every value decrypts" "500" "$(q "SELECT count(encml.decrypt_text(v)) FROM t")"
q "SELECT encml.rotate_master_key()" >/dev/null
printf '%s\n' "$NEW" > "$CRASH_WORK/master.keys"
q "SELECT pg_reload_conf()" >/dev/null
assert_eq "rotated again and the old key removed: every value decrypts" "500" \
  "$(q "SELECT count(encml.decrypt_text(v)) FROM t")"
assert_eq "no key is wrapped under the removed master key" "1" \
  "$(q "SELECT count(DISTINCT master_key_fingerprint) FROM encml.data_key_versions WHERE wrapped_key IS NOT NULL")"
assert_eq "the audit chain verifies" "t" "$(q "SELECT ok FROM encml.audit_verify_full()")"
