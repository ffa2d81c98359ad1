#!/usr/bin/env bash
# The ML examples as tests: examples/model_registry.sql end to end (tenant isolation, tensors,
# checkpoint shards, audit, crypto-shredding) and examples/python (NumPy through psycopg, and
# client-side decryption with a key exported by HPKE).
source "$(dirname "$0")/lib.sh"
DB=encml_it_ml
trap 'dropdb --if-exists "$DB" 2>/dev/null || true; psql -X -q -d postgres -c "DROP ROLE IF EXISTS registry_vision, registry_nlp" 2>/dev/null || true' EXIT
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"

out=$(psql -X -v ON_ERROR_STOP=1 -d "$DB" -f examples/model_registry.sql 2>&1)
assert_eq "registry: the other tenant's ciphertext is refused" 1 \
  "$(grep -c 'ERROR:  key .* belongs to tenant "vision", which is not the current tenant' <<<"$out")"
assert_eq "registry: weights are unreadable after the model's key is destroyed" 1 \
  "$(grep -c 'ERROR:  key .* was destroyed (crypto-shredded)' <<<"$out")"
assert_eq "registry: no other error" 2 "$(grep -c 'ERROR' <<<"$out")"
assert_eq "registry: the shard read matches" 1 "$(grep -cE '^ +65536 \| t$' <<<"$out")"
assert_eq "registry: the other tenant saw no rows" 1 "$(grep -cE '^ +0$' <<<"$out")"
assert_eq "registry: weights stored as tensors, checkpoint as an encrypted large object" "3|1" \
  "$(q "$DB" "SELECT (SELECT count(*) FROM model_parameters) || '|' || (SELECT count(*) FROM model_checkpoints c, encml.lo_encryption_info(c.checkpoint) i)")"
assert_eq "registry: changes audited with weights redacted" "3" \
  "$(q "$DB" "SELECT count(*) FROM encml.audit_log WHERE table_name = 'public.model_parameters' AND new_row->>'weights' LIKE 'hmac:%'")"

python3 -c 'import psycopg, numpy' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
python3 -c 'from cryptography.hazmat.primitives import hpke' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check --upgrade 'cryptography>=48'
(cd examples/python && PGDATABASE="$DB" PGUSER=postgres python3 model_store.py)
echo "ok: python example"
