#!/usr/bin/env bash
# Crypto-shredding and consent withdrawal reach sessions with older snapshots
# (tests/integration/stale_snapshot.py).
source "$(dirname "$0")/lib.sh"
DB=encml_it_stale
python3 -c 'import psycopg' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]'
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "SET client_min_messages = error; CREATE EXTENSION pg_encrypt_ml"
PGDATABASE=$DB python3 tests/integration/stale_snapshot.py
dropdb "$DB"
