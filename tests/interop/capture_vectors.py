#!/usr/bin/env python3
"""Writes tests/interop/vectors.json: values the database made, with what decrypts them, for the
offline known-answer tests of reference_client.py (so those compare this client with the Rust
implementation byte for byte without a database).

Usage: capture_vectors.py DATABASE  (a fresh, throwaway database with the extension; PGHOST etc.
a superuser). Data keys are created there and exported to an X25519 key made here; the only
secret written is that throwaway key, and the throwaway database's random audit-chain service
key (version 2; never a key derived from the master key). Not run by the tests."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encml_client import audit, hpke, master  # noqa: E402
from encml_client.common import from_pg_bytea  # noqa: E402

DB = sys.argv[1]


def q(sql):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", DB], input=sql,
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr)
    return json.loads(r.stdout.splitlines()[-1])


sk = hpke.generate_private_key()
pub = hpke.raw_public(sk).hex()
keys = q("""SELECT json_build_object('a', encml.create_key('kat-aead'),
  'd', encml.create_key('kat-det', 'deterministic'), 'o', encml.create_key('kat-ore', 'ore'),
  'f', encml.create_key('kat-fpe', 'fpe'))""")
out = {"x25519_private_key": hpke.raw_private(sk).hex(), "exported": {}}
for name, kid in keys.items():
    out["exported"][name] = from_pg_bytea(q(f"SELECT to_json(encml.export_key('{kid}', '\\x{pub}'))")).hex()
a, d, o, f = keys["a"], keys["d"], keys["o"], keys["f"]
out["enc_bytea"] = q(f"""SELECT json_build_array(
  json_build_object('aad', 'row:1', 'plaintext', 'héllo', 'value', encml.encrypt('héllo'::text, '{a}', 'row:1')),
  json_build_object('aad', null, 'plaintext', '', 'value', encml.encrypt(''::text, '{a}')))""")
tensors = ["ARRAY[[1.5,-2,3],[4,5.25,-6]]::real[]", "'[0:2]={1e300,-0.5,3.141592653589793}'::float8[]",
           "'{{{1,-2},{3,4}},{{-32768,32767},{0,9}}}'::smallint[]", "'[-3:-2][5:5]={{2147483647},{-2147483648}}'::int[]",
           "'{}'::real[]"]
out["tensors"] = q("SELECT json_build_array(" + ", ".join(
    f"json_build_object('value', encml.encrypt_tensor({t}, '{a}', 'tensor'), 'values', to_json({t}), "
    f"'info', (SELECT row_to_json(i) FROM encml.tensor_info(encml.encrypt_tensor({t}, '{a}')) i))"
    for t in tensors) + ")")
doc = {"name": "m7", "weights": [0.125, -1e-7], "layers": [{"bias": [1, 2]}, {"bias": {"deep": [None, True, "ü"]}}]}
out["jsonb"] = {"aad": "doc:7", "plaintext": doc, "value": q(
    f"""SELECT encml.encrypt_jsonb('{json.dumps(doc)}'::jsonb, '{a}', ARRAY['{{weights}}', '{{layers,*,bias}}', '{{layers}}'], 'doc:7')""")}
out["det_text"] = q(f"""SELECT json_build_array(
  json_build_object('plaintext', 'a@b.example', 'value', encml.det_encrypt('a@b.example', '{d}')))""")
out["ore"] = q(f"""SELECT json_build_array(
  json_build_object('domain', 'int8', 'plaintext', -5, 'value', encml.ore_encrypt(-5::bigint, '{o}')),
  json_build_object('domain', 'int8', 'plaintext', 9223372036854775807, 'value', encml.ore_encrypt(9223372036854775807, '{o}')),
  json_build_object('domain', 'float8', 'plaintext', -1.5, 'value', encml.ore_encrypt(-1.5::float8, '{o}')),
  json_build_object('domain', 'float8', 'plaintext', 'NaN', 'value', encml.ore_encrypt('NaN'::float8, '{o}')),
  json_build_object('domain', 'timestamptz', 'plaintext', '2024-02-29T12:34:56.789012+00:00',
                    'value', encml.ore_encrypt('2024-02-29 12:34:56.789012+00'::timestamptz, '{o}')))""")
out["fpe"] = q(f"""SELECT json_build_array(
  json_build_object('plaintext', '0123456789', 'alphabet', '0123456789', 'tweak', null,
                    'value', encml.fpe_encrypt('0123456789', '{f}')),
  json_build_object('plaintext', 'AB-12345', 'alphabet', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-', 'tweak', 'plates',
                    'value', encml.fpe_encrypt('AB-12345', '{f}', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-', 'plates')),
  json_build_object('plaintext', 'héllo wörld', 'alphabet', 'abcdefghijklmnopqrstuvwxyzéö ', 'tweak', 'tw ü',
                    'value', encml.fpe_encrypt('héllo wörld', '{f}', 'abcdefghijklmnopqrstuvwxyzéö ', 'tw ü')))""")
payload = bytes(range(256)) * 11
src = q(f"SELECT to_json(lo_from_bytea(0, '\\x{payload.hex()}'))")
enc = q(f"SELECT to_json(encml.lo_encrypt({src}, '{a}', 1024))")
out["large_object"] = {"plaintext": "bytes(range(256)) * 11", "value": from_pg_bytea(q(f"SELECT to_json(lo_get({enc}))")).hex()}
q(f"SELECT to_json(lo_unlink({src}) + lo_unlink({enc}))")
fhe = q("""SET encml.fhe_client_functions = on;
SELECT encml.fhe_register_keyset('kat', public_material) AS ks FROM encml.fhe_keygen() \\gset
SELECT json_build_object('header', substr(encml.fhe_encrypt(ARRAY[1.5, -2], :'ks', 16, 8, 10)::bytea, 1, 40), 'keyset', :'ks')""")
out["fhe_vector_header"] = {"keyset": fhe["keyset"], "header": from_pg_bytea(fhe["header"]).hex(),
                            "dim": 2, "terms": 1, "value_bits": 16, "frac_bits": 8, "message_bits": 20}
q("SELECT to_json(encml.audit_seal())")
rows = q("SELECT json_agg(json_build_array(" + ", ".join(e for _, e, _ in audit.SQL_COLUMNS)
         + ") ORDER BY seq) FROM encml.audit_log WHERE seq IS NOT NULL")
names = {r[2] for r in rows}
if names != {"svc:audit-chain:2"}:
    sys.exit(f"rows sealed with {names}: capture only rows of the random chain key")
mk = master.parse_provider_output(q("SELECT to_json(pg_read_file('pg_encrypt_ml/master.key'))"))
w = q("SELECT json_build_object('w', wrapped_key, 'd', derived_from) FROM encml.service_keys "
      "WHERE purpose = 'audit-chain' AND version = 2")
assert w["d"] is None
out["audit"] = {"chain_keys": {"svc:audit-chain:2": master.unwrap_service_key(
    mk[0], from_pg_bytea(w["w"]), "audit-chain", 2).hex()}, "rows": rows}
json.dump(out, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json"), "w"),
          indent=1, ensure_ascii=False)
print("wrote tests/interop/vectors.json")
