"""`enc_bytea`: AES-256-GCM values, plain (algorithm 1) and described (algorithm 4, tensors)."""
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .common import (ALG_AES_GCM, ALG_AES_GCM_DESCRIBED, HEADER_LEN, FormatError, Header, subkey)

MAGIC = b"EM"
NONCE_LEN, TAG_LEN = 12, 16


def _aad(aad) -> bytes:
    if aad is None:
        return b""
    return aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)


@dataclass(frozen=True)
class Parsed:
    header: Header
    descriptor: bytes   # b"" for algorithm 1
    associated: bytes   # what the GCM tag covers before the caller's AAD
    nonce: bytes
    body: bytes         # ciphertext || tag


def parse(value: bytes) -> Parsed:
    h = Header.parse(value, MAGIC, (ALG_AES_GCM, ALG_AES_GCM_DESCRIBED))
    if h.algorithm == ALG_AES_GCM:
        if len(value) < HEADER_LEN + NONCE_LEN + TAG_LEN:
            raise FormatError("enc_bytea too short")
        return Parsed(h, b"", value[:HEADER_LEN], value[24:36], value[36:])
    if len(value) < HEADER_LEN + 2:
        raise FormatError("described enc_bytea too short")
    (d,) = struct.unpack(">H", value[24:26])
    start = 26 + d
    if len(value) < start + NONCE_LEN + TAG_LEN:
        raise FormatError("described enc_bytea too short for its descriptor")
    return Parsed(h, value[26:start], value[:start], value[start:start + 12], value[start + 12:])


def encrypt(root: bytes, key_id: uuid.UUID, version: int, plaintext: bytes, aad=None,
            nonce: bytes = None, descriptor: bytes = None) -> bytes:
    """A plain value, or with `descriptor` a described one (algorithm 4)."""
    if descriptor is None:
        prefix = Header.build(MAGIC, ALG_AES_GCM, key_id, version)
    else:
        prefix = Header.build(MAGIC, ALG_AES_GCM_DESCRIBED, key_id, version) + \
            struct.pack(">H", len(descriptor)) + descriptor
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    body = AESGCM(subkey(root, "aead", key_id, version)).encrypt(nonce, plaintext, prefix + _aad(aad))
    return prefix + nonce + body


def decrypt(root: bytes, value: bytes, aad=None) -> bytes:
    """The plaintext (for a tensor: the packed values). `root` is the key version's root."""
    p = parse(value)
    key = subkey(root, "aead", p.header.key_id, p.header.key_version)
    return AESGCM(key).decrypt(p.nonce, p.body, p.associated + _aad(aad))


# --- tensors (descriptor type 1) ---------------------------------------------------------------

DTYPES = {1: ("float32", "<f", 4), 2: ("float64", "<d", 8), 3: ("int16", "<h", 2), 4: ("int32", "<i", 4)}
DTYPE_CODES = {name: code for code, (name, _, _) in DTYPES.items()}


@dataclass(frozen=True)
class TensorDescriptor:
    dtype: str
    shape: tuple
    lower_bounds: tuple

    @property
    def element_count(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n if self.shape else 0

    def encode(self) -> bytes:
        out = bytes([1, 1, DTYPE_CODES[self.dtype], len(self.shape)])
        for length, lb in zip(self.shape, self.lower_bounds):
            out += struct.pack(">Ii", length, lb)
        return out

    @classmethod
    def decode(cls, d: bytes) -> "TensorDescriptor":
        if len(d) < 4:
            raise FormatError("tensor descriptor too short")
        if d[0] != 1:
            raise FormatError(f"descriptor type {d[0]} is not a tensor")
        if d[1] != 1:
            raise FormatError(f"unknown tensor descriptor version {d[1]}")
        if d[2] not in DTYPES:
            raise FormatError(f"unknown dtype {d[2]}")
        ndim = d[3]
        if len(d) != 4 + 8 * ndim:
            raise FormatError("tensor descriptor length does not match ndim")
        dims = [struct.unpack(">Ii", d[4 + 8 * i:12 + 8 * i]) for i in range(ndim)]
        return cls(DTYPES[d[2]][0], tuple(x[0] for x in dims), tuple(x[1] for x in dims))


def tensor_info(value: bytes) -> TensorDescriptor:
    """The clear descriptor (unauthenticated until the value is decrypted)."""
    p = parse(value)
    if p.header.algorithm != ALG_AES_GCM_DESCRIBED:
        raise FormatError("not a described enc_bytea")
    return TensorDescriptor.decode(p.descriptor)


def _nest(flat, shape):
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def decrypt_tensor(root: bytes, value: bytes, aad=None):
    """(descriptor, nested lists of numbers in row-major order)."""
    desc = tensor_info(value)
    packed = decrypt(root, value, aad)
    _, fmt, size = DTYPES[DTYPE_CODES[desc.dtype]]
    if len(packed) != desc.element_count * size:
        raise FormatError("tensor plaintext length does not match its descriptor")
    flat = [struct.unpack_from(fmt, packed, i * size)[0] for i in range(desc.element_count)]
    return desc, _nest(flat, desc.shape)


def encrypt_tensor(root: bytes, key_id: uuid.UUID, version: int, values, shape, dtype: str,
                   aad=None, lower_bounds=None, nonce: bytes = None) -> bytes:
    """`values` flat in row-major order."""
    lower_bounds = tuple(lower_bounds or (1,) * len(shape))
    desc = TensorDescriptor(dtype, tuple(shape), lower_bounds)
    _, fmt, _ = DTYPES[DTYPE_CODES[dtype]]
    if len(values) != desc.element_count:
        raise ValueError("values do not fill the shape")
    packed = b"".join(struct.pack(fmt, v) for v in values)
    return encrypt(root, key_id, version, packed, aad, nonce, desc.encode())
