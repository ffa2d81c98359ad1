#!/usr/bin/env bash
# Runs the isolation specs (tests/isolation/specs/*.spec, expected output in expected/) with
# PostgreSQL's pg_isolation_regress against the cluster of scripts/cluster.sh, in a fresh
# database. One spec: bash tests/isolation/run.sh key_revoke
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash scripts/cluster.sh env)"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
ISOLATION="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress"
DB=encml_isolation
OUT=target/isolation
rm -rf "$OUT" && mkdir -p "$OUT"
dropdb --if-exists "$DB" && createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION pg_encrypt_ml"
if [ $# -gt 0 ]; then specs=("$@"); else
  specs=()
  for f in tests/isolation/specs/*.spec; do specs+=("$(basename "$f" .spec)"); done
fi
if ! "$ISOLATION" --inputdir=tests/isolation --outputdir="$OUT" --use-existing \
    --host="$PGHOST" --port="$PGPORT" --user=postgres --dbname="$DB" "${specs[@]}"; then
  cat "$OUT/regression.diffs" 2>/dev/null | head -n 200
  exit 1
fi
dropdb "$DB"
