#!/usr/bin/env bash
# A re-encryption job on a distributed table survives a worker restart: with worker2 stopped
# mid-job, the batches that reach its shards fail as connection errors and are retried; once it
# is back the job finishes, every value on the new version, each moved once. Runs against
# scripts/citus-cluster.sh's cluster after tests/citus/sql.
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${ENCML_CITUS_PORT:-54430}
DIR=${ENCML_CITUS_DIR:-/tmp/pg_encrypt_ml-citus}
q() { runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"; }
fail() { echo "FAIL: $*"; exit 1; }
start_worker2() { runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -l "$DIR/worker2.log" -w start >/dev/null 2>&1 || true; }
k=$(q "SET client_min_messages = error; SELECT encml.create_key('citus-restart-' || md5(random()::text))")
q "DROP TABLE IF EXISTS restart_vault; CREATE TABLE restart_vault (id bigint, v encml.enc_bytea);
   SELECT create_distributed_table('restart_vault', 'id', shard_count => 4);
   INSERT INTO restart_vault SELECT i, encml.encrypt('value ' || i, '$k') FROM generate_series(1, 20000) i" >/dev/null
q "SELECT encml.rotate_key('$k')" >/dev/null
# Slow batches, so that the worker goes down in the middle of the job.
q "ALTER SYSTEM SET encml.reencrypt_batch_blocks = 2" >/dev/null
q "ALTER SYSTEM SET encml.reencrypt_duty_cycle = 0.05" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
reset_settings() {
  q "ALTER SYSTEM RESET encml.reencrypt_batch_blocks" >/dev/null
  q "ALTER SYSTEM RESET encml.reencrypt_duty_cycle" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
}
trap 'start_worker2; reset_settings 2>/dev/null || true' EXIT
job=$(q "SELECT job FROM encml.reencrypt_table('restart_vault', 'v')")
for _ in $(seq 1 100); do
  [ "$(q "SELECT rows_done > 0 FROM encml.reencryption_jobs WHERE id = $job")" = t ] && break
  sleep 0.1
done
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/worker2" -m fast -w stop >/dev/null
sleep 4
state=$(q "SELECT state FROM encml.reencryption_jobs WHERE id = $job")
[ "$state" = running ] || fail "the job did not wait for the worker: $state ($(q "SELECT error FROM encml.reencryption_jobs WHERE id = $job"))"
echo "ok: with worker2 down the job keeps retrying (state $state)"
start_worker2
reset_settings
for _ in $(seq 1 600); do
  [ "$(q "SELECT state FROM encml.reencryption_jobs WHERE id = $job")" != running ] && break
  sleep 0.1
done
result=$(q "SELECT j.state, j.rows_done, (SELECT count(*) FILTER (WHERE encml.key_version(v) = 2) FROM restart_vault),
                   (SELECT bool_and(encml.decrypt_text(v) = 'value ' || id) FROM restart_vault)
              FROM encml.reencryption_jobs j WHERE j.id = $job")
[ "$result" = "done|20000|20000|t" ] || fail "after the restart: $result"
echo "ok: after worker2 came back the job finished: 20000 values moved once, all read back"
q "DROP TABLE restart_vault" >/dev/null
