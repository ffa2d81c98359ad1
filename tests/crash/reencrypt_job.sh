#!/usr/bin/env bash
# Crash during a background re-encryption job (docs/keys.md "Crashes and restarts"): the lifecycle
# worker paused in its fifth batch, the server stopped (immediate). After restart the launcher
# (its rounds off until then, so that the state after the crash can be looked at) resumes the
# job where its last committed batch left it; every value ends on the new version, reads back,
# and none was moved twice (the job counts each value once).
source "$(dirname "$0")/lib.sh"
# Waits up to $2 tenths of a second for the job on table $1 to be done.
wait_job() {
  for _ in $(seq 1 "$2"); do
    [ "$(q "SELECT state FROM encml.reencryption_jobs WHERE table_oid = '$1'::regclass")" = done ] && return
    sleep 0.1
  done
}
crash_cluster
cat >> "$CRASH_DATA/postgresql.conf" <<CONF
encml.key_lifecycle_naptime = 0
encml.reencrypt_batch_blocks = 4
encml.reencrypt_duty_cycle = 1
CONF
q "SELECT pg_reload_conf()" >/dev/null
k=$(q "SELECT encml.create_key('crash-job')")
q "CREATE TABLE t (id int PRIMARY KEY, v encml.enc_bytea, w encml.enc_bytea);
   INSERT INTO t SELECT i, encml.encrypt('v' || i, '$k'), encml.encrypt('w' || i, '$k', 't.w:' || i)
     FROM generate_series(1, 3000) i" >/dev/null
q "SELECT encml.rotate_key('$k')" >/dev/null
blocks=$(q "SELECT pg_relation_size('t') / 8192")
kill_at reencrypt_batch:5 server \
  "SELECT count(*) FROM encml.reencrypt_table('t', 'w', aad => 't.w:{id}')"
state=$(q "SELECT state || ' ' || next_block || ' ' || rows_done FROM encml.reencryption_jobs")
assert_match "after the crash the job is still running at its last committed batch" "^running 16 [0-9]+$" "$state"
done_before=$(q "SELECT rows_done FROM encml.reencryption_jobs")
moved_before=$(q "SELECT count(*) FROM t WHERE encml.key_version(w) = 2")
assert_eq "the values the job counted are the ones moved before the crash" "$done_before" "$moved_before"
psql -X -q -d postgres -c "ALTER SYSTEM SET encml.key_lifecycle_naptime = 1" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 300); do
  [ "$(q "SELECT state FROM encml.reencryption_jobs")" = done ] && break
  sleep 0.1
done
assert_eq "the launcher resumed the job and it finished" "done" "$(q "SELECT state FROM encml.reencryption_jobs")"
assert_eq "every value moved exactly once, all on version 2, all read back" "3000|3000|3000|t" \
  "$(q "SELECT (SELECT rows_done FROM encml.reencryption_jobs), count(*), count(*) FILTER (WHERE encml.key_version(w) = 2),
               bool_and(encml.decrypt_text(w, 't.w:' || id) = 'w' || id) FROM t")"
assert_eq "the other column was not touched" "1|3000" \
  "$(q "SELECT encml.key_version(v), count(*) FROM t GROUP BY 1")"
echo "table of $blocks blocks, 4 per batch"

# Attacker re-check of issue 31: a table owner's trigger that sleeps past
# encml.reencrypt_batch_timeout fails its own job, and another job goes on; a session holding the
# advisory lock the worker once used does not keep the worker out.
psql -X -q -d postgres -c "ALTER SYSTEM SET encml.reencrypt_batch_timeout = 2" -c "SELECT pg_reload_conf()" >/dev/null
q "CREATE TABLE slow (id int, v encml.enc_bytea);
   INSERT INTO slow SELECT i, encml.encrypt('s' || i, '$k') FROM generate_series(1, 10) i;
   CREATE FUNCTION sleepy() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(600); RETURN NULL; END \$\$;
   CREATE TRIGGER sleepy BEFORE UPDATE ON slow FOR EACH STATEMENT EXECUTE FUNCTION sleepy()" >/dev/null
q "SELECT encml.rotate_key('$k')" >/dev/null
psql -X -q -d "$DB" -c "SELECT pg_advisory_lock(1701733229, 31)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
squatter=$!
sleep 0.5
q "SELECT count(*) FROM encml.reencrypt_table('slow', 'v')" >/dev/null
q "SELECT count(*) FROM encml.reencrypt_table('t', 'v')" >/dev/null
started=$(date +%s)
for _ in $(seq 1 300); do
  [ "$(q "SELECT count(*) FROM encml.reencryption_jobs WHERE state IN ('queued', 'running')")" = 0 ] && break
  sleep 0.1
done
kill "$squatter" 2>/dev/null || true
assert_eq "the sleeping owner's job failed on the batch timeout, the other finished" \
  "slow|failed|canceling statement due to statement timeout (SQLSTATE 57014);t|done|" \
  "$(q "SELECT string_agg(table_oid::text || '|' || state || '|' || coalesce(error, ''), ';' ORDER BY id)
          FROM encml.reencryption_jobs WHERE table_oid::text IN ('slow', 't') AND column_name = 'v' AND target_version = 3")"
echo "both jobs ended $(( $(date +%s) - started )) s after they were queued (timeout 2 s)"

# Attacker re-check 2 of issue 31 (helper-58): a role that keeps one of its tables locked in an
# idle transaction stalls neither the worker nor a key administrator's commands. reencrypt_key
# queues a job for the locked table without reading it, that job waits at the end of the line
# while the others run, retire_key_version refuses (the table could hold the version), and once
# the lock is gone the job finishes.
k2=$(q "SELECT encml.create_key('crash-locked')")
q "CREATE TABLE locked (id int, v encml.enc_bytea);
   INSERT INTO locked SELECT i, encml.encrypt('l' || i, '$k2') FROM generate_series(1, 10) i;
   CREATE TABLE free (id int, v encml.enc_bytea);
   INSERT INTO free SELECT i, encml.encrypt('f' || i, '$k2') FROM generate_series(1, 10) i" >/dev/null
q "SELECT encml.rotate_key('$k2')" >/dev/null
PGAPPNAME=locker psql -X -q -d "$DB" -c "BEGIN" -c "LOCK TABLE locked IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(40)" >/dev/null 2>&1 &
locker=$!
sleep 0.5
started=$(date +%s)
jobs=$(PGOPTIONS="-c statement_timeout=10s" q "SELECT string_agg(table_name::text, ',' ORDER BY table_name::text) FROM encml.reencrypt_key('$k2')")
assert_eq "reencrypt_key returns at once while a table is locked, with a job for it too" "free,locked" "$jobs"
retire=$(PGOPTIONS="-c statement_timeout=10s" psql -X -q -At -d "$DB" -c "SELECT encml.retire_key_version('$k2', 1)" 2>&1 || true)
assert_match "retire_key_version refuses while a table that could hold the version is locked" \
  "may still be in use: a table that could hold its values is locked" "$retire"
wait_job free 250
assert_match "the job on the other table finished while the lock was held" "^done\\|(queued|running)$" \
  "$(q "SELECT (SELECT state FROM encml.reencryption_jobs WHERE table_oid = 'free'::regclass) || '|' ||
               (SELECT state FROM encml.reencryption_jobs WHERE table_oid = 'locked'::regclass)")"
echo "the other job finished $(( $(date +%s) - started )) s after reencrypt_key, the lock still held"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
wait "$locker" 2>/dev/null || true
wait_job locked 300
assert_eq "once the lock is gone the locked table's job finishes" "done|2|10" \
  "$(q "SELECT (SELECT state FROM encml.reencryption_jobs WHERE table_oid = 'locked'::regclass) || '|' ||
               encml.key_version(v) || '|' || count(*) FROM locked GROUP BY encml.key_version(v)")"

# Any key's administrator can report it compromised, and compromise jobs go first: every other
# batch goes to the job that waited longest whatever its priority, so a slow compromise job
# (its owner's trigger sleeps in each batch) does not keep another job waiting to its end.
k3=$(q "SELECT encml.create_key('crash-priority')")
k4=$(q "SELECT encml.create_key('crash-plain')")
q "CREATE TABLE slowprio (id int, v encml.enc_bytea, pad text);
   INSERT INTO slowprio SELECT i, encml.encrypt('p' || i, '$k3'), repeat('x', 500) FROM generate_series(1, 600) i;
   CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END \$\$;
   CREATE TRIGGER nap BEFORE UPDATE ON slowprio FOR EACH STATEMENT EXECUTE FUNCTION nap();
   CREATE TABLE quick (id int, v encml.enc_bytea);
   INSERT INTO quick SELECT i, encml.encrypt('q' || i, '$k4') FROM generate_series(1, 10) i" >/dev/null
q "SELECT encml.rotate_key('$k4')" >/dev/null
q "BEGIN; SELECT encml.compromise_key('$k3', 'test'); SELECT count(*) FROM encml.reencrypt_table('quick', 'v'); COMMIT" >/dev/null
wait_job quick 200
assert_eq "the plain job finished while the compromise job was still running" "done|running" \
  "$(q "SELECT (SELECT state FROM encml.reencryption_jobs WHERE table_oid = 'quick'::regclass) || '|' ||
               (SELECT state FROM encml.reencryption_jobs WHERE table_oid = 'slowprio'::regclass)")"
q "SELECT encml.cancel_reencryption(id) FROM encml.reencryption_jobs WHERE table_oid = 'slowprio'::regclass" >/dev/null
