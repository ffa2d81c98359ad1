#!/usr/bin/env bash
# A throw-away Citus cluster on this machine: a coordinator and two workers on 127.0.0.1, each a
# PostgreSQL 15 cluster run as the `postgres` OS user with Citus and pg_encrypt_ml preloaded and
# the same master key file. Needs Citus installed (../shared/citus/build.sh).
# Usage: citus-cluster.sh start|stop|destroy|env|start-extra NAME PORT|stop-extra NAME
#   start        initdb (first time), start the three nodes, create both extensions on the
#                coordinator, register the nodes and put the key catalog on every node
#                (encml.citus_setup())
#                ENCML_CITUS_EXTENSION_VERSION=X installs that released version instead of the
#                newest (tests/citus/upgrade.sh)
#   start-extra  one more node configured like the others, with Citus created, not registered
#                (tests/citus/add_node.sh registers it); destroy removes it too
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DIR=${ENCML_CITUS_DIR:-/tmp/pg_encrypt_ml-citus}
BASE_PORT=${ENCML_CITUS_PORT:-54430}
NODES="coordinator worker1 worker2"

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- env -u RUST_BACKTRACE "$@"
  else sudo -u postgres "$@"; fi
}

port_of() {
  case "$1" in coordinator) echo "$BASE_PORT" ;; worker1) echo $((BASE_PORT + 1)) ;; worker2) echo $((BASE_PORT + 2)) ;; esac
}

psql_on() {
  local node=$1; shift
  as_postgres "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$node")" -U postgres -d postgres "$@"
}

# initdb and configure node $1 on port $2 unless it exists; true if it was created.
init_node() {
  local data=$DIR/$1
  [ ! -f "$data/PG_VERSION" ] || return 1
  as_postgres "$PGBIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >> "$data/postgresql.conf" <<CONF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 100
max_prepared_transactions = 100
fsync = off
shared_preload_libraries = 'citus,pg_encrypt_ml'
encml.master_key_file = '$DIR/master.key'
# SET LOCAL reaches the workers only with this (how encml.set_tenant travels; docs/citus.md).
citus.propagate_set_commands = 'local'
CONF
}

start_node() {
  if ! as_postgres "$PGBIN/pg_ctl" -D "$DIR/$1" status >/dev/null 2>&1; then
    as_postgres "$PGBIN/pg_ctl" -D "$DIR/$1" -l "$DIR/$1.log" -w start >/dev/null
  fi
}

stop_node() {
  if [ -f "$DIR/$1/PG_VERSION" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$DIR/$1" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

start_extra() {
  if init_node "$1" "$2"; then
    start_node "$1"
    as_postgres "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$2" -U postgres -d postgres -c "CREATE EXTENSION citus"
  else
    start_node "$1"
  fi
}

start() {
  mkdir -p "$DIR"
  chown postgres:postgres "$DIR" 2>/dev/null || sudo chown postgres:postgres "$DIR"
  chmod 755 "$DIR"
  # One master key for the whole cluster: every node unwraps the same wrapped data keys.
  if [ ! -f "$DIR/master.key" ]; then
    as_postgres sh -c "umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > '$DIR/master.key'; echo >> '$DIR/master.key'"
  fi
  local fresh=0
  for node in $NODES; do
    init_node "$node" "$(port_of "$node")" && fresh=1
    start_node "$node"
  done
  if [ $fresh = 1 ]; then
    for node in $NODES; do psql_on "$node" -c "CREATE EXTENSION citus"; done
    psql_on coordinator <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', $(port_of coordinator));
SELECT citus_add_node('127.0.0.1', $(port_of worker1));
SELECT citus_add_node('127.0.0.1', $(port_of worker2));
CREATE EXTENSION pg_encrypt_ml${ENCML_CITUS_EXTENSION_VERSION:+ VERSION '$ENCML_CITUS_EXTENSION_VERSION'};
SELECT encml.citus_setup();
SQL
  fi
  echo "citus cluster running: coordinator on 127.0.0.1:$(port_of coordinator), workers on $(port_of worker1) and $(port_of worker2)"
}

stop() {
  for node in $NODES; do stop_node "$node"; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  destroy) stop; for d in "$DIR"/*/; do [ -d "$d" ] && stop_node "$(basename "$d")"; done; rm -rf "$DIR" ;;
  start-extra) start_extra "$2" "$3" ;;
  stop-extra) stop_node "$2" ;;
  env) echo "export PGHOST=127.0.0.1 PGPORT=$BASE_PORT PGUSER=postgres" ;;
  *) echo "usage: $0 start|stop|destroy|env|start-extra NAME PORT|stop-extra NAME" >&2; exit 2 ;;
esac
