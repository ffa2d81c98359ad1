#!/usr/bin/env bash
# GDPR against concurrent sessions: crypto-shredding and consent withdrawal reach sessions with
# older snapshots (stale_snapshot.py), and an erasure waits for the writers in progress
# (erasure_races.py).
source "$(dirname "$0")/lib.sh"
DB=encml_it_concurrent_gdpr
python3 -c 'import psycopg' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]'
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "SET client_min_messages = error; CREATE EXTENSION pg_encrypt_ml"
PGDATABASE=$DB python3 tests/integration/stale_snapshot.py
PGDATABASE=$DB python3 tests/integration/erasure_races.py
dropdb "$DB"
