#!/usr/bin/env bash
# ORE values forged by the holder of an ORE key of its own (valid MACs over trits no plaintext
# has, including a comparison cycle) are refused on input, and the index stays sound
# (tests/integration/ore_forgery.py; issue 27, attacker round 1).
source "$(dirname "$0")/lib.sh"
DB=encml_it_ore_forgery
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
trap 'dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
q "$DB" "CREATE EXTENSION pg_encrypt_ml; CREATE EXTENSION amcheck" >/dev/null
q "$DB" "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_it_forger') THEN CREATE ROLE encml_it_forger LOGIN; END IF; END \$\$"
q "$DB" "CREATE TABLE forge_target (v encml.ore_int8); CREATE INDEX forge_target_v ON forge_target (v);
         GRANT INSERT, SELECT ON forge_target TO encml_it_forger"
python3 -c 'import psycopg' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
python3 -c 'from cryptography.hazmat.primitives import hpke' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check --upgrade 'cryptography>=48'
out=$(ORE_FORGERY_DB="$DB" PGHOST="$PGHOST" PGPORT="$PGPORT" python3 tests/integration/ore_forgery.py 2>&1) \
  || { echo "$out"; echo "FAIL: forged ORE values with valid MACs got in"; exit 1; }
echo "ok: forged ORE values with valid MACs are refused ($out)"
assert_eq "the index is sound and holds only the real values" "300|true" \
  "$(q "$DB" "SELECT count(*) || '|' || bool_and(encml.ore_decrypt(v) BETWEEN 1 AND 300) FROM forge_target, (SELECT bt_index_check('forge_target_v', true)) c")"
