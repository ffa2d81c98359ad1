#!/usr/bin/env bash
# The Citus suite: starts a coordinator and two workers (scripts/citus-cluster.sh, fresh each
# run), runs tests/citus/sql/*.sql through pg_regress on the coordinator and the scripted cases,
# and stops the three clusters on exit, failed or not. Needs Citus installed
# (../shared/citus/build.sh; `make test-citus` runs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export ENCML_CITUS_PORT=${ENCML_CITUS_PORT:-54430}
OUT=target/citus-regress
bash scripts/citus-cluster.sh destroy
trap 'bash scripts/citus-cluster.sh stop' EXIT
bash scripts/citus-cluster.sh start
rm -rf "$OUT" && mkdir -p "$OUT"
# Each node's extension catalog as a fresh install leaves it, for tests/citus/upgrade.sh.
for node_port in coordinator:$ENCML_CITUS_PORT worker1:$((ENCML_CITUS_PORT + 1)) worker2:$((ENCML_CITUS_PORT + 2)); do
  runuser -u postgres -- env -u RUST_BACKTRACE psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${node_port#*:}" \
    -U postgres -d postgres -f tests/upgrade/catalog.sql > "$OUT/fresh-${node_port%%:*}.catalog"
done
tests=(setup)
for f in tests/citus/sql/*.sql; do
  t=$(basename "$f" .sql)
  [ "$t" = setup ] || tests+=("$t")
done
if ! "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
    --inputdir=tests/citus --outputdir="$OUT" --use-existing \
    --host=127.0.0.1 --port="$ENCML_CITUS_PORT" --user=postgres --dbname=postgres "${tests[@]}"; then
  cat "$OUT/regression.diffs" 2>/dev/null | head -n 200
  exit 1
fi
bash tests/citus/tokens.sh
bash tests/citus/node_down.sh
bash tests/citus/reencrypt_restart.sh
bash tests/citus/add_node.sh
bash tests/citus/upgrade.sh
