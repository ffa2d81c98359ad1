"""`ore_int8`, `ore_float8`, `ore_timestamptz`: CLWW ORE with an HMAC-SHA256 tag."""
import datetime
import hashlib
import hmac
import math
import struct
import uuid

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .common import ALG_ORE, FormatError, Header, subkey

MAGIC = b"EO"
LENGTH = 57
DOMAINS = {1: "int8", 2: "float8", 3: "timestamptz"}
DOMAIN_CODES = {v: k for k, v in DOMAINS.items()}
PG_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
TOP = 1 << 63
MASK = (1 << 64) - 1


# --- the order-preserving map to a u64 message ------------------------------------------------

def map_int8(x: int) -> int:
    if not INT64_MIN <= x <= INT64_MAX:
        raise ValueError("out of bigint range")
    return (x & MASK) ^ TOP


def unmap_int8(m: int) -> int:
    x = m ^ TOP
    return x - (1 << 64) if x >= TOP else x


def map_float8(x: float) -> int:
    if math.isnan(x):
        bits = 0x7ff8000000000000
    else:
        if x == 0.0:
            x = 0.0
        (bits,) = struct.unpack(">Q", struct.pack(">d", x))
    return bits ^ TOP if bits & TOP == 0 else (~bits) & MASK


def unmap_float8(m: int) -> float:
    bits = m ^ TOP if m & TOP else (~m) & MASK
    return struct.unpack(">d", struct.pack(">Q", bits))[0]


def timestamptz_to_pg(ts) -> int:
    """Postgres's integer: microseconds since 2000-01-01 UTC (±infinity as the int64 bounds)."""
    if ts == "infinity":
        return INT64_MAX
    if ts == "-infinity":
        return INT64_MIN
    d = ts - PG_EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def pg_to_timestamptz(us: int):
    if us == INT64_MAX:
        return "infinity"
    if us == INT64_MIN:
        return "-infinity"
    return PG_EPOCH + datetime.timedelta(microseconds=us)


def to_message(domain: str, value) -> int:
    if domain == "int8":
        return map_int8(value)
    if domain == "float8":
        return map_float8(value)
    if domain == "timestamptz":
        return map_int8(value if isinstance(value, int) else timestamptz_to_pg(value))
    raise ValueError(domain)


def from_message(domain: str, m: int):
    if domain == "int8":
        return unmap_int8(m)
    if domain == "float8":
        return unmap_float8(m)
    return pg_to_timestamptz(unmap_int8(m))


# --- trits -------------------------------------------------------------------------------------

def _prf_trits(prf_key: bytes):
    enc = Cipher(algorithms.AES(prf_key), modes.ECB()).encryptor()

    def prf(i: int, prefix: int) -> int:
        block = bytes([i]) + bytes(7) + struct.pack(">Q", prefix)
        return int.from_bytes(enc.update(block)[:8], "big") % 3
    return prf


def _prefix(m: int, i: int) -> int:
    return 0 if i == 0 else m >> (64 - i)


def pack_trits(trits) -> bytes:
    out = bytearray(16)
    for i, t in enumerate(trits):
        k = i % 4
        out[i // 4] |= t << (6 - 2 * k)
    return bytes(out)


def unpack_trits(data: bytes):
    trits = []
    for i in range(64):
        k = i % 4
        t = (data[i // 4] >> (6 - 2 * k)) & 3
        if t == 3:
            raise FormatError(f"trit {i} has the bit pattern 11")
        trits.append(t)
    return trits


def _keys(root: bytes, key_id: uuid.UUID, version: int):
    sk = subkey(root, "ore", key_id, version)
    return sk[:32], sk[32:]


def encrypt(root: bytes, key_id: uuid.UUID, version: int, domain: str, value) -> bytes:
    prf_key, mac_key = _keys(root, key_id, version)
    prf = _prf_trits(prf_key)
    m = to_message(domain, value)
    trits = [(prf(i, _prefix(m, i)) + ((m >> (63 - i)) & 1)) % 3 for i in range(64)]
    body = Header.build(MAGIC, ALG_ORE, key_id, version) + bytes([DOMAIN_CODES[domain]]) + pack_trits(trits)
    return body + hmac.new(mac_key, body, hashlib.sha256).digest()[:16]


def parse(value: bytes):
    """(header, domain name, trits); structure only."""
    h = Header.parse(value, MAGIC, (ALG_ORE,))
    if len(value) != LENGTH:
        raise FormatError(f"an ORE value is {LENGTH} bytes, not {len(value)}")
    if value[24] not in DOMAINS:
        raise FormatError(f"unknown ORE domain {value[24]}")
    return h, DOMAINS[value[24]], unpack_trits(value[25:41])


def verify_mac(root: bytes, value: bytes) -> bool:
    h, _, _ = parse(value)
    _, mac_key = _keys(root, h.key_id, h.key_version)
    return hmac.compare_digest(hmac.new(mac_key, value[:41], hashlib.sha256).digest()[:16], value[41:57])


def decrypt(root: bytes, value: bytes):
    """The plaintext, after the MAC and the trit-by-trit check."""
    if not verify_mac(root, value):
        raise FormatError("ORE MAC does not verify")
    h, domain, trits = parse(value)
    prf_key, _ = _keys(root, h.key_id, h.key_version)
    prf = _prf_trits(prf_key)
    m = 0
    for i, t in enumerate(trits):
        bit = (t - prf(i, m if i else 0)) % 3   # m holds the i bits decoded so far
        if bit > 1:
            raise FormatError(f"trit {i} is not the key's encryption of any bit")
        m = (m << 1) | bit
    return from_message(domain, m)


def compare(a: bytes, b: bytes) -> int:
    """-1, 0, 1 without a key: by key id, key version, then the first differing trit."""
    ha, da, ta = parse(a)
    hb, db, tb = parse(b)
    if da != db:
        raise FormatError("different ORE domains")
    ka, kb = (ha.key_id.bytes, ha.key_version), (hb.key_id.bytes, hb.key_version)
    if ka != kb:
        return -1 if ka < kb else 1
    for u, v in zip(ta, tb):
        if u != v:
            return -1 if v == (u + 1) % 3 else 1
    return 0
