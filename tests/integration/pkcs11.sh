#!/usr/bin/env bash
# Master keys in a PKCS#11 token (issue 30; docs/keys.md "Master keys in an HSM"), against
# SoftHSM2 with a token initialised here in a private directory, on a throw-away cluster whose
# server has SOFTHSM2_CONF in its environment:
# 1. moving from a master-key file to the token: the file's key follows as a previous key,
#    rotate_master_key() rewraps everything under the token's key (wrap format 2);
# 2. a cold backend unwraps through the token; audit rows seal and verify;
# 3. rotation across token keys: new label first, rotate, old key deleted from the token: every
#    value still decrypts, the audit chain verifies, and a dump taken before the rotation no
#    longer decrypts (its wrapped keys need the deleted key);
# 4. a wrong PIN, a PIN file others can read, a missing token or key label: clear errors, no
#    fallback to the file configured beside the token, nothing half-written;
# 5. measured: a cold backend's first decrypt with the token against the file provider.
source "$(dirname "$0")/lib.sh"
export PGOPTIONS="-c client_min_messages=error"
PGBIN=/usr/lib/postgresql/15/bin
MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
WORK=$(mktemp -d /tmp/encml-pkcs11.XXXXXX)
chown postgres:postgres "$WORK"; chmod 700 "$WORK"
PORT=54474 DATA=$WORK/data DB=encml_pkcs11
cleanup() {
  as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the token ----------------------------------------------------------------------------------
bash scripts/softhsm-token.sh init "$WORK" encml-test 4321
export SOFTHSM2_CONF=$WORK/softhsm2.conf
hsm() { as_postgres env SOFTHSM2_CONF="$SOFTHSM2_CONF" "$@"; }
keygen() { bash scripts/softhsm-token.sh keygen encml-test 4321 "$1"; }
keygen mk1
printf '0000\n' > "$WORK/wrong-pin"; chown postgres:postgres "$WORK/wrong-pin"; chmod 600 "$WORK/wrong-pin"
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$WORK/master.keys"
chown postgres:postgres "$WORK/master.keys"; chmod 600 "$WORK/master.keys"

# --- a cluster starting on a master-key file --------------------------------------------------------
as_postgres "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
fsync = off
shared_preload_libraries = 'pg_encrypt_ml'
encml.master_key_file = '$WORK/master.keys'
CONF
as_postgres env SOFTHSM2_CONF="$SOFTHSM2_CONF" "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w start >/dev/null
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres
psql -X -q -d postgres -c "CREATE DATABASE $DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null
K=$(q "$DB" "SELECT encml.create_key('hsm-aead')")
q "$DB" "CREATE TABLE t (id int, v encml.enc_bytea);
         INSERT INTO t SELECT i, encml.encrypt('value ' || i, '$K') FROM generate_series(1, 50) i;
         SELECT encml.audit_enable('t', '{}'); UPDATE t SET id = id WHERE id <= 5; SELECT encml.audit_seal()" >/dev/null
FILE_FP=$(q "$DB" "SELECT DISTINCT master_key_fingerprint FROM encml.data_key_versions")

# A conf line and a reload; waits until new sessions see it.
conf() { # conf NAME VALUE (empty VALUE removes the line)
  as_postgres sed -i "/^$1 = /d" "$DATA/postgresql.conf"
  [ -z "$2" ] || echo "$1 = '$2'" | as_postgres tee -a "$DATA/postgresql.conf" >/dev/null
  psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.3
}
conf encml.master_key_pkcs11_module "$MODULE"
conf encml.master_key_pkcs11_token encml-test
conf encml.master_key_pkcs11_keys mk1
conf encml.master_key_pkcs11_pin_file "$WORK/pin"

# --- 1. moving to the token ----------------------------------------------------------------------------
assert_eq "the file's key still unwraps beside the token (a previous key)" "value 7" \
  "$(q "$DB" "SELECT encml.decrypt_text(v) FROM t WHERE id = 7")"
n=$(q "$DB" "SELECT encml.rotate_master_key()")
assert_match "rotate_master_key() rewraps the data and service keys under the token's key" '^[0-9]+$' "$n"
TOKEN_FP=$(q "$DB" "SELECT DISTINCT master_key_fingerprint FROM encml.data_key_versions")
assert_match "every data key is under one new master key" '^[0-9a-f]{16}$' "$TOKEN_FP"
[ "$TOKEN_FP" != "$FILE_FP" ] || { echo "FAIL: the fingerprint did not change" >&2; exit 1; }
assert_eq "wrapped in the token's format (2)" "2" \
  "$(q "$DB" "SELECT DISTINCT get_byte(wrapped_key, 0) FROM encml.data_key_versions WHERE wrapped_key IS NOT NULL")"
assert_eq "service keys too" "2" \
  "$(q "$DB" "SELECT DISTINCT get_byte(wrapped_key, 0) FROM encml.service_keys")"
conf encml.master_key_file ""
# --- 2. cold backends unwrap through the token ---------------------------------------------------------
assert_eq "a new session decrypts through the token alone" "value 7|50" \
  "$(q "$DB" "SELECT (SELECT encml.decrypt_text(v) FROM t WHERE id = 7), (SELECT count(encml.decrypt_text(v)) FROM t)")"
K2=$(q "$DB" "SELECT encml.create_key('hsm-new')")
assert_eq "a key created under the token" "$TOKEN_FP|2|fresh" \
  "$(q "$DB" "SELECT master_key_fingerprint, get_byte(wrapped_key, 0), encml.decrypt_text(encml.encrypt('fresh', '$K2'))
                FROM encml.data_key_versions WHERE key_id = '$K2'")"
q "$DB" "UPDATE t SET id = id WHERE id <= 5; SELECT encml.audit_seal()" >/dev/null
assert_eq "the audit chain seals and verifies under the token" "t" "$(q "$DB" "SELECT ok FROM encml.audit_verify_full()")"

# --- 3. rotation across token keys -----------------------------------------------------------------------
as_postgres "$PGBIN/pg_dump" -h "$WORK" -p "$PORT" -U postgres -Fc -f "$WORK/before.dump" "$DB"
keygen mk2
conf encml.master_key_pkcs11_keys "mk2, mk1"
q "$DB" "SELECT encml.rotate_master_key()" >/dev/null
MK2_FP=$(q "$DB" "SELECT string_agg(DISTINCT master_key_fingerprint, ',') FROM encml.data_key_versions WHERE wrapped_key IS NOT NULL")
assert_match "after rotation every key is under mk2" '^[0-9a-f]{16}$' "$MK2_FP"
[ "$MK2_FP" != "$TOKEN_FP" ] || { echo "FAIL: rotation kept mk1" >&2; exit 1; }
hsm pkcs11-tool --module "$MODULE" --token-label encml-test --login --pin 4321 \
  --delete-object --type secrkey --label mk1 >/dev/null 2>&1
conf encml.master_key_pkcs11_keys mk2
assert_eq "with mk1 deleted from the token, every value decrypts" "50" \
  "$(q "$DB" "SELECT count(encml.decrypt_text(v)) FROM t")"
assert_eq "and the audit chain verifies (service keys rewrapped, rows unchanged)" "t" \
  "$(q "$DB" "SELECT ok FROM encml.audit_verify_full()")"
psql -X -q -d postgres -c "CREATE DATABASE encml_pkcs11_old" >/dev/null
as_postgres "$PGBIN/pg_restore" -h "$WORK" -p "$PORT" -U postgres -d encml_pkcs11_old "$WORK/before.dump" >/dev/null 2>&1 || true
err=$(q_err encml_pkcs11_old "SELECT encml.decrypt_text(v) FROM t WHERE id = 7" || true)
assert_match "a backup taken before the rotation no longer decrypts (crypto-shredded with mk1)" \
  "F0000: .*master key $TOKEN_FP.*(does not offer|not offered|no longer)" "$err"

# --- 4. failures: clear errors, no fallback, nothing half-written --------------------------------------
conf encml.master_key_file "$WORK/master.keys"   # a file beside the token: never a fallback
keys_before=$(q "$DB" "SELECT count(*) FROM encml.data_keys")
conf encml.master_key_pkcs11_pin_file "$WORK/wrong-pin"
assert_match "a wrong PIN: a clear error" 'F0000: PKCS#11 token "encml-test": logging in: the PIN is wrong' \
  "$(q_err "$DB" "SELECT encml.create_key('hsm-wrong-pin')")"
assert_match "a wrong PIN: no decryption through the file beside the token" 'F0000: PKCS#11 token' \
  "$(q_err "$DB" "SELECT encml.decrypt_text(v) FROM t WHERE id = 7")"
chmod 644 "$WORK/pin"; conf encml.master_key_pkcs11_pin_file "$WORK/pin"
assert_match "a PIN file others can read is refused" 'F0000: encml.master_key_pkcs11_pin_file .*readable by it alone' \
  "$(q_err "$DB" "SELECT encml.create_key('hsm-open-pin')")"
chmod 600 "$WORK/pin"
conf encml.master_key_pkcs11_token no-such-token
assert_match "a missing token: a clear error" 'F0000: PKCS#11 token "no-such-token": no token with that label' \
  "$(q_err "$DB" "SELECT encml.create_key('hsm-no-token')")"
conf encml.master_key_pkcs11_token encml-test
conf encml.master_key_pkcs11_keys "mk-missing, mk2"
assert_match "a missing key label: a clear error" 'F0000: PKCS#11 token "encml-test": no AES key labelled "mk-missing"' \
  "$(q_err "$DB" "SELECT encml.create_key('hsm-no-key')")"
assert_eq "nothing was half-written" "$keys_before" "$(q "$DB" "SELECT count(*) FROM encml.data_keys")"
conf encml.master_key_pkcs11_keys mk2
conf encml.master_key_file ""
assert_eq "back to a good configuration: works again" "value 7" \
  "$(q "$DB" "SELECT encml.decrypt_text(v) FROM t WHERE id = 7")"

# --- 5. measured: a cold backend's first decrypt, token against file ------------------------------------
first_decrypt_ms() { # first_decrypt_ms TABLE: the median of 15 new sessions' first decrypt, in ms
  for _ in $(seq 1 15); do
    psql -X -q -At -d "$DB" -c "\\timing on" -c "SELECT encml.decrypt_text(v) FROM $1 WHERE id = 7" \
      | sed -n 's/^Time: \([0-9.]*\) ms$/\1/p'
  done | sort -n | sed -n 8p
}
token_ms=$(first_decrypt_ms t)
conf encml.master_key_pkcs11_module ""
conf encml.master_key_file "$WORK/master.keys"
q "$DB" "SELECT 1" >/dev/null
# (The data is wrapped under the token now: measure on a key made under the file, in a table
# without auditing, whose service keys are under the token too.)
K3=$(q "$DB" "SELECT encml.create_key('file-measure')")
q "$DB" "CREATE TABLE m AS SELECT i AS id, encml.encrypt('value ' || i, '$K3') AS v FROM generate_series(1, 50) i" >/dev/null
file_ms=$(first_decrypt_ms m)
echo "measured: a new session's first decrypt (median of 15): PKCS#11 token ${token_ms} ms, file ${file_ms} ms"
assert_match "measurements were taken" '^[0-9.]+ [0-9.]+$' "$token_ms $file_ms"
