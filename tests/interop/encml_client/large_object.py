"""Encrypted large objects (`lo_encrypt`), format version 1: STREAM over AES-256-GCM."""
import math
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .common import FormatError, hkdf_sha256, subkey

MAGIC = b"EL"
HEADER_LEN = 56


@dataclass(frozen=True)
class LoHeader:
    key_id: uuid.UUID
    key_version: int
    chunk_size: int
    length: int
    salt: bytes
    raw: bytes

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(self.length / self.chunk_size))


def parse_header(data: bytes) -> LoHeader:
    if len(data) < HEADER_LEN or data[:2] != MAGIC:
        raise FormatError("not an encrypted large object")
    if data[2] != 1 or data[3] != 1:
        raise FormatError("unknown version or algorithm")
    c, length = struct.unpack_from(">IQ", data, 24)
    if not 1024 <= c <= 64 << 20:
        raise FormatError("chunk size out of range")
    if data[52:56] != bytes(4):
        raise FormatError("reserved bytes not zero")
    return LoHeader(uuid.UUID(bytes=data[4:20]), struct.unpack_from(">I", data, 20)[0], c, length,
                    data[36:52], data[:HEADER_LEN])


def _object_key(root: bytes, h: LoHeader) -> bytes:
    s = subkey(root, "aead-stream", h.key_id, h.key_version)
    return hkdf_sha256(s, b"pg_encrypt_ml/v1/lo-object\0" + h.salt, 32)


def _nonce(i: int, last: bool) -> bytes:
    return bytes(7) + struct.pack(">I", i) + (b"\1" if last else b"\0")


def decrypt(root: bytes, data: bytes) -> bytes:
    h = parse_header(data)
    if len(data) != HEADER_LEN + h.length + 16 * h.chunks:
        raise FormatError("length does not match the header")
    aead = AESGCM(_object_key(root, h))
    out, pos = [], HEADER_LEN
    for i in range(h.chunks):
        n = min(h.chunk_size, h.length - i * h.chunk_size)
        out.append(aead.decrypt(_nonce(i, i == h.chunks - 1), data[pos:pos + n + 16], h.raw))
        pos += n + 16
    return b"".join(out)


def encrypt(root: bytes, key_id: uuid.UUID, version: int, plaintext: bytes, chunk_size: int = 1 << 20,
            salt: bytes = None) -> bytes:
    salt = os.urandom(16) if salt is None else salt
    raw = MAGIC + bytes([1, 1]) + key_id.bytes + struct.pack(">IIQ", version, chunk_size, len(plaintext)) \
        + salt + bytes(4)
    h = parse_header(raw)
    aead = AESGCM(_object_key(root, h))
    parts = [raw]
    for i in range(h.chunks):
        parts.append(aead.encrypt(_nonce(i, i == h.chunks - 1),
                                  plaintext[i * chunk_size:(i + 1) * chunk_size], raw))
    return b"".join(parts)
