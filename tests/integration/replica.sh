#!/usr/bin/env bash
# A hot standby (issue 30; docs/operations.md "Streaming replicas"): a throw-away primary and a
# standby made from it with pg_basebackup -R. On the standby: decrypts, det_text and ORE searches
# and audit_verify work; everything that must write is refused with SQLSTATE 25006 and a message
# naming the operation (never an internal error); revoke_key and destroy_key on the primary take
# effect in a standby session that already used the key, as soon as the change is replayed.
source "$(dirname "$0")/lib.sh"
PGBIN=/usr/lib/postgresql/15/bin
export PGOPTIONS="-c client_min_messages=error"
WORK=$(mktemp -d /tmp/encml-replica.XXXXXX)
chown postgres:postgres "$WORK"; chmod 755 "$WORK"
P_PORT=54471 S_PORT=54472
P_DATA=$WORK/primary S_DATA=$WORK/standby
DB=encml_replica
cleanup() {
  as_postgres "$PGBIN/pg_ctl" -D "$S_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  as_postgres "$PGBIN/pg_ctl" -D "$P_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

as_postgres "$PGBIN/initdb" -D "$P_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$P_DATA/postgresql.conf" <<CONF
port = $P_PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
fsync = off
shared_preload_libraries = 'pg_encrypt_ml'
encml.allow_development_master_key = on
CONF
as_postgres "$PGBIN/pg_ctl" -D "$P_DATA" -l "$WORK/primary.log" -w start >/dev/null
p() { psql -X -q -v ON_ERROR_STOP=1 -At -h "$WORK" -p "$P_PORT" -U postgres -d "$DB" -c "$*"; }
s() { psql -X -q -v ON_ERROR_STOP=1 -At -h "$WORK" -p "$S_PORT" -U postgres -d "$DB" -c "$*"; }
s_err() { # s_err SQL: the standby's error as "SQLSTATE: message"
  local out
  if out=$(psql -X -q -v ON_ERROR_STOP=1 -At -h "$WORK" -p "$S_PORT" -U postgres -d "$DB" \
      -c "\\set VERBOSITY verbose" -c "$*" 2>&1); then
    echo "no error: $out"; return 0
  fi
  echo "$out" | grep -m1 '^ERROR' | sed -E 's/^ERROR: +([0-9A-Z]{5}): (.*)$/\1: \2/'
}

psql -X -q -h "$WORK" -p "$P_PORT" -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
p "CREATE EXTENSION pg_encrypt_ml" 2>/dev/null
p "CREATE ROLE rep_reader LOGIN; CREATE ROLE rep_analyst LOGIN"
K_AEAD=$(p "SELECT encml.create_key('rep-aead')")
K_DET=$(p "SELECT encml.create_key('rep-det', 'deterministic')")
K_ORE=$(p "SELECT encml.create_key('rep-ore', 'ore')")
K_SHRED=$(p "SELECT encml.create_key('rep-shred')")
p "SELECT encml.grant_key('$K_AEAD', 'rep_reader', 'decrypt');
   CREATE TABLE people (id int PRIMARY KEY, email encml.det_text, salary encml.ore_int8,
                        note encml.enc_bytea, secret encml.enc_bytea);
   GRANT SELECT ON people TO rep_reader, rep_analyst;
   INSERT INTO people SELECT i, encml.det_encrypt('user' || i || '@example.com', '$K_DET'),
            encml.ore_encrypt(i * 1000, '$K_ORE'), encml.encrypt('note ' || i, '$K_AEAD'),
            encml.encrypt('secret ' || i, '$K_SHRED')
       FROM generate_series(1, 100) i;
   CREATE TABLE stats (v int); INSERT INTO stats SELECT generate_series(1, 50);
   GRANT SELECT ON stats TO rep_analyst;
   SELECT encml.set_privacy_budget('rep_analyst', 5, 0); SELECT encml.create_tenant('rep-tenant');
   SELECT encml.audit_enable('people', '{}'); UPDATE people SET id = id WHERE id <= 3;
   SELECT encml.audit_seal()" >/dev/null
PLAIN_LO=$(p "SELECT lo_from_bytea(0, convert_to(repeat('large object ', 1000), 'UTF8'))")
LO=$(p "SELECT encml.lo_encrypt($PLAIN_LO, '$K_AEAD', 4096)")

as_postgres "$PGBIN/pg_basebackup" -h "$WORK" -p "$P_PORT" -U postgres -D "$S_DATA" -R -X stream -c fast >/dev/null
as_postgres sed -i "s/^port = $P_PORT/port = $S_PORT/" "$S_DATA/postgresql.conf"
as_postgres "$PGBIN/pg_ctl" -D "$S_DATA" -l "$WORK/standby.log" -w start >/dev/null
assert_eq "the standby is in recovery" "t" "$(s "SELECT pg_is_in_recovery()")"

# Waits until the standby has replayed everything the primary wrote so far.
wait_replayed() {
  # (A record written now: the insert position itself may lie past the last record replayed.)
  local lsn; lsn=$(p "SELECT pg_logical_emit_message(false, 'encml-test', 'sync')")
  for _ in $(seq 1 100); do
    [ "$(s "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
    sleep 0.1
  done
  echo "the standby did not replay $lsn" >&2; return 1
}
wait_replayed

# --- reads work -----------------------------------------------------------------------------------
assert_eq "decrypt on the standby" "note 7" \
  "$(s "SET ROLE rep_reader; SELECT encml.decrypt_text(note) FROM people WHERE id = 7")"
assert_eq "det_text equality search on the standby" "42" \
  "$(s "SELECT id FROM people WHERE email = encml.det_encrypt('user42@example.com', '$K_DET')")"
assert_eq "ORE range search on the standby" "5" \
  "$(s "SELECT count(*) FROM people WHERE salary BETWEEN encml.ore_encrypt(10000, '$K_ORE')
                                               AND encml.ore_encrypt(14000, '$K_ORE')")"
assert_eq "audit_verify on the standby" "t" "$(s "SELECT ok FROM encml.audit_verify()")"
assert_eq "audit_verify_full on the standby" "t" "$(s "SELECT ok FROM encml.audit_verify_full()")"
# Every volatile function listed as working on a standby (tests/architecture/standby.txt) does.
assert_match "audit_head on the standby" '^[0-9]+\|[0-9a-f]{64}$' "$(s "SELECT id, mac FROM encml.audit_head()")"
assert_eq "audit_state on the standby" "0" "$(s "SELECT count(*) FROM encml.audit_state()")"
assert_eq "encrypt_jsonb and reencrypt on the standby" "{\"a\": \"x\"}|fresh" \
  "$(s "SELECT encml.decrypt_jsonb(encml.encrypt_jsonb('{\"a\": \"x\"}', '$K_AEAD', '{a}')),
              encml.decrypt_text(encml.reencrypt(encml.encrypt('fresh', '$K_AEAD')))")"
assert_eq "encrypt_tensor on the standby" "{1,2.5}" \
  "$(s "SELECT encml.decrypt_tensor_real(encml.encrypt_tensor('{1,2.5}'::real[], '$K_AEAD'))")"
assert_eq "lo_encryption_info and lo_decrypt_range on the standby" "13000|large" \
  "$(s "SELECT (SELECT plaintext_bytes FROM encml.lo_encryption_info($LO)),
              convert_from(encml.lo_decrypt_range($LO, 0, 5), 'UTF8')")"
assert_eq "set_tenant and reset_tenant on the standby" "rep-tenant|" \
  "$(s "SELECT encml.set_tenant('rep-tenant'); SELECT encml.current_tenant(); SELECT encml.reset_tenant();
        SELECT coalesce(encml.current_tenant(), '')" | paste -sd'|' | sed 's/^|*//; s/||*/|/g')"
assert_eq "auth_failures and unlock on the standby" "0|0" \
  "$(s "SELECT (SELECT count(*) FROM encml.auth_failures()), encml.unlock('nobody')")"
assert_eq "fhe_keyset_loads on the standby" "0" "$(s "SELECT encml.fhe_keyset_loads()")"
assert_match "fhe_round_sum of no round on the standby: a plain error, not an internal one" '^(42501|P0002|22023|42704|55000)' \
  "$(s_err "SELECT encml.fhe_round_sum(12345)")"
# Encryption works (its count waits in the standby's shared memory: docs/keys.md).
assert_eq "encrypt on the standby" "fresh" \
  "$(s "SELECT encml.decrypt_text(encml.encrypt('fresh', '$K_AEAD'))")"
assert_match "metrics on the standby" "encml_keys\{state=\"live\"\} 4" "$(s "SELECT encml.metrics(false)")"
# A refusal on the standby is still a refusal (its event cannot be written there: it goes to the
# standby's server log).
assert_match "a decrypt without the privilege is refused on the standby" "^42501: permission denied" \
  "$(s_err "SET ROLE rep_analyst; SELECT encml.decrypt_text(note) FROM people WHERE id = 1")"

# --- writes are refused with 25006, naming the operation ------------------------------------------
refused() { # refused OPERATION SQL
  local got; got=$(s_err "$2")
  assert_eq "$1 is refused on the standby (25006)" "25006: cannot execute $1 during recovery" "$got"
}
refused "encml.create_key()" "SELECT encml.create_key('rep-new')"
refused "encml.rotate_key()" "SELECT encml.rotate_key('$K_AEAD')"
refused "encml.rotate_master_key()" "SELECT encml.rotate_master_key()"
refused "encml.grant_key()" "SELECT encml.grant_key('$K_AEAD', 'rep_analyst', 'decrypt')"
refused "encml.revoke_key()" "SELECT encml.revoke_key('$K_AEAD', 'rep_reader', 'decrypt')"
refused "encml.destroy_key()" "SELECT encml.destroy_key('$K_AEAD')"
refused "encml.audit_seal()" "SELECT encml.audit_seal()"
refused "encml.audit_enable()" "SELECT encml.audit_enable('stats', '{}')"
refused "encml.set_privacy_budget()" "SELECT encml.set_privacy_budget('rep_analyst', 10, 0)"
refused "encml.create_tenant()" "SELECT encml.create_tenant('rep-t')"
refused "encml.subject_forget()" "SELECT encml.subject_forget('someone')"
refused "encml.lo_encrypt()" "SELECT encml.lo_encrypt(1, '$K_AEAD', 65536)"
refused "encml.lo_decrypt()" "SELECT encml.lo_decrypt($LO)"
refused "encml.classify()" "SELECT encml.classify('stats', 'v', 'pii')"
refused "encml.set_masking_rule()" "SELECT encml.set_masking_rule('stats', 'v', 'partial(1,1)')"
refused "encml.export_key()" "SELECT encml.export_key('$K_AEAD', '\\x00'::bytea)"
refused "encml.tenant_key() for a new tenant key" "SELECT encml.set_tenant('rep-tenant'); SELECT encml.tenant_key()"
refused "encml.subject_key() for a new subject key" "SELECT encml.subject_key('rep-subject')"
# A differentially private aggregate must charge the ledger before it reads: refused.
assert_match "a dp aggregate is refused on the standby (25006)" \
  "^25006: dp aggregates cannot run on a standby" \
  "$(s_err "SET ROLE rep_analyst; SELECT encml.dp_count(v, 0.5) FROM stats")"
assert_eq "the refused dp aggregate charged nothing on the primary" "0" \
  "$(p "SELECT count(*) FROM encml.privacy_charges")"

# --- key changes on the primary reach an open standby session at replay ---------------------------
# One standby session (a coprocess) decrypts, then waits while the primary revokes and destroys.
coproc SESSION { psql -X -q -At -h "$WORK" -p "$S_PORT" -U postgres -d "$DB" 2>&1; }
ask() { # ask SQL: one line back from the standby session
  echo "$1" >&"${SESSION[1]}"; echo "SELECT 'END';" >&"${SESSION[1]}"
  local line out=""
  while IFS= read -r -t 20 line <&"${SESSION[0]}"; do
    [ "$line" = END ] && break
    out="${out:+$out }$line"
  done
  echo "$out"
}
ask "SET ROLE rep_reader;" >/dev/null
assert_eq "an open standby session decrypts (the key is cached)" "note 1" \
  "$(ask "SELECT encml.decrypt_text(note) FROM people WHERE id = 1;")"
p "SELECT encml.revoke_key('$K_AEAD', 'rep_reader', 'decrypt')" >/dev/null
wait_replayed
assert_match "revoke_key on the primary refuses the open standby session once replayed" \
  "permission denied" "$(ask "SELECT encml.decrypt_text(note) FROM people WHERE id = 1;")"
ask "RESET ROLE;" >/dev/null
assert_eq "the standby session decrypts under the key to be shredded" "secret 2" \
  "$(ask "SELECT encml.decrypt_text(secret) FROM people WHERE id = 2;")"
p "SELECT encml.destroy_key('$K_SHRED')" >/dev/null
wait_replayed
assert_match "destroy_key on the primary shreds in the open standby session once replayed" \
  "destroyed" "$(ask "SELECT encml.decrypt_text(secret) FROM people WHERE id = 2;")"
echo "\\q" >&"${SESSION[1]}"
wait "$SESSION_PID" 2>/dev/null || true
grep -q "PANIC\|TRAP" "$WORK/standby.log" && { echo "FAIL: the standby logged a PANIC or TRAP" >&2; exit 1; }
echo "ok: replica"
