"""`dp_state` (version 2, 96 bytes little-endian) and its sealed text form `dp1s:`."""
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import master
from .common import FormatError, hkdf_sha256

LENGTH, VERSION = 96, 2
FLAG_PARAMS, FLAG_DELTA = 1, 2


@dataclass(frozen=True)
class DpState:
    value_type: str      # "f" or "i"
    flags: int
    cached_count: int
    epsilon: float
    delta: float
    lower: float         # float or int by value_type
    upper: float
    cached: bytes        # 32 bytes
    rows: int
    exact_sum: int       # i128

    def encode(self) -> bytes:
        bound = "<d" if self.value_type == "f" else "<q"
        return (bytes([VERSION, ord(self.value_type), self.flags, 0]) + struct.pack("<I", self.cached_count)
                + struct.pack("<dd", self.epsilon, self.delta) + struct.pack(bound, self.lower)
                + struct.pack(bound, self.upper) + self.cached + struct.pack("<q", self.rows)
                + self.exact_sum.to_bytes(16, "little", signed=True))

    def sum_value(self):
        """The exact sum as a number: for float8, exact_sum · 2^−k."""
        if self.value_type == "i":
            return self.exact_sum
        import math
        m = max(abs(self.lower), abs(self.upper))
        if m == 0:
            return 0.0
        e = math.frexp(m)[1] - 1            # binary exponent: m = 1.x · 2^e
        k = min(61 - e, 1023)
        return math.ldexp(self.exact_sum, -k)


def decode(raw: bytes) -> DpState:
    if len(raw) != LENGTH:
        raise FormatError(f"a dp_state is {LENGTH} bytes, not {len(raw)}")
    if raw[0] != VERSION:
        raise FormatError(f"unknown dp_state version {raw[0]}")
    vt = chr(raw[1])
    if vt not in ("f", "i"):
        raise FormatError(f"unknown dp_state value type {raw[1]}")
    if raw[2] & ~(FLAG_PARAMS | FLAG_DELTA):
        raise FormatError("unknown dp_state flags")
    if raw[3] != 0:
        raise FormatError("reserved byte not 0")
    bound = "<d" if vt == "f" else "<q"
    return DpState(vt, raw[2], struct.unpack_from("<I", raw, 4)[0], *struct.unpack_from("<dd", raw, 8),
                   struct.unpack_from(bound, raw, 24)[0], struct.unpack_from(bound, raw, 32)[0],
                   raw[40:72], struct.unpack_from("<q", raw, 72)[0],
                   int.from_bytes(raw[80:96], "little", signed=True))


def _seal_key(master_key: bytes) -> bytes:
    return hkdf_sha256(master_key, b"pg_encrypt_ml/v1/dp-state-seal", 32)


def _aad(fp: str) -> bytes:
    return b"pg_encrypt_ml/v1/dp-state" + fp.encode("ascii")


def parse_text(text: str):
    """("sealed", fingerprint, nonce, body) or ("empty", value_type)."""
    if text in ("dp1:f", "dp1:i"):
        return ("empty", text[-1])
    if not text.startswith("dp1s:"):
        raise FormatError("not a dp_state text")
    parts = text.split(":")
    if len(parts) != 3 or len(parts[1]) != 16:
        raise FormatError("dp1s:<fingerprint 16 hex>:<hex> expected")
    blob = bytes.fromhex(parts[2])
    if len(blob) != 12 + LENGTH + 16:
        raise FormatError("sealed dp_state has the wrong length")
    return ("sealed", parts[1], blob[:12], blob[12:])


def open_text(master_keys, text: str) -> DpState:
    kind, *rest = parse_text(text)
    if kind == "empty":
        raise FormatError("an empty state has no fields")
    fp, nonce, body = rest
    for mk in master_keys:
        if master.fingerprint(mk) == fp:
            return decode(AESGCM(_seal_key(mk)).decrypt(nonce, body, _aad(fp)))
    raise FormatError(f"no master key with fingerprint {fp}")


def seal_raw(master_key: bytes, raw: bytes, nonce: bytes = None) -> str:
    fp = master.fingerprint(master_key)
    nonce = os.urandom(12) if nonce is None else nonce
    return f"dp1s:{fp}:" + (nonce + AESGCM(_seal_key(master_key)).encrypt(nonce, raw, _aad(fp))).hex()


def seal(master_key: bytes, state: DpState, nonce: bytes = None) -> str:
    return seal_raw(master_key, state.encode(), nonce)
