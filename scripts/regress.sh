#!/usr/bin/env bash
# Runs tests/pg_regress (cargo-pgrx layout: sql/*.sql, expected/*.out; setup first) against the
# cluster of scripts/cluster.sh, in a fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DB=encml_regress
OUT=target/regress
rm -rf "$OUT" && mkdir -p "$OUT"
dropdb --if-exists "$DB" && createdb "$DB"
tests=(setup)
for f in tests/pg_regress/sql/*.sql; do
  t=$(basename "$f" .sql)
  [ "$t" = setup ] || tests+=("$t")
done
if ! "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
    --inputdir=tests/pg_regress --outputdir="$OUT" --use-existing \
    --host="$PGHOST" --port="$PGPORT" --user=postgres --dbname="$DB" "${tests[@]}"; then
  cat "$OUT/regression.diffs" 2>/dev/null | head -n 200
  exit 1
fi
