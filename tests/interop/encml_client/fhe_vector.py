"""`fhe_vector` header (little-endian, CRC-32), key files, and value decryption (docs/formats.md)."""
import math
import struct
import uuid
import zlib
from dataclasses import dataclass

from .common import FormatError

MAGIC = b"EV"
HEADER_LEN = 40
N = 2048
MOD = 1 << 64


@dataclass(frozen=True)
class VectorHeader:
    version: int
    key_set_id: uuid.UUID
    dim: int
    terms: int
    value_bits: int
    frac_bits: int
    message_bits: int
    chunk_log2: int
    crc: int

    @property
    def chunk(self) -> int:
        return 2048 if self.version == 1 else 1 << self.chunk_log2

    @property
    def chunks(self) -> int:
        return math.ceil(self.dim / self.chunk)

    @property
    def words(self) -> int:
        return self.chunks * N + self.dim


def crc_of(value: bytes) -> int:
    """CRC-32 of every byte but the CRC field itself (bytes 36..40)."""
    return zlib.crc32(value[:36] + value[40:])


def parse_header(value: bytes, check_length: bool = True) -> VectorHeader:
    if len(value) < HEADER_LEN:
        raise FormatError("shorter than an fhe_vector header")
    if value[:2] != MAGIC:
        raise FormatError("not an fhe_vector (magic)")
    version = value[2]
    if version not in (1, 2):
        raise FormatError(f"unknown fhe_vector version {version}")
    if value[3] != 0:
        raise FormatError("reserved byte not 0")
    dim, terms = struct.unpack_from("<IQ", value, 20)
    vb, fb, mb, cl = value[32:36]
    (crc,) = struct.unpack_from("<I", value, 36)
    if version == 1 and cl != 0:
        raise FormatError("version 1 has 0 at byte 35")
    if version == 2 and not 6 <= cl <= 11:
        raise FormatError("chunk_log2 out of 6..11")
    h = VectorHeader(version, uuid.UUID(bytes=value[4:20]), dim, terms, vb, fb, mb, cl, crc)
    if check_length:
        if len(value) != HEADER_LEN + 8 * h.words:
            raise FormatError(f"length {len(value)}, expected {HEADER_LEN + 8 * h.words}")
        if crc_of(value) != crc:
            raise FormatError("CRC-32 mismatch")
    return h


def words(value: bytes):
    h = parse_header(value)
    return h, list(struct.unpack_from(f"<{h.words}Q", value, HEADER_LEN))


@dataclass(frozen=True)
class SecretKey:
    key_set_id: uuid.UUID
    s: list           # n binary coefficients
    two_mu: list      # n words (None for version 0x01 files)


def parse_secret_key(data: bytes) -> SecretKey:
    if data[:3] != b"EKS" or data[3] not in (1, 2):
        raise FormatError("not a secret.key")
    (n,) = struct.unpack_from("<I", data, 20)
    if n != N:
        raise FormatError(f"n = {n}, expected {N}")
    count = n * (2 if data[3] == 2 else 1)
    if len(data) != 24 + 8 * count:
        raise FormatError("secret.key length")
    w = struct.unpack_from(f"<{count}Q", data, 24)
    # 2μ words are signed 64-bit (i64)
    two_mu = [x - MOD if x >= MOD // 2 else x for x in w[n:]] if data[3] == 2 else None
    return SecretKey(uuid.UUID(bytes=data[4:20]), list(w[:n]), two_mu)


def decrypt(value: bytes, sk: SecretKey):
    """Each value: round((body − <mask·X^t, s> − bias) / 2^(64 − message_bits)) / 2^frac_bits."""
    h, w = words(value)
    if h.key_set_id != sk.key_set_id:
        raise FormatError("not under this key set")
    if h.version == 2 and sk.two_mu is None:
        raise FormatError("a version-2 vector needs the bias words (secret key version 0x02)")
    delta = 1 << (64 - h.message_bits)
    ones = [k for k in range(N) if sk.s[k]]
    out = []
    for j in range(h.dim):
        c, t = divmod(j, h.chunk)
        a = w[c * N:(c + 1) * N]
        body = w[h.chunks * N + j]
        # <a·X^t, s>: word k is a[k − t] for k ≥ t, −a[n − t + k] for k < t
        dot = 0
        for k in ones:
            dot += a[k - t] if k >= t else -a[N - t + k]
        bias = (h.terms * sk.two_mu[t]) // 2 if h.version == 2 else 0
        phase = (body - dot - bias) % MOD
        if phase >= MOD // 2:
            phase -= MOD
        m = (2 * phase + delta) // (2 * delta)      # round half up
        out.append(m / (1 << h.frac_bits))
    return h, out
