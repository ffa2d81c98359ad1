#!/usr/bin/env python3
"""The outside client (tests/interop/encml_client, written from docs/formats.md alone) against a
live database: keys exported to an X25519 key made here; values the database encrypted are read
here, values made here are accepted, decrypted and compared there; dp_state, fhe_vector, audit
rows, tenant tokens and subject exports the database produced are parsed and checked.

Usage: interop.py DATABASE  (the extension installed in it; PGHOST/PGPORT/PGUSER a superuser).
Standard library, `cryptography` and psql only. Prints `ok:` lines; exits 1 at the first FAIL.
"""
import datetime
import json
import math
import os
import random
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from encml_client import (audit, common, det_text, dp_state, enc_bytea, export_key, fhe_vector, fpe,  # noqa: E402
                          hpke, jsonb, large_object, master, ore, subject_export, tenant_token)
from encml_client.common import b64decode, from_pg_bytea  # noqa: E402

DB = sys.argv[1]


def ok(what):
    print(f"ok: {what}", flush=True)


def check(what, cond, detail=""):
    if not cond:
        print(f"FAIL: {what}" + (f": {detail}" if detail else ""), file=sys.stderr, flush=True)
        sys.exit(1)
    ok(what)


def psql(sql, expect_error=False):
    """Runs a script; returns stdout (unaligned, tuples only), or the ERROR line if expected."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
                        "-d", DB], input=sql, capture_output=True, text=True)
    if expect_error:
        if r.returncode == 0:
            print(f"FAIL: expected an error from: {sql[:200]}", file=sys.stderr)
            sys.exit(1)
        return next((l for l in r.stderr.splitlines() if l.startswith("ERROR")), r.stderr)
    if r.returncode != 0:
        errors = "\n".join(l for l in r.stderr.splitlines() if l.startswith(("ERROR", "DETAIL", "HINT", "LINE")))
        print(f"FAIL: psql: {errors or r.stderr}\n--- {sql[:500]}", file=sys.stderr)
        sys.exit(1)
    return r.stdout.rstrip("\n")


def qjson(sql):
    """One value: a json expression."""
    return json.loads(psql(f"SELECT ({sql})::json"))


def hexlit(b: bytes) -> str:
    return f"'\\x{b.hex()}'::bytea"


# --- keys: created here, exported to our X25519 key ------------------------------------------------
recipient = hpke.generate_private_key()
pub = hpke.raw_public(recipient)
tag = os.urandom(3).hex()
keys = qjson(f"""json_build_object(
  'aead', encml.create_key('interop-aead-{tag}'),
  'det', encml.create_key('interop-det-{tag}', 'deterministic'),
  'ore', encml.create_key('interop-ore-{tag}', 'ore'),
  'ore2', encml.create_key('interop-ore2-{tag}', 'ore'), 'fpe', encml.create_key('interop-fpe-{tag}', 'fpe'))""")
KA, KD, KO, KO2, KF = (uuid.UUID(keys[k]) for k in ("aead", "det", "ore", "ore2", "fpe"))
psql(f"SELECT encml.rotate_key('{KA}')")   # the aead key has versions 1 and 2
exported = qjson(f"""json_build_object(
  'a1', encml.export_key('{KA}', {hexlit(pub)}, 1), 'a2', encml.export_key('{KA}', {hexlit(pub)}),
  'd', encml.export_key('{KD}', {hexlit(pub)}), 'o', encml.export_key('{KO}', {hexlit(pub)}),
  'o2', encml.export_key('{KO2}', {hexlit(pub)}), 'f', encml.export_key('{KF}', {hexlit(pub)}))""")
opened = {}
for name, text in exported.items():
    blob = from_pg_bytea(text)
    k = export_key.open_key(blob, recipient)
    lib = hpke.library_open(blob[24:56], recipient, blob[:24], blob[56:])
    if lib is not None and lib != k.root:
        check("cryptography's hpke module opens the exported key alike", False)
    opened[name] = k
check("export_key: 104 bytes \"EX\" 1 1, key id and version in the header, opened with HPKE here",
      (opened["a1"].key_id, opened["a1"].key_version, opened["a2"].key_version, opened["d"].key_id)
      == (KA, 1, 2, KD) and opened["a1"].root != opened["a2"].root)
ROOTS = {(k.key_id, k.key_version): k.root for k in opened.values()}


def root_of(key_id, version):
    return ROOTS.get((key_id, version))


# --- master key: wrapped data keys, fingerprints -----------------------------------------------
settings = qjson("""json_build_object('file', current_setting('encml.master_key_file'),
  'command', current_setting('encml.master_key_command'))""")
MASTER = None
if not settings["command"]:
    path = settings["file"] or "pg_encrypt_ml/master.key"   # the development key (docs/keys.md)
    MASTER = master.parse_provider_output(psql(f"SELECT pg_read_file('{path}')"))
if MASTER is None:
    ok("SKIP master-key formats: the provider is a command")
else:
    wrapped = qjson(f"""(SELECT json_agg(json_build_object('v', version, 'w', wrapped_key,
        'fp', master_key_fingerprint) ORDER BY version) FROM encml.data_key_versions WHERE key_id = '{KA}')""")
    by_fp = {master.fingerprint(m): m for m in MASTER}
    roots = [master.unwrap_data_key(by_fp[w["fp"]], from_pg_bytea(w["w"]), KA, w["v"]) for w in wrapped]
    check("wrapped data keys unwrap with the master key (KEK, AAD with key id and version) to the exported roots",
          roots == [opened["a1"].root, opened["a2"].root])

# --- (a) values the database encrypted, read here ----------------------------------------------
got = qjson(f"""json_build_object(
  'text', encml.encrypt('héllo wörld'::text, '{KA}', 'row:1'),
  'bytes', encml.encrypt('\\x00ff10'::bytea, '{KA}')::bytea,
  'empty', encml.encrypt(''::text, '{KA}'),
  'v1', encml.reencrypt(encml.encrypt('old'::text, '{KA}'), NULL),
  'keyid', encml.key_id(encml.encrypt('x'::text, '{KA}')))""")
t = b64decode(got["text"])
check("enc_bytea text form (base64) decrypts here with its AAD; key version 2 in the header",
      enc_bytea.decrypt(root_of(KA, 2), t, "row:1") == "héllo wörld".encode()
      and enc_bytea.parse(t).header.key_version == 2 and len(t) == 52 + len("héllo wörld".encode()))
try:
    enc_bytea.decrypt(root_of(KA, 2), t, "row:2")
    check("a wrong AAD fails here", False)
except Exception as e:
    check("a wrong AAD fails here", type(e).__name__ == "InvalidTag")
check("enc_bytea binary form (::bytea) and the empty value decrypt here",
      enc_bytea.decrypt(root_of(KA, 2), from_pg_bytea(got["bytes"])) == b"\x00\xff\x10"
      and enc_bytea.decrypt(root_of(KA, 2), b64decode(got["empty"]), "") == b"")

tensors = [("real", "float32", "ARRAY[[1.5,-2,3],[4,5.25,-6]]::real[]", (2, 3), (1, 1),
            [[1.5, -2.0, 3.0], [4.0, 5.25, -6.0]]),
           ("float8", "float64", "'[0:2]={1e300,-0.5,3.141592653589793}'::float8[]", (3,), (0,),
            [1e300, -0.5, 3.141592653589793]),
           ("smallint", "int16", "'{{{1,-2},{3,4}},{{-32768,32767},{0,9}}}'::smallint[]", (2, 2, 2), (1, 1, 1),
            [[[1, -2], [3, 4]], [[-32768, 32767], [0, 9]]]),
           ("int", "int32", "'[-3:-2][5:5]={{2147483647},{-2147483648}}'::int[]", (2, 1), (-3, 5),
            [[2147483647], [-2147483648]]),
           ("real", "float32", "'{}'::real[]", (), (), [])]
got = qjson("json_build_array(" + ", ".join(
    f"json_build_array(encml.encrypt_tensor({lit}, '{KA}', 'tensor'), "
    f"(SELECT row_to_json(i) FROM encml.tensor_info(encml.encrypt_tensor({lit}, '{KA}')) i))"
    for _, _, lit, _, _, _ in tensors) + ")")
for (_, dtype, _, shape, lbs, values), (text, info) in zip(tensors, got):
    v = b64decode(text)
    desc, vals = enc_bytea.decrypt_tensor(root_of(KA, 2), v, "tensor")
    if (desc.dtype, desc.shape, desc.lower_bounds, vals) != (dtype, shape, lbs, values) \
            or (info["dtype"], info["element_count"]) != (dtype, desc.element_count) \
            or len(v) != 58 + 8 * len(shape) + desc.element_count * int(dtype[-2:]) // 8:
        check(f"tensor {dtype}{list(shape)}", False, f"{desc} {vals} {info}")
ok("tensors (algorithm 4): descriptors (dtype, shape, lower bounds) decoded and values decrypted here "
   "for float32, float64, int16, int32 and the empty array, as tensor_info says")

doc_in = {"name": "m7", "weights": [0.125, -1e-7, 12345678901234567890], "layers": [
    {"bias": [1, 2], "w": "keep"}, {"bias": {"deep": [None, True, "ü"]}}], "*": "star", "n": None}
got = qjson(f"""encml.encrypt_jsonb('{json.dumps(doc_in)}'::jsonb, '{KA}',
    ARRAY['{{weights}}', '{{layers,*,bias}}', '{{layers,-1}}', '{{\\\\*}}', 'n'], 'doc:7')""")
check("encrypt_jsonb: the selected values became \"encml:v1:\" strings, the rest stays plain",
      got["name"] == "m7" and jsonb.is_encrypted(got["weights"]) and jsonb.is_encrypted(got["layers"][1])
      and jsonb.is_encrypted(got["layers"][0]["bias"]) and got["layers"][0]["w"] == "keep"
      and jsonb.is_encrypted(got["*"]) and jsonb.is_encrypted(got["n"]))
check("encrypted jsonb values (nested ones too) decrypt here with the path-bound AAD",
      json.loads(json.dumps(jsonb.decrypt_document(got, root_of, "doc:7"), default=float)) == doc_in,
      json.dumps(jsonb.decrypt_document(got, root_of, "doc:7"), default=str))
try:
    jsonb.decrypt_value(root_of(KA, 2), got["weights"], ["n"], "doc:7")
    check("a value moved to another path fails here", False)
except Exception as e:
    check("a value moved to another path fails here", type(e).__name__ == "InvalidTag")

got = qjson(f"""json_build_object('e', encml.det_encrypt('a@b.example', '{KD}'),
  'b', encml.det_encrypt('\\x01ff'::bytea, '{KD}'))""")
check("det_text: the database's ciphertext decrypts here and equals ours byte for byte",
      det_text.decrypt(root_of(KD, 1), b64decode(got["e"])) == b"a@b.example"
      and det_text.encrypt(root_of(KD, 1), KD, 1, b"a@b.example") == b64decode(got["e"])
      and det_text.decrypt(root_of(KD, 1), b64decode(got["b"])) == b"\x01\xff")

rng = random.Random(20240601)
ints = [0, 1, -1, 2 ** 63 - 1, -2 ** 63, 1000, 999, -1000] + [rng.randrange(-2 ** 63, 2 ** 63) for _ in range(10)] \
    + [rng.randrange(-50, 50) for _ in range(6)]
floats = [0.0, -0.0, 1.5, -1.5, 1e-300, -1e300, float("inf"), float("-inf"), float("nan"), 2.0 ** -1074] \
    + [rng.uniform(-1e6, 1e6) for _ in range(8)]
stamps = ["2000-01-01 00:00:00+00", "1999-12-31 23:59:59.999999+00", "2024-02-29 12:34:56.789012+00",
          "1970-01-01 00:00:00+00", "infinity", "-infinity", "2262-04-11 23:47:16.854775+00"]


def sql_float(x):
    return "'" + ("NaN" if math.isnan(x) else "Infinity" if x == math.inf else
                  "-Infinity" if x == -math.inf else repr(x)) + "'::float8"


def py_stamp(s):
    return s if "infinity" in s else datetime.datetime.fromisoformat(s.replace(" ", "T"))


got = qjson("json_build_object('i', json_build_array(" + ", ".join(f"encml.ore_encrypt('{x}'::bigint, '{KO}')" for x in ints)
            + "), 'f', json_build_array(" + ", ".join(f"encml.ore_encrypt({sql_float(x)}, '{KO}')" for x in floats)
            + "), 't', json_build_array(" + ", ".join(f"encml.ore_encrypt('{s}'::timestamptz, '{KO}')" for s in stamps)
            + "))")
ore_db = {"int8": [b64decode(x) for x in got["i"]], "float8": [b64decode(x) for x in got["f"]],
          "timestamptz": [b64decode(x) for x in got["t"]]}
plain = {"int8": ints, "float8": floats, "timestamptz": [py_stamp(s) for s in stamps]}
for dom in plain:
    for v, x in zip(ore_db[dom], plain[dom]):
        d = ore.decrypt(root_of(KO, 1), v)
        same = (math.isnan(x) and math.isnan(d)) if isinstance(x, float) and math.isnan(x) else d == x
        if not (same and ore.verify_mac(root_of(KO, 1), v) and v == ore.encrypt(root_of(KO, 1), KO, 1, dom, x)):
            check(f"ORE {dom} {x}", False, f"decrypted {d}")
ok(f"ORE: {sum(map(len, plain.values()))} database ciphertexts (int8, float8, timestamptz) verify their MAC, "
   "decrypt here and equal ours byte for byte")


def order_key(dom, x):
    if dom == "float8":
        return (2, 0) if math.isnan(x) else (1, x + 0.0)
    if dom == "timestamptz":
        return ore.timestamptz_to_pg(x)
    return x


n_pairs = 0
cmp_sql = []
for dom, lits in (("int8", ints), ("float8", floats), ("timestamptz", stamps)):
    vals = ore_db[dom]
    for i in range(len(vals)):
        for j in range(len(vals)):
            a, b = order_key(dom, plain[dom][i]), order_key(dom, plain[dom][j])
            expect = (a > b) - (a < b)
            if ore.compare(vals[i], vals[j]) != expect:
                check(f"ORE compare {dom} {plain[dom][i]} vs {plain[dom][j]}", False)
            n_pairs += 1
ok(f"ORE: comparing ciphertexts here (first differing trit) gives the plaintext order on {n_pairs} pairs")

fpe_cases = [("4111111111111111", "0123456789", None), ("AB-12345", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", "plates"),
             ("grüße aus köln", "abcdefghijklmnopqrstuvwxyzäöüß ", "t ü"), ("000000", "0123456789", "")]


def sql_text(x):
    return "NULL" if x is None else "'" + x.replace("'", "''") + "'"


got = qjson("json_build_array(" + ", ".join(
    f"json_build_array(encml.fpe_encrypt({sql_text(v)}, '{KF}', {sql_text(a)}, {sql_text(t)}), "
    f"encml.fpe_decrypt({sql_text(fpe.encrypt(root_of(KF, 1), KF, 1, v, a, t))}, '{KF}', {sql_text(a)}, {sql_text(t)}))"
    for v, a, t in fpe_cases) + ")")
check("fpe_encrypt (FF1, AES-256, sub-key \"fpe\"): the database's tokens equal ours and decrypt here; ours "
      "decrypt there", all(db == fpe.encrypt(root_of(KF, 1), KF, 1, v, a, t) and back == v
                           and fpe.decrypt(root_of(KF, 1), KF, 1, db, a, t) == v
                           for (db, back), (v, a, t) in zip(got, fpe_cases)), json.dumps(got))

pans = [("4111 1111 1111 1111", 0), ("4111-1111-1111-1111", 0), ("5555555555554444", 0),
        ("6011 0009 9013 9424 124", 6), ("378282246310005", 0)]
got = qjson("json_build_array(" + ", ".join(
    f"json_build_array(encml.tokenize_pan('{p}', '{KF}', {k}), "
    f"encml.detokenize_pan('{fpe.tokenize_pan(root_of(KF, 1), KF, p, k)}', '{KF}', {k}))"
    for p, k in pans) + ")")
check("tokenize_pan: the database's card-number tokens equal ours (formats.md, \"FF1 tokens\"), "
      "detokenize here, and ours detokenize there",
      all(db == fpe.tokenize_pan(root_of(KF, 1), KF, p, k) and back == p
                             and fpe.detokenize_pan(root_of(KF, 1), KF, db, k) == p
                             for (db, back), (p, k) in zip(got, pans)), json.dumps(got))

# --- (b) values made here, accepted and decrypted by the database ----------------------------------
r2 = root_of(KA, 2)
ours = {"text": enc_bytea.encrypt(r2, KA, 2, "grüße".encode(), "row:9"),
        "v1": enc_bytea.encrypt(root_of(KA, 1), KA, 1, b"\x00\x01binary"),
        "t_real": enc_bytea.encrypt_tensor(r2, KA, 2, [0.5, -1.25, 3.0, 1e30, -0.0, 7.0], (2, 3), "float32", "t"),
        "t_f8": enc_bytea.encrypt_tensor(r2, KA, 2, [1e-300, 2.5], (2,), "float64", lower_bounds=(-1,)),
        "t_i2": enc_bytea.encrypt_tensor(r2, KA, 2, [-32768, 1, 2, 32767], (2, 1, 2), "int16"),
        "t_i4": enc_bytea.encrypt_tensor(r2, KA, 2, [-7, 2147483647], (1, 2), "int32"),
        "t_empty": enc_bytea.encrypt_tensor(r2, KA, 2, [], (), "float32")}
got = qjson(f"""json_build_object(
  'text', encml.decrypt_text({hexlit(ours['text'])}::encml.enc_bytea, 'row:9'),
  'text_b64', encml.decrypt_text('{common.b64encode(ours['text'])}'::encml.enc_bytea, 'row:9'),
  'v1', encml.decrypt({hexlit(ours['v1'])}::encml.enc_bytea),
  'v1_version', encml.key_version({hexlit(ours['v1'])}::encml.enc_bytea),
  't_real', encml.decrypt_tensor_real({hexlit(ours['t_real'])}::encml.enc_bytea, 't')::text,
  't_f8', encml.decrypt_tensor_float8({hexlit(ours['t_f8'])}::encml.enc_bytea)::text,
  't_i2', encml.decrypt_tensor_smallint({hexlit(ours['t_i2'])}::encml.enc_bytea)::text,
  't_i4', encml.decrypt_tensor_int({hexlit(ours['t_i4'])}::encml.enc_bytea)::text,
  't_empty', encml.decrypt_tensor_real({hexlit(ours['t_empty'])}::encml.enc_bytea)::text,
  't_info', (SELECT row_to_json(i) FROM encml.tensor_info({hexlit(ours['t_i2'])}::encml.enc_bytea) i))""")
check("our enc_bytea (bytea cast and base64 text input) decrypts in the database, versions 1 and 2",
      got["text"] == "grüße" and got["text_b64"] == "grüße" and got["v1"] == "\\x" + b"\x00\x01binary".hex()
      and got["v1_version"] == 1)
check("our tensors decrypt in the database with their shapes and lower bounds",
      (got["t_real"], got["t_f8"], got["t_i2"], got["t_i4"], got["t_empty"]) ==
      ("{{0.5,-1.25,3},{1e+30,-0,7}}", "[-1:0]={1e-300,2.5}", "{{{-32768,1}},{{2,32767}}}",
       "{{-7,2147483647}}", "{}") and got["t_info"]["shape"] == [2, 1, 2], json.dumps(got))
err = psql(f"SELECT encml.decrypt_text({hexlit(ours['text'])}::encml.enc_bytea, 'row:8')", expect_error=True)
check("the database refuses our value under another AAD (22000)", "22000" in err, err)
bad = bytearray(ours["text"]); bad[3] = 9
err = psql(f"SELECT {hexlit(bytes(bad))}::encml.enc_bytea", expect_error=True)
check("the bytea cast refuses an unknown algorithm byte (22P03)", "22P03" in err, err)

doc = {"id": 3, "secret": {"a": [1, 2.50, "x"]}, "list": ["p", "q"], "keep": True}
enc_doc = dict(doc, secret=jsonb.encrypt_value(r2, KA, 2, doc["secret"], ["secret"], "doc:3"),
               list=[doc["list"][0], jsonb.encrypt_value(r2, KA, 2, "q", ["list", 1], "doc:3")])
got = qjson(f"""json_build_object(
  'dec', encml.decrypt_jsonb('{json.dumps(enc_doc)}'::jsonb, 'doc:3'),
  'is', encml.jsonb_is_encrypted('{json.dumps(enc_doc)}'::jsonb, ARRAY['{{secret}}', '{{list,1}}']))""")
check("our encrypted jsonb values decrypt in the database (decrypt_jsonb) and count as encrypted",
      got["dec"] == {"id": 3, "secret": {"a": [1, 2.5, "x"]}, "list": ["p", "q"], "keep": True} and got["is"] is True,
      json.dumps(got))
moved = dict(enc_doc, other=enc_doc["secret"])
err = psql(f"SELECT encml.decrypt_jsonb('{json.dumps(moved)}'::jsonb, 'doc:3')", expect_error=True)
check("the database refuses our value moved to another path (22000)", "22000" in err, err)

words = ["alice@x.org", "bob@y.org", "ç@ü.example", ""]
ours_det = [det_text.encrypt(root_of(KD, 1), KD, 1, w.encode()) for w in words]
got = qjson("json_build_array(" + ", ".join(
    f"json_build_array({hexlit(c)}::encml.det_text = encml.det_encrypt('{w}', '{KD}'), "
    f"encml.det_decrypt({hexlit(c)}::encml.det_text))" for c, w in zip(ours_det, words)) + ")")
check("our det_text values equal encml.det_encrypt's and det_decrypt in the database",
      got == [[True, w] for w in words], json.dumps(got))

psql("CREATE TABLE interop_ore (i int, a encml.ore_int8, f encml.ore_float8, t encml.ore_timestamptz)")
rows_i = ints + [rng.randrange(-10 ** 6, 10 ** 6) for _ in range(6)]
mixed = []
for n, x in enumerate(rows_i):
    key = KO if n % 3 else KO2   # two keys: values order by key id first, then plaintext
    fl = floats[n % len(floats)]
    st = plain["timestamptz"][n % len(stamps)]
    mixed.append((n, key, x, fl, st))
psql("INSERT INTO interop_ore VALUES " + ", ".join(
    f"({n}, {hexlit(ore.encrypt(root_of(k, 1), k, 1, 'int8', x))}::encml.ore_int8, "
    f"{hexlit(ore.encrypt(root_of(KO, 1), KO, 1, 'float8', fl))}::encml.ore_float8, "
    f"{hexlit(ore.encrypt(root_of(KO, 1), KO, 1, 'timestamptz', st))}::encml.ore_timestamptz)"
    for n, k, x, fl, st in mixed))
got = qjson("""json_build_object(
  'by_a', (SELECT json_agg(i ORDER BY a, i) FROM interop_ore),
  'by_f', (SELECT json_agg(i ORDER BY f, i) FROM interop_ore),
  'by_t', (SELECT json_agg(i ORDER BY t, i) FROM interop_ore),
  'dec', (SELECT json_agg(json_build_array(i, encml.ore_decrypt(a)::text, encml.ore_decrypt(f)::text,
          encml.ore_decrypt(t) = encml.ore_decrypt(t)) ORDER BY i) FROM interop_ore))""")
exp_a = [n for n, *_ in sorted(mixed, key=lambda r: ((r[1].bytes, 1), r[2], r[0]))]
exp_f = [n for n, *_ in sorted(mixed, key=lambda r: (order_key("float8", r[3]), r[0]))]
exp_t = [n for n, *_ in sorted(mixed, key=lambda r: (order_key("timestamptz", r[4]), r[0]))]
check("our ORE ciphertexts (bytea casts, the database verifies their MACs) sort in the database as the "
      "plaintexts (two keys: by key id first)", (got["by_a"], got["by_f"], got["by_t"]) == (exp_a, exp_f, exp_t),
      json.dumps(got))
check("our ORE ciphertexts decrypt in the database (ore_decrypt)",
      [int(d[1]) for d in got["dec"]] == [x for _, _, x, _, _ in mixed]
      and all(float(d[2]) == fl or (math.isnan(fl) and d[2] == "NaN") for d, (_, _, _, fl, _) in zip(got["dec"], mixed)))
their_order = qjson(f"""(SELECT json_agg(x ORDER BY c) FROM (VALUES {", ".join(
    f"('{x}'::bigint, encml.ore_encrypt('{x}'::bigint, '{KO}'))" for x in ints)}) v(x, c))""")
check("and the database's own ORE values sort alike", their_order == sorted(ints))
forged = bytearray(ore.encrypt(root_of(KO, 1), KO, 1, "int8", 5)); forged[30] ^= 0x01
err = psql(f"SELECT {hexlit(bytes(forged))}::encml.ore_int8", expect_error=True)
check("the database refuses our ORE value with a changed trit (MAC, 22P03)", "22P03" in err, err)

payload = os.urandom(5000)
lo_ours = large_object.encrypt(r2, KA, 2, payload, chunk_size=1024)
got = qjson(f"""json_build_object('src', lo_from_bytea(0, {hexlit(payload)}),
  'ours', lo_from_bytea(0, {hexlit(lo_ours)}))""")
got2 = qjson(f"""json_build_object('enc', encml.lo_encrypt({got['src']}, '{KA}', 2048),
  'dec', encml.lo_decrypt({got['ours']}))""")
got3 = qjson(f"""json_build_object('enc', lo_get({got2['enc']}), 'dec', lo_get({got2['dec']}))""")
lo_db = from_pg_bytea(got3["enc"])
check("encrypted large objects: the database's decrypts here, ours decrypts there",
      large_object.decrypt(r2, lo_db) == payload and large_object.parse_header(lo_db).chunk_size == 2048
      and from_pg_bytea(got3["dec"]) == payload)

# --- (c) formats the database produced: dp_state, fhe_vector ----------------------------------------
got = qjson("json_build_object('f', 'dp1:f'::encml.dp_state::text, 'i', 'dp1:i'::encml.dp_state::text)")
if MASTER is not None:
    fp = master.fingerprint(MASTER[0])
    states = {t: dp_state.open_text(MASTER, got[t]) for t in ("f", "i")}
    check("dp_state: the empty states come out sealed (dp1s:<fingerprint>:hex), open here, version 2, 96 bytes, "
          "value type f / i, no parameters, nothing counted",
          all(got[t].startswith(f"dp1s:{fp}:") and states[t].value_type == t and states[t].flags == 0
              and states[t].rows == 0 and states[t].exact_sum == 0 for t in ("f", "i")), str(states))
    mine = dp_state.DpState("f", dp_state.FLAG_PARAMS, 0, 0.5, 0.0, -10.0, 10.0, bytes(32), 3, 7 << 58)
    check("a state sealed here is accepted by the database",
          psql(f"SELECT '{dp_state.seal(MASTER[0], mine)}'::encml.dp_state IS NOT NULL") == "t")
    raw = bytearray(mine.encode()); raw[0] = 1
    err = psql(f"SELECT '{dp_state.seal_raw(MASTER[0], bytes(raw))}'::encml.dp_state", expect_error=True)
    check("a state of version 1 sealed here is refused (22P02)", "22P02" in err, err)
    other = bytearray(MASTER[0]); other[0] ^= 1
    err = psql(f"SELECT '{dp_state.seal(bytes(other), mine)}'::encml.dp_state", expect_error=True)
    check("a state sealed under an unknown master key is refused (F0000)", "F0000" in err, err)
else:
    check("dp_state text form parses", all(dp_state.parse_text(got[t])[0] == "sealed" for t in ("f", "i")))

fhe = psql("""SET encml.fhe_client_functions = on;
CREATE TEMP TABLE k AS SELECT * FROM encml.fhe_keygen();
SELECT encml.fhe_register_keyset('interop-' || gen_random_uuid(), public_material) AS ks FROM k \\gset
CREATE TEMP TABLE v AS SELECT encml.fhe_encrypt(ARRAY[1.5, -2.25, 3, 100.125, 0], :'ks', 16, 8, 10) AS v;
INSERT INTO v SELECT encml.fhe_encrypt(ARRAY[1, 1, -1, -0.5, 0.00390625], :'ks', 16, 8, 10);
SELECT json_build_object('sk', (SELECT secret_key FROM k), 'ks', :'ks',
  'v', (SELECT json_agg(v::text) FROM v), 'sum', (SELECT encml.fhe_vector_sum(v)::bytea FROM v),
  'info', (SELECT json_agg(row_to_json(i)) FROM v, encml.fhe_vector_info(v) i))""")
fhe = json.loads(fhe.splitlines()[-1])
sk = fhe_vector.parse_secret_key(from_pg_bytea(fhe["sk"]))
vec = b64decode(fhe["v"][0])
h = fhe_vector.parse_header(vec)
i0 = fhe["info"][0]
check("fhe_vector header: magic, version 1, key set, dim, terms, bits as fhe_vector_info says; CRC-32 and "
      "length check", (str(h.key_set_id), h.version, h.dim, h.terms, h.value_bits, h.frac_bits, h.message_bits)
      == (fhe["ks"], 1, i0["dim"], i0["terms"], i0["value_bits"], i0["frac_bits"], i0["message_bits"])
      and h.dim == 5 and h.message_bits == 20 and sk.key_set_id == h.key_set_id, str(h))
_, vals = fhe_vector.decrypt(vec, sk)
sh, svals = fhe_vector.decrypt(from_pg_bytea(fhe["sum"]), sk)
check("fhe_vector values and the SQL sum (terms = 2) decrypt here with the secret key file",
      vals == [1.5, -2.25, 3.0, 100.125, 0.0] and sh.terms == 2 and svals == [2.5, -1.25, 2.0, 99.625, 0.00390625],
      f"{vals} {svals}")
damaged = bytearray(vec); damaged[100] ^= 1
try:
    fhe_vector.parse_header(bytes(damaged))
    check("a damaged fhe_vector fails its CRC here", False)
except common.FormatError:
    ok("a damaged fhe_vector fails its CRC here")
err = psql(f"SELECT {hexlit(bytes(damaged))}::encml.fhe_vector", expect_error=True)
check("and there", "22P0" in err, err)

# --- audit chain ---------------------------------------------------------------------------------
psql(f"""CREATE TABLE interop_audited (id int PRIMARY KEY, name text, email text, doc jsonb);
SELECT encml.audit_enable('interop_audited', redact => '{{email}}');
INSERT INTO interop_audited VALUES (1, 'ann', 'ann@x.org', '{{"a": [1, 2]}}'), (2, 'bob', NULL, NULL);
SELECT encml.create_tenant('interop_t{tag}');
BEGIN; SELECT encml.set_tenant('interop_t{tag}', true);
UPDATE interop_audited SET name = 'anne', doc = '{{"b": "ü"}}' WHERE id = 1; COMMIT;
DELETE FROM interop_audited WHERE id = 2;
SELECT encml.audit_seal();""")
head = qjson("(SELECT row_to_json(h) FROM encml.audit_head() h)")
rows_text = qjson("(SELECT json_agg(json_build_array(" + ", ".join(e for _, e, _ in audit.SQL_COLUMNS)
                  + ") ORDER BY seq) FROM encml.audit_log WHERE seq IS NOT NULL AND seq <= " + str(head["seq"]) + ")")
rows = [audit.Row.from_text(r) for r in rows_text]
anchors = [r for r in rows if r.values["kind"] == "anchor"]
if MASTER is not None and not anchors and rows and rows[0].values["seq"] == 1:
    service = qjson("(SELECT json_agg(json_build_object('p', purpose, 'v', version, 'w', wrapped_key, "
                    "'fp', master_key_fingerprint)) FROM encml.service_keys)")
    by_fp = {master.fingerprint(m): m for m in MASTER}
    skeys = {(s["p"], s["v"]): master.unwrap_service_key(by_fp[s["fp"]], from_pg_bytea(s["w"]), s["p"], s["v"])
             for s in service}
    chain = {f"svc:audit-chain:{v}": k for (p, v), k in skeys.items() if p == "audit-chain"}
    for fpr, m in by_fp.items():   # rows sealed before 0.2.0 name the master key
        chain[fpr] = master.legacy_service_key(m, "audit-chain")
    res = audit.verify_chain(rows, chain, start_seq=1)
    check(f"the audit chain verifies here from SQL-readable columns ({res.rows_checked} rows, service keys "
          "unwrapped with the master key), up to the head audit_head() returned",
          res.ok and rows[-1].values["mac"].hex() == head["mac"] and rows[-1].values["seq"] == head["seq"],
          res.detail)
    mine = [r for r in rows if r.values["table_name"] == "public.interop_audited" and r.values["kind"] == "row"]
    upd = next(r for r in mine if r.values["operation"] == "UPDATE")
    check("rows of the audited table: operations, tenant, changed columns; the redaction token is the HMAC here",
          [r.values["operation"] for r in mine] == ["INSERT", "INSERT", "UPDATE", "DELETE"]
          and upd.values["tenant"] == f"interop_t{tag}" and upd.values["changed_columns"] == "{name,doc}"
          and json.loads(mine[0].values["new_row"])["email"] ==
          audit.redaction_token(skeys[("audit-redact", max(v for p, v in skeys if p == "audit-redact"))], "ann@x.org"),
          str(upd.values))
    tampered = [audit.Row(dict(r.values)) for r in rows]
    tampered[-2].values["new_row"] = tampered[-2].values["new_row"] and tampered[-2].values["new_row"].replace("b", "c")
    tampered[-2].values["detail"] = (tampered[-2].values["detail"] or "") + " "
    res = audit.verify_chain(tampered, chain, start_seq=1)
    check("an edited row fails here at that row", not res.ok and res.first_bad_id == rows[-2].values["id"])
    res = audit.verify_chain(rows[:3] + rows[4:], chain, start_seq=1)
    check("a deleted row fails here at the next", not res.ok and res.first_bad_id == rows[4].values["id"])
else:
    ok("SKIP audit chain: no master key, or the log was purged")

# --- tenant tokens -------------------------------------------------------------------------------
if MASTER is not None:
    who = qjson("json_build_object('role', current_user, 'db', current_database())")
    tenant = f"interop_t{tag}"
    token = tenant_token.make(MASTER[0], tenant, who["role"], who["db"])
    out = psql(f"BEGIN; SET LOCAL encml.tenant = '{token}'; "
               "SELECT json_build_object('t', encml.current_tenant(), 's', current_setting('encml.tenant'), "
               "'x', (SELECT split_part(virtualtransaction, '/', 2)::bigint FROM pg_locks "
               "WHERE pid = pg_backend_pid() AND locktype = 'virtualxid')); COMMIT;").splitlines()
    got = json.loads(out[-1])
    setting = got["s"].split("#")
    t = tenant_token.verify(MASTER[0], got["s"], who["role"], who["db"])
    check("a tenant token made here is accepted (SET LOCAL in a block): the database's tenant is ours, "
          "its setting <token>#<xid>#<expiry> reads back",
          got["t"] == tenant and setting[0] == token and int(setting[1]) == got["x"]
          and int(setting[2]) == t.issued + 300 * 1_000_000 and t.tenant == tenant, json.dumps(got))
    for what, tok in (("another role", tenant_token.make(MASTER[0], tenant, "nobody", who["db"])),
                      ("another database", tenant_token.make(MASTER[0], tenant, who["role"], "elsewhere")),
                      ("issued 10 minutes ago", tenant_token.make(MASTER[0], tenant, who["role"], who["db"],
                                                                  t.issued - 600 * 1_000_000))):
        err = psql(f"BEGIN; SET LOCAL encml.tenant = '{tok}'; SELECT encml.current_tenant(); COMMIT;",
                   expect_error=True)
        if "42501" not in err and "tenant token" not in err:
            check(f"a token for {what} is refused", False, err)
    ok("tokens made here for another role, another database, or past their lifetime are refused")

# --- subject export ------------------------------------------------------------------------------
psql(f"""CREATE TABLE interop_customers (id text PRIMARY KEY, email encml.enc_bytea, raw encml.enc_bytea,
  bound encml.enc_bytea, salary encml.ore_int8, tier encml.det_text, visits int);
INSERT INTO interop_customers VALUES ('alice', encml.encrypt('alice@x.org'::text, '{KA}'),
  encml.encrypt('\\xff00'::bytea, '{KA}'), encml.encrypt('bound'::text, '{KA}', 'customers:alice'),
  encml.ore_encrypt(5000, '{KO}'), encml.det_encrypt('gold', '{KD}'), 7),
  ('bob', NULL, NULL, NULL, NULL, NULL, 1);
SELECT encml.register_subject_column('interop_customers', 'id');
SELECT encml.record_consent('alice', 'model_training', true, 'interop');""")
doc = qjson("encml.subject_export('alice')")
subject_export.check(doc)
t = next(t for t in doc["tables"] if t["table"] == "public.interop_customers")
row = t["rows"][0]
check("subject export: layout encml.subject_export/1, one table, one row, consents",
      doc["subject"] == "alice" and t["identifier"] == "plain" and t["identifier_column"] == "id"
      and len(t["rows"]) == 1 and row["id"] == "alice" and row["visits"] == 7
      and [c["purpose"] for c in doc["consents"]] == ["model_training"], json.dumps(doc))
check("decrypted cells: UTF-8 as a string, other bytes as {\"base64\": ...}",
      row["email"] == "alice@x.org" and subject_export.cell_value(row["raw"]) == b"\xff\x00")
check("an AAD-bound value stays encrypted, named by key, and decrypts here with its AAD",
      subject_export.is_undecrypted(row["bound"]) and row["bound"]["key"] == str(KA)
      and enc_bytea.decrypt(r2, b64decode(row["bound"]["encrypted"]), "customers:alice") == b"bound")
check("an ORE cell stays encrypted, named by key, and decrypts here",
      subject_export.is_undecrypted(row["salary"]) and row["salary"]["key"] == str(KO)
      and ore.decrypt(root_of(KO, 1), b64decode(row["salary"]["encrypted"])) == 5000)
check("a det_text cell is decrypted (docs/gdpr.md)", row["tier"] == "gold", json.dumps(row))
check("undecrypted_values counts the encrypted cells",
      t["undecrypted_values"] == sum(subject_export.is_undecrypted(v) for v in row.values()))
print("interop: every format read and written by the outside client agrees with the database")
