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
