"""Known-answer and round-trip tests of the outside client, without a database.

Three kinds: the vectors docs/formats.md gives; RFC 9180 A.2.1 for the hand-made HPKE; and
tests/interop/vectors.json, values the database (the Rust implementation) produced, captured
with capture_vectors.py together with what decrypts them. The rest are round trips and
tampering checks of formats the database produces only under a master key."""
import datetime
import hashlib
import json
import math
import os
import random
import struct
import uuid

from . import (audit, common, det_text, dp_state, enc_bytea, export_key, fhe_vector, fpe, hpke, jsonb,
               large_object, master, ore, subject_export, tenant_token)
from .common import FormatError, b64decode

VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vectors.json")
ZERO_ID = uuid.UUID(bytes=bytes(16))
CHECKS = []


def check(what, cond):
    if not cond:
        raise AssertionError(what)
    CHECKS.append(what)


def raises(fn, *exc_names):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - cryptography's InvalidTag or our FormatError
        return type(e).__name__ in exc_names or not exc_names
    return False


def docs_vectors():
    check("sub-key KAT (formats.md)", common.subkey(bytes(32), "aead", ZERO_ID, 1).hex()
          == "960ffd4d509273dd911900f83885ceeace516e4bd9743774aaa3b046533ab186")
    kat = enc_bytea.encrypt(bytes(32), ZERO_ID, 1, b"hello", nonce=bytes(12))
    check("enc_bytea KAT (formats.md)", kat.hex() ==
          "454d010100000000000000000000000000000000000000010000000000000000000000002ea44292f5"
          "bca7177009744987c25cf610a1b09349")
    check("enc_bytea KAT decrypts", enc_bytea.decrypt(bytes(32), kat) == b"hello")
    det = det_text.encrypt(bytes(32), ZERO_ID, 1, b"hello")
    check("det_text KAT (formats.md)", det.hex() ==
          "45440102000000000000000000000000000000000000000128982b47574eac6a2c6c5bd1fb6e8022fbf101bd6b")
    check("det_text KAT decrypts", det_text.decrypt(bytes(32), det) == b"hello")


def hpke_vectors():
    # RFC 9180 A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
    # Same KEM and KDF as export_key's suite; only the AEAD id (and so suite_id) differs.
    sk_em = bytes.fromhex("f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600")
    sk_rm = bytes.fromhex("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
    pk_rm = bytes.fromhex("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
    info = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")
    pt = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")
    enc, ss = hpke.encap(pk_rm, sk_em)
    check("HPKE RFC 9180 A.2.1 enc", enc.hex() == "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
    check("HPKE RFC 9180 A.2.1 shared secret",
          ss.hex() == "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7")
    key, nonce = hpke.key_schedule(ss, info, hpke.AEAD_CHACHA20POLY1305)
    check("HPKE RFC 9180 A.2.1 key and base nonce",
          (key.hex(), nonce.hex()) == ("ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
                                       "5c4d98150661b848853b547f"))
    _, ct = hpke.seal(pk_rm, info, pt, bytes.fromhex("436f756e742d30"), hpke.AEAD_CHACHA20POLY1305, sk_em)
    check("HPKE RFC 9180 A.2.1 ciphertext (sequence 0)", ct.hex() ==
          "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28")
    sk_r = hpke.X25519PrivateKey.from_private_bytes(sk_rm)
    check("HPKE open (A.2.1)", hpke.open_(enc, sk_r, info, ct, bytes.fromhex("436f756e742d30"),
                                          hpke.AEAD_CHACHA20POLY1305) == pt)
    # export_key's suite (AES-256-GCM): sealed here, opened here and by cryptography's hpke if present
    root, kid = os.urandom(32), uuid.uuid4()
    blob = export_key.seal_key(root, kid, 3, pk_rm, sk_e=sk_em)
    k = export_key.open_key(blob, sk_r)
    check("export_key round trip", (k.key_id, k.key_version, k.root, len(blob)) == (kid, 3, root, 104))
    lib = hpke.library_open(blob[24:56], sk_r, blob[:24], blob[56:])
    check("cryptography's hpke (if present) opens our export_key", lib in (None, root))
    bad = bytearray(blob)
    bad[20] ^= 1
    check("export_key: the header is HPKE info (changing the version fails)",
          raises(lambda: export_key.open_key(bytes(bad), sk_r), "InvalidTag"))
    check("export_key: wrong magic refused", raises(lambda: export_key.open_key(b"EY" + blob[2:], sk_r), "FormatError"))


def _roots(vec):
    sk = hpke.X25519PrivateKey.from_private_bytes(bytes.fromhex(vec["x25519_private_key"]))
    out = {}
    for name, blob in vec["exported"].items():
        k = export_key.open_key(bytes.fromhex(blob), sk)
        out[name] = k
    return out


def database_vectors():
    """Values the database made (tests/interop/vectors.json)."""
    vec = json.load(open(VECTORS, encoding="utf-8"))
    keys = _roots(vec)
    check("captured exported keys open", all(k.key_version == 1 for k in keys.values()))
    ra, rd, ro = keys["a"].root, keys["d"].root, keys["o"].root
    ka = keys["a"].key_id
    for v in vec["enc_bytea"]:
        c = b64decode(v["value"])
        check("captured enc_bytea decrypts", enc_bytea.decrypt(ra, c, v["aad"]) == v["plaintext"].encode())
        check("captured enc_bytea equals ours with its nonce",
              enc_bytea.encrypt(ra, ka, 1, v["plaintext"].encode(), v["aad"], nonce=c[24:36]) == c)
    dtypes = {"float32": float, "float64": float, "int16": int, "int32": int}
    for v in vec["tensors"]:
        desc, values = enc_bytea.decrypt_tensor(ra, b64decode(v["value"]), "tensor")
        info = v["info"]
        check(f"captured tensor {info['dtype']}{info['shape']} descriptor",
              (desc.dtype, list(desc.shape), list(desc.lower_bounds), desc.element_count)
              == (info["dtype"], info["shape"], info["lower_bounds"], info["element_count"]))
        check(f"captured tensor {info['dtype']} values", values == (v["values"] or []))
        check("tensor values have the dtype's type", all(isinstance(x, dtypes[desc.dtype]) for x in _flat(values)))
        c = b64decode(v["value"])
        check(f"captured tensor {info['dtype']} equals ours with its nonce", enc_bytea.encrypt_tensor(
            ra, ka, 1, list(_flat(values)), desc.shape, desc.dtype, "tensor", desc.lower_bounds,
            nonce=enc_bytea.parse(c).nonce) == c)
    j = vec["jsonb"]
    dec = jsonb.decrypt_document(j["value"], lambda kid, ver: ra, j["aad"])
    check("captured encrypted jsonb decrypts (nested values, path AAD)",
          json.loads(json.dumps(dec, default=float)) == j["plaintext"])
    check("captured jsonb value under another row's AAD fails",
          raises(lambda: jsonb.decrypt_document(j["value"], lambda kid, ver: ra, "doc:8"), "InvalidTag"))
    for v in vec["det_text"]:
        c = b64decode(v["value"])
        check("captured det_text decrypts and equals ours", det_text.decrypt(rd, c) == v["plaintext"].encode()
              and det_text.encrypt(rd, keys["d"].key_id, 1, v["plaintext"].encode()) == c)
    for v in vec["ore"]:
        c = b64decode(v["value"])
        x = v["plaintext"]
        x = float(x) if v["domain"] == "float8" else \
            datetime.datetime.fromisoformat(x) if v["domain"] == "timestamptz" else x
        got = ore.decrypt(ro, c)
        check(f"captured ORE {v['domain']} decrypts", got == x or (isinstance(x, float) and math.isnan(x) and math.isnan(got)))
        check(f"captured ORE {v['domain']} equals ours", ore.encrypt(ro, keys["o"].key_id, 1, v["domain"], x) == c)
    kf = keys["f"]
    for v in vec["fpe"]:
        check("captured fpe_encrypt value equals ours and decrypts",
              fpe.encrypt(kf.root, kf.key_id, 1, v["plaintext"], v["alphabet"], v["tweak"]) == v["value"]
              and fpe.decrypt(kf.root, kf.key_id, 1, v["value"], v["alphabet"], v["tweak"]) == v["plaintext"])
    lo = bytes.fromhex(vec["large_object"]["value"])
    check("captured encrypted large object decrypts", large_object.decrypt(ra, lo) == bytes(range(256)) * 11)
    h = large_object.parse_header(lo)
    check("captured encrypted large object equals ours with its salt", large_object.encrypt(
        ra, ka, 1, bytes(range(256)) * 11, h.chunk_size, h.salt) == lo)
    f = vec["fhe_vector_header"]
    h = fhe_vector.parse_header(bytes.fromhex(f["header"]), check_length=False)
    check("captured fhe_vector header", (str(h.key_set_id), h.version, h.dim, h.terms, h.value_bits, h.frac_bits,
                                         h.message_bits, h.words) ==
          (f["keyset"], 1, f["dim"], f["terms"], f["value_bits"], f["frac_bits"], f["message_bits"], 2048 + 2))
    a = vec["audit"]
    rows = [audit.Row.from_text(r) for r in a["rows"]]
    chain = {k: bytes.fromhex(v) for k, v in a["chain_keys"].items()}
    res = audit.verify_chain(rows, chain, start_seq=1)
    check(f"captured audit chain verifies ({len(rows)} rows)", res.ok and len(rows) >= 3)
    rows[1].values["effective_role"] += "x"
    check("an edited captured audit row fails at that row",
          audit.verify_chain(rows, chain, start_seq=1).first_bad_id == rows[1].values["id"])


def _flat(x):
    if isinstance(x, list):
        for y in x:
            yield from _flat(y)
    else:
        yield x


def fpe_vectors():
    # NIST SP 800-38G FF1 samples 7, 8 and 9 (AES-256)
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94")
    b36 = "0123456789abcdefghijklmnopqrstuvwxyz"
    for tweak, radix, x, y in (("", 10, "0123456789", "6657667009"),
                               ("39383736353433323130", 10, "0123456789", "1001623463"),
                               ("3737373770717273373737", 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd")):
        t = bytes.fromhex(tweak)
        got = "".join(b36[i] for i in fpe.ff1_encrypt(key, t, radix, [b36.index(c) for c in x]))
        back = "".join(b36[i] for i in fpe.ff1_decrypt(key, t, radix, [b36.index(c) for c in y]))
        check(f"FF1 NIST sample (radix {radix})", (got, back) == (y, x))
    check("FPE refuses a domain below a million", raises(
        lambda: fpe.encrypt(bytes(32), ZERO_ID, 1, "12345"), "FormatError"))


def round_trips():
    root, kid = os.urandom(32), uuid.uuid4()
    for n in (0, 1, 64, 100_000):
        pt = os.urandom(n)
        check("enc_bytea round trip", enc_bytea.decrypt(root, enc_bytea.encrypt(root, kid, 7, pt, "ctx"), "ctx") == pt)
    check("enc_bytea wrong AAD fails",
          raises(lambda: enc_bytea.decrypt(root, enc_bytea.encrypt(root, kid, 7, b"x", "row 1"), "row 2"), "InvalidTag"))
    check("NULL and empty AAD are the same", enc_bytea.decrypt(root, enc_bytea.encrypt(root, kid, 1, b"x", None), "") == b"x")
    v = bytearray(enc_bytea.encrypt(root, kid, 1, b"x"))
    v[3] = 4
    check("changing the algorithm byte fails", raises(lambda: enc_bytea.decrypt(root, bytes(v))))
    check("det_text is deterministic", det_text.encrypt(root, kid, 3, b"x@y") == det_text.encrypt(root, kid, 3, b"x@y"))
    # tensors
    t = enc_bytea.encrypt_tensor(root, kid, 1, [1, -2, 3, 4, 5, 6], (3, 2), "int16", "aad", (0, 5))
    desc, vals = enc_bytea.decrypt_tensor(root, t, "aad")
    check("tensor round trip", (desc.shape, desc.lower_bounds, vals) == ((3, 2), (0, 5), [[1, -2], [3, 4], [5, 6]]))
    check("tensor overhead is 58 + 8 ndim", len(t) == 58 + 16 + 12)
    d = bytearray(t)
    d[28] = 4   # the clear descriptor (byte 26 + 2: dtype) claims int32: authenticated, so it fails
    check("a changed descriptor does not decrypt", raises(lambda: enc_bytea.decrypt_tensor(root, bytes(d), "aad")))
    d = bytearray(t)
    d[26 + 7] = 4   # first dimension's length 3 -> 4: the plaintext no longer matches
    check("a descriptor that does not match the values is refused",
          raises(lambda: enc_bytea.decrypt_tensor(root, bytes(d), "aad")))
    empty = enc_bytea.encrypt_tensor(root, kid, 1, [], (), "float64")
    check("empty tensor", enc_bytea.decrypt_tensor(root, empty)[1] == [] and len(empty) == 58)
    # jsonb
    s = jsonb.encrypt_value(root, kid, 1, {"a": [1, "b"]}, ["x", 2, "y"], "row")
    check("jsonb value round trip", jsonb.decrypt_value(root, s, ["x", 2, "y"], "row") == {"a": [1, "b"]})
    check("jsonb value at another index fails", raises(lambda: jsonb.decrypt_value(root, s, ["x", 1, "y"], "row")))
    check("jsonb path AAD encoding", jsonb.path_aad(["ab", 2], "r") ==
          b"pg_encrypt_ml/v1/json-path\0" + b"k\0\0\0\2ab" + b"i" + struct.pack(">Q", 2) + b"\0r")
    check("a string with the prefix that is no ciphertext is refused",
          raises(lambda: jsonb.decode_value("encml:v1:notbase64!"), "FormatError"))


def ore_tests():
    root, kid = os.urandom(32), uuid.uuid4()
    rng = random.Random(7)
    ints = [rng.randrange(-2 ** 63, 2 ** 63) for _ in range(40)] + [-2 ** 63, 2 ** 63 - 1, 0, -1, 1]
    cts = [ore.encrypt(root, kid, 1, "int8", x) for x in ints]
    check("ORE int8 decrypts", [ore.decrypt(root, c) for c in cts] == ints)
    check("ORE int8 compares as plaintext", all(
        ore.compare(cts[i], cts[j]) == (ints[i] > ints[j]) - (ints[i] < ints[j])
        for i in range(len(ints)) for j in range(len(ints))))
    floats = [-math.inf, -1e300, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, 1e300, math.inf, math.nan]
    fc = [ore.encrypt(root, kid, 1, "float8", x) for x in floats]
    check("ORE float8 order (-0 = +0, NaN above everything)", [ore.compare(fc[i], fc[i + 1]) for i in range(10)]
          == [-1, -1, -1, -1, 0, -1, -1, -1, -1, -1] and ore.compare(fc[10], fc[10]) == 0)
    check("ORE float8 decrypts", [ore.decrypt(root, c) for c in fc[:10]] == [x + 0.0 for x in floats[:10]]
          and math.isnan(ore.decrypt(root, fc[10])))
    ts = [datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc),
          datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc), "infinity"]
    tc = [ore.encrypt(root, kid, 1, "timestamptz", x) for x in ts]
    check("ORE timestamptz: Postgres's microseconds since 2000", ore.timestamptz_to_pg(ts[0]) == -1
          and [ore.decrypt(root, c) for c in tc] == ts and ore.compare(tc[0], tc[1]) == -1 and ore.compare(tc[2], tc[1]) == 1)
    check("ORE trit packing: trit 0 is the top two bits of byte 25",
          ore.pack_trits([2] + [0] * 63)[0] == 0x80 and ore.pack_trits([0, 0, 0, 1] + [0] * 60)[0] == 0x01)
    c = bytearray(cts[0])
    c[25] |= 0xC0   # trit 0 = 3
    check("ORE: the bit pattern 11 is refused", raises(lambda: ore.parse(bytes(c)), "FormatError"))
    c = bytearray(cts[0])
    c[-1] ^= 1
    check("ORE: a changed MAC fails", not ore.verify_mac(root, bytes(c)) and raises(lambda: ore.decrypt(root, bytes(c))))
    # valid MAC over trits that are no encryption: the decryption check refuses them
    prf_key, mac_key = ore._keys(root, kid, 1)
    body = bytearray(cts[0][:41])
    trits = ore.unpack_trits(body[25:41])
    prf0 = ore._prf_trits(prf_key)(0, 0)
    trits[0] = (prf0 + 2) % 3
    body[25:41] = ore.pack_trits(trits)
    import hmac as _h
    forged = bytes(body) + _h.new(mac_key, bytes(body), hashlib.sha256).digest()[:16]
    check("ORE: trits with a valid MAC that encrypt no bit are refused on decryption",
          ore.verify_mac(root, forged) and raises(lambda: ore.decrypt(root, forged), "FormatError"))
    other = uuid.UUID(int=kid.int ^ (1 << 127))
    oc = ore.encrypt(root, other, 1, "int8", -2 ** 63)
    check("ORE: different keys order by key id", ore.compare(oc, cts[0]) == (-1 if other.bytes < kid.bytes else 1))
    v2 = ore.encrypt(root, kid, 2, "int8", -2 ** 63)
    check("ORE: then by key version", ore.compare(ore.encrypt(root, kid, 1, "int8", 2 ** 63 - 1), v2) == -1)


def master_formats():
    mk = bytes(range(32))
    text = "# current first\n\n" + mk.hex() + "\n" + bytes(32).hex().upper() + "\n"
    keys = master.parse_provider_output(text)
    check("provider output: comments and blank lines ignored, current first", keys == [mk, bytes(32)])
    check("provider output: a short line is refused", raises(lambda: master.parse_provider_output("abcd"), "FormatError"))
    fp = master.fingerprint(mk)
    check("fingerprint is 16 hex", len(fp) == 16 and int(fp, 16) >= 0)
    root, kid = os.urandom(32), uuid.uuid4()
    w = master.wrap(mk, root, kid.bytes, 2, os.urandom(12))
    check("wrapped key round trip", len(w) == 61 and master.unwrap_data_key(mk, w, kid, 2) == root)
    check("a wrapped key on another row does not unwrap", raises(lambda: master.unwrap_data_key(mk, w, kid, 3), "InvalidTag"))
    check("service key ids", master.service_key_id("audit-chain") ==
          hashlib.sha256(b"pg_encrypt_ml/v1/service-key/audit-chain").digest()[:16])
    # tenant tokens
    tok = tenant_token.make(mk, "acme ü", "app", "db1", issued=1_700_000_000_000_000)
    parts = tok.split(".")
    check("tenant token layout", parts[:2] == ["encml-tenant", "v1"] and parts[3] == "1700000000000000"
          and parts[4] == fp and "=" not in tok and len(common.b64url_nopad_decode(parts[5])) == 16)
    t = tenant_token.verify(mk, tok + "#123#1700000300000000", "app", "db1")
    check("tenant token verifies (with a node's #xid#expiry suffix)", t.tenant == "acme ü")
    check("tenant token for another role fails", raises(lambda: tenant_token.verify(mk, tok, "other", "db1"), "FormatError"))
    check("tenant token with another issue time fails", raises(
        lambda: tenant_token.verify(mk, tok.replace("1700000000000000", "1700000000000001"), "app", "db1"), "FormatError"))
    # dp_state
    st = dp_state.DpState("f", 3, 0, 0.5, 1e-6, -2.0, 10.0, bytes(32), 4, -(1 << 100))
    raw = st.encode()
    check("dp_state is 96 bytes, version 2", len(raw) == 96 and raw[0] == 2 and raw[1] == ord("f"))
    check("dp_state round trip", dp_state.decode(raw) == st)
    s = dp_state.seal(mk, st)
    check("sealed dp_state text", s.startswith(f"dp1s:{fp}:") and len(s) == 5 + 16 + 1 + 2 * (12 + 96 + 16))
    check("sealed dp_state opens", dp_state.open_text([bytes(32), mk], s) == st)
    bad = s[:-1] + ("0" if s[-1] != "0" else "1")
    check("a changed seal fails", raises(lambda: dp_state.open_text([mk], bad), "InvalidTag"))
    check("version 1 refused", raises(lambda: dp_state.decode(b"\x01" + raw[1:]), "FormatError"))
    check("empty states", dp_state.parse_text("dp1:i") == ("empty", "i"))
    check("plain dp1: hex is not a state", raises(lambda: dp_state.parse_text("dp1:" + raw.hex()), "FormatError"))
    st_i = dp_state.DpState("i", 1, 0, 1.0, 0.0, -5, 2 ** 62, bytes(32), 2, 2 ** 70)
    check("dp_state bigint bounds and i128 sum", dp_state.decode(st_i.encode()) == st_i and st_i.sum_value() == 2 ** 70)
    check("float sum: exact_sum * 2^-k, k = 61 - e (M = 10: e = 3)", st.sum_value() == -(1 << 100) * 2.0 ** -58)


def lo_tests():
    root, kid = os.urandom(32), uuid.uuid4()
    for n in (0, 1, 1024, 1025, 5000):
        pt = os.urandom(n)
        c = large_object.encrypt(root, kid, 1, pt, 1024)
        check("large object round trip", large_object.decrypt(root, c) == pt and
              len(c) == 56 + n + 16 * max(1, math.ceil(n / 1024)))
    pt = os.urandom(3000)
    c = large_object.encrypt(root, kid, 1, pt, 1024)
    swapped = c[:56] + c[56 + 1040:56 + 2080] + c[56:56 + 1040] + c[56 + 2080:]
    check("swapped chunks fail", raises(lambda: large_object.decrypt(root, swapped), "InvalidTag"))
    cut = bytearray(c[:56 + 2080])
    cut[28:36] = struct.pack(">Q", 2048)
    check("a removed tail fails (last-chunk flag)", raises(lambda: large_object.decrypt(root, bytes(cut)), "InvalidTag"))


def fhe_tests():
    """Synthetic secret-key LWE encryptions in the documented layout decrypt as documented."""
    rng = random.Random(3)
    n, mod = fhe_vector.N, 1 << 64
    s = [rng.randrange(2) for _ in range(n)]
    two_mu = [rng.randrange(-2 ** 30, 2 ** 30) for _ in range(n)]
    ks = uuid.uuid4()
    sk_file = b"EKS\x02" + ks.bytes + struct.pack("<I", n) + struct.pack(f"<{n}Q", *s) + \
        struct.pack(f"<{n}Q", *[x % mod for x in two_mu])
    sk = fhe_vector.parse_secret_key(sk_file)
    check("secret.key parses (signed bias words)", sk.s == s and sk.two_mu == two_mu)

    def build(version, values, terms, value_bits, frac_bits, message_bits, chunk_log2):
        chunk = 2048 if version == 1 else 1 << chunk_log2
        dim = len(values)
        chunks = math.ceil(dim / chunk)
        delta = 1 << (64 - message_bits)
        masks = [[rng.randrange(mod) for _ in range(n)] for _ in range(chunks)]
        bodies = []
        for j, x in enumerate(values):
            c, t = divmod(j, chunk)
            a = masks[c]
            dot = sum((a[k - t] if k >= t else -a[n - t + k]) for k in range(n) if s[k])
            bias = (terms * two_mu[t]) // 2 if version == 2 else 0
            m = round(x * (1 << frac_bits))
            bodies.append((dot + bias + m * delta + rng.randrange(-2 ** 20, 2 ** 20)) % mod)
        head = b"EV" + bytes([version, 0]) + ks.bytes + struct.pack("<IQ", dim, terms) + \
            bytes([value_bits, frac_bits, message_bits, chunk_log2 if version == 2 else 0])
        body = b"".join(struct.pack(f"<{n}Q", *m) for m in masks) + struct.pack(f"<{dim}Q", *bodies)
        crc = fhe_vector.crc_of(head + bytes(4) + body)
        return head + struct.pack("<I", crc) + body

    v1 = build(1, [1.5, -2.25, 0.0, 100.125], 1, 16, 8, 20, 0)
    h, vals = fhe_vector.decrypt(v1, sk)
    check("fhe_vector v1 header and values", (h.version, h.dim, h.words, vals) == (1, 4, 2052, [1.5, -2.25, 0.0, 100.125]))
    vals = [0.5 * i - 40 for i in range(70)]
    v2 = build(2, vals, 3, 16, 4, 24, 6)   # chunks of 64: two masks, the second at position 64..69
    h, got = fhe_vector.decrypt(v2, sk)
    check("fhe_vector v2 (chunks of 64, bias terms * mu)", (h.chunk, h.chunks, got) == (64, 2, vals))
    bad = bytearray(v1)
    bad[50] ^= 1
    check("fhe_vector CRC", raises(lambda: fhe_vector.parse_header(bytes(bad)), "FormatError"))
    check("fhe_vector version 3 refused", raises(lambda: fhe_vector.parse_header(v1[:2] + b"\x03" + v1[3:]), "FormatError"))


def subject_export_tests():
    doc = {"format": "encml.subject_export/1", "export_id": str(uuid.uuid4()), "subject": "alice",
           "exported_at": "2024-01-01 00:00:00+00", "exported_by": "dpo_jane",
           "tables": [{"table": "public.users", "identifier_column": "user_id", "identifier": "plain",
                       "rows": [{"user_id": "alice", "email": "alice@example.org", "raw": {"base64": "/wA="},
                                 "s": {"encrypted": "RU8B", "key": None, "reason": "r"}}],
                       "undecrypted_values": 1}],
           "skipped": [{"table": "public.payments", "identifier_column": "customer_no",
                        "reason": "the caller may not read the table"}, {"consents": True, "reason": "x"}],
           "consents": [{"purpose": "model_training", "granted": True, "source": "signup form v3",
                         "recorded_by": "app", "recorded_at": "…"}]}
    check("subject export layout", subject_export.check(doc) is doc)
    check("base64 cells", subject_export.cell_value(doc["tables"][0]["rows"][0]["raw"]) == b"\xff\x00")
    check("unknown format refused", raises(lambda: subject_export.check(dict(doc, format="encml.subject_export/2")),
                                           "FormatError"))
    check("a missing field refused", raises(lambda: subject_export.check({k: v for k, v in doc.items() if k != "tables"}),
                                            "FormatError"))


def run() -> int:
    docs_vectors()
    hpke_vectors()
    fpe_vectors()
    database_vectors()
    round_trips()
    ore_tests()
    master_formats()
    lo_tests()
    fhe_tests()
    subject_export_tests()
    return len(CHECKS)
