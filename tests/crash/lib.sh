# Helpers of the crash tests (docs/operations.md "Crashes"): a throw-away cluster per script, and
# a kill that lands at a named step of the extension's code.
#
# The extension waits at a pause point (src/pg/pause.rs) when the superuser-only setting
# encml.test_pause_at names it: it logs the step and waits for an advisory lock this library
# holds from another session. `kill_at STEP HOW SQL` starts SQL in the background, waits until a
# process waits on that lock at STEP, then kills: HOW = backend (SIGKILL to the paused process;
# the postmaster then resets every backend and recovers from WAL, as after any backend crash) or
# server (pg_ctl stop -m immediate, then start: crash recovery at startup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PGBIN=/usr/lib/postgresql/15/bin
CRASH_WORK=$(mktemp -d /tmp/encml-crash.XXXXXX)
chown postgres:postgres "$CRASH_WORK"; chmod 755 "$CRASH_WORK"
CRASH_DATA=$CRASH_WORK/data
export PGHOST=$CRASH_WORK PGPORT=${CRASH_PORT:-54480} PGUSER=postgres
export PGOPTIONS="-c client_min_messages=error"
DB=encml_crash
PAUSE_LOCK=7370001   # the advisory lock pause points wait for

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
crash_cleanup() {
  [ -n "${HOLDER_PID:-}" ] && kill "$HOLDER_PID" 2>/dev/null || true
  as_postgres "$PGBIN/pg_ctl" -D "$CRASH_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$CRASH_WORK"
}
trap crash_cleanup EXIT

q() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" -c "$*"; }
assert_eq() { # assert_eq WHAT EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then echo "FAIL: $1: expected [$2], got [$3]" >&2; exit 1; fi
  echo "ok: $1"
}
assert_match() { # assert_match WHAT REGEX ACTUAL
  if ! [[ "$3" =~ $2 ]]; then echo "FAIL: $1: [$3] does not match [$2]" >&2; exit 1; fi
  echo "ok: $1"
}

# A new cluster with the library preloaded and a master-key file, and database $DB.
crash_cluster() {
  as_postgres "$PGBIN/initdb" -D "$CRASH_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  python3 -c 'import secrets; print(secrets.token_hex(32))' > "$CRASH_WORK/master.keys"
  chown postgres:postgres "$CRASH_WORK/master.keys"; chmod 600 "$CRASH_WORK/master.keys"
  cat >> "$CRASH_DATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$CRASH_WORK'
shared_preload_libraries = 'pg_encrypt_ml'
encml.master_key_file = '$CRASH_WORK/master.keys'
# Crash recovery replays WAL: fsync stays on so that what committed is on disk.
restart_after_crash = on
CONF
  crash_start
  psql -X -q -d postgres -c "CREATE DATABASE $DB"
  q "CREATE EXTENSION pg_encrypt_ml" >/dev/null
}
crash_start() {
  as_postgres "$PGBIN/pg_ctl" -D "$CRASH_DATA" -l "$CRASH_WORK/server.log" -w start >/dev/null
}
# Waits until the server accepts connections again (after the postmaster's own reset).
wait_up() {
  for _ in $(seq 1 300); do
    psql -X -q -At -d "$DB" -c "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not come back" >&2; return 1
}

# Sets the pause step for every process (background workers included) and waits for a new
# session to see it.
pause_at() {
  psql -X -q -d postgres -c "ALTER SYSTEM SET encml.test_pause_at = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 50); do
    [ "$(psql -X -At -d "$DB" -c "SHOW encml.test_pause_at")" = "$1" ] && return 0
    sleep 0.1
  done
  echo "encml.test_pause_at did not take effect" >&2; return 1
}

# kill_at STEP backend|server SQL: runs SQL (as the superuser) until it pauses at STEP, then kills.
kill_at() {
  local step=$1 how=$2 sql=$3
  pause_at "$step"
  # The holder: a session that takes the lock and keeps it until it is killed.
  psql -X -q -d "$DB" -c "SELECT pg_advisory_lock($PAUSE_LOCK)" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
  HOLDER_PID=$!
  for _ in $(seq 1 100); do
    [ "$(q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $PAUSE_LOCK AND granted")" = 1 ] && break
    sleep 0.1
  done
  psql -X -q -d "$DB" -c "$sql" > "$CRASH_WORK/victim.out" 2>&1 &
  local victim=$! pid=""
  for _ in $(seq 1 300); do
    pid=$(q "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objid = $PAUSE_LOCK AND NOT l.granted LIMIT 1")
    [ -n "$pid" ] && break
    sleep 0.1
  done
  if [ -z "$pid" ]; then
    echo "FAIL: nothing paused at $step; the statement said: $(cat "$CRASH_WORK/victim.out")" >&2; exit 1
  fi
  grep -q "pg_encrypt_ml paused at \"${step%%:*}\"" "$CRASH_WORK/server.log" \
    || { echo "FAIL: the process waiting is not paused at $step" >&2; exit 1; }
  echo "paused at $step (pid $pid); killing the $how"
  if [ "$how" = backend ]; then
    kill -9 "$pid"
    wait "$victim" 2>/dev/null || true
    wait_up
  else
    as_postgres "$PGBIN/pg_ctl" -D "$CRASH_DATA" -m immediate -w stop >/dev/null
    wait "$victim" 2>/dev/null || true
    crash_start
  fi
  kill "$HOLDER_PID" 2>/dev/null || true; wait "$HOLDER_PID" 2>/dev/null || true; HOLDER_PID=""
  psql -X -q -d postgres -c "ALTER SYSTEM RESET encml.test_pause_at" -c "SELECT pg_reload_conf()" >/dev/null
  grep -q "database system was interrupted\|terminated by signal 9\|all server processes terminated" "$CRASH_WORK/server.log" \
    || { echo "FAIL: no crash recovery in the server log" >&2; exit 1; }
}
