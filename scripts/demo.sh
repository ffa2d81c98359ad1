#!/usr/bin/env bash
# Runs examples/demo.sql in a fresh database of the demo cluster and prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
dropdb --if-exists encml_demo && createdb encml_demo
psql -X -q -v ON_ERROR_STOP=1 -d encml_demo -f examples/demo.sql
echo
echo "Demo done. Connect with: psql -h $PGHOST -p $PGPORT -U postgres encml_demo   (stop it with: make stop)"
