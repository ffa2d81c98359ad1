#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the demo, tests and benchmarks, run as the `postgres`
# OS user (Postgres refuses root). Usage: cluster.sh start|stop|status|env
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DIR=${ENCML_CLUSTER_DIR:-/tmp/pg_encrypt_ml-cluster}
PORT=${ENCML_PORT:-54415}
DATA=$DIR/data
SOCK=$DIR/sock

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
  else sudo -u postgres "$@"; fi
}

case "${1:-}" in
  start)
    if [ ! -f "$DATA/PG_VERSION" ]; then
      mkdir -p "$DIR" "$SOCK"
      chown postgres:postgres "$DIR" "$SOCK" 2>/dev/null || sudo chown postgres:postgres "$DIR" "$SOCK"
      chmod 755 "$DIR" "$SOCK"
      as_postgres "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      cat >> "$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCK'
max_connections = 50
fsync = off
# Login lockout, role-change events and decrypt-rate limits need the library preloaded.
shared_preload_libraries = 'pg_encrypt_ml'
# A throw-away cluster: the development master key (refused unless allowed).
encml.allow_development_master_key = on
CONF
    fi
    # (Clusters made before the setting existed get it too.)
    if ! grep -q '^encml.allow_development_master_key' "$DATA/postgresql.conf"; then
      echo "encml.allow_development_master_key = on" | as_postgres tee -a "$DATA/postgresql.conf" >/dev/null
      as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 && as_postgres "$PGBIN/pg_ctl" -D "$DATA" reload >/dev/null
    fi
    # The library is preloaded: a server started before the last install runs the old one.
    SO="$("${PG_CONFIG:-$PGBIN/pg_config}" --pkglibdir)/pg_encrypt_ml.so"
    if as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 && [ "$SO" -nt "$DATA/postmaster.pid" ]; then
      as_postgres "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -m fast -w restart >/dev/null
    fi
    if ! as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      as_postgres "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w start >/dev/null
    fi
    echo "cluster running: psql -h $SOCK -p $PORT -U postgres"
    ;;
  stop)
    if [ -f "$DATA/PG_VERSION" ]; then
      as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  destroy)
    "$0" stop
    rm -rf "$DIR"
    ;;
  env)
    echo "export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres"
    ;;
  *)
    echo "usage: $0 start|stop|destroy|env" >&2; exit 2 ;;
esac
