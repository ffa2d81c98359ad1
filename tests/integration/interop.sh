#!/usr/bin/env bash
# The outside client (tests/interop/encml_client, written from docs/formats.md alone, standard
# library and `cryptography` only) against the database: keys exported to an X25519 key made by
# the client; enc_bytea, tensors, jsonb, det_text, ORE and large objects the database encrypted
# decrypted by the client, and the client's accepted, decrypted and ordered by the database;
# dp_state, fhe_vector, audit chain, tenant tokens and subject exports read (interop.py).
source "$(dirname "$0")/lib.sh"
DB=encml_interop
trap 'dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null 2>&1
assert_eq "the client's offline known-answer tests" "0" \
  "$(python3 tests/interop/reference_client.py >/dev/null; echo $?)"
python3 tests/integration/interop.py "$DB"
