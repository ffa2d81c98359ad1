# Helpers for the integration scripts: a psql that stops on errors, and assertions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(bash scripts/cluster.sh env)"
CLUSTER_DIR=${ENCML_CLUSTER_DIR:-/tmp/pg_encrypt_ml-cluster}
DATA=$CLUSTER_DIR/data

q() { # q DB SQL: one value, unaligned
  local db=$1; shift
  psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" -c "$*"
}
q_err() { # q_err DB SQL: expect an error; prints SQLSTATE and message
  local db=$1; shift
  if out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=default -At -d "$db" \
      -c "\\set VERBOSITY verbose" -c "$*" 2>&1); then
    echo "expected an error, got: $out" >&2; return 1
  fi
  echo "$out" | grep -m1 '^ERROR'
}
assert_eq() { # assert_eq WHAT EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected [$2], got [$3]" >&2; exit 1
  fi
  echo "ok: $1"
}
assert_match() { # assert_match WHAT REGEX ACTUAL
  if ! [[ "$3" =~ $2 ]]; then
    echo "FAIL: $1: [$3] does not match [$2]" >&2; exit 1
  fi
  echo "ok: $1"
}
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
# Sets (or with an empty value resets) a server setting and waits until new sessions see it.
set_server_setting() {
  local name=$1 value=$2
  local stmt="ALTER SYSTEM RESET $name"
  [ -z "$value" ] || stmt="ALTER SYSTEM SET $name = '${value//\'/\'\'}'"
  # The library defines the setting; load it so ALTER SYSTEM knows the name.
  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "LOAD 'pg_encrypt_ml'" -c "$stmt" -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 50); do
    [ "$(psql -X -At -d postgres -c "LOAD 'pg_encrypt_ml'" -c "SELECT current_setting('$name', true)" | tail -n1)" = "$value" ] && return 0
    sleep 0.1
  done
  echo "setting $name did not take effect" >&2; return 1
}
restart_cluster() {
  as_postgres /usr/lib/postgresql/15/bin/pg_ctl -D "$DATA" -m fast -w restart -l "$CLUSTER_DIR/server.log" >/dev/null
}
