#!/usr/bin/env bash
# Crash during a background re-encryption job (docs/keys.md "Crashes and restarts"): the lifecycle
# worker paused in its fifth batch, the server stopped (immediate). After restart the launcher
# (its rounds off until then, so that the state after the crash can be looked at) resumes the
# job where its last committed batch left it; every value ends on the new version, reads back,
# and none was moved twice (the job counts each value once).
source "$(dirname "$0")/lib.sh"
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
  "slow|failed|canceling statement due to statement timeout;t|done|" \
  "$(q "SELECT string_agg(table_oid::text || '|' || state || '|' || coalesce(error, ''), ';' ORDER BY id)
          FROM encml.reencryption_jobs WHERE table_oid::text IN ('slow', 't') AND column_name = 'v' AND target_version = 3")"
echo "both jobs ended $(( $(date +%s) - started )) s after they were queued (timeout 2 s)"
