"""Shared pieces: HKDF, the 24-byte common header, sub-keys, base64 (docs/formats.md)."""
import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass

FORMAT_VERSION = 1
HEADER_LEN = 24
MAGICS = {b"EM": "enc_bytea", b"ED": "det_text", b"EO": "ore"}
ALG_AES_GCM, ALG_AES_SIV, ALG_ORE, ALG_AES_GCM_DESCRIBED = 1, 2, 3, 4


class FormatError(ValueError):
    """A value that does not follow its documented layout."""


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 extract with SHA-256; an absent salt is HashLen zero bytes."""
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 expand with SHA-256."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """RFC 5869; an absent salt is HashLen zero bytes."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


SUBKEY_LEN = {"aead": 32, "deterministic": 64, "ore": 64, "hmac": 32, "aead-stream": 32, "fpe": 32}


def subkey(root: bytes, purpose: str, key_id: uuid.UUID, version: int) -> bytes:
    """`HKDF-SHA256(root, info = "pg_encrypt_ml/v1/subkey/" purpose 0x00 key id version)`."""
    if len(root) != 32:
        raise FormatError("a data-key root is 32 bytes")
    info = b"pg_encrypt_ml/v1/subkey/" + purpose.encode() + b"\0" + key_id.bytes + struct.pack(">I", version)
    return hkdf_sha256(root, info, SUBKEY_LEN[purpose])


@dataclass(frozen=True)
class Header:
    magic: bytes
    version: int
    algorithm: int
    key_id: uuid.UUID
    key_version: int
    raw: bytes

    @staticmethod
    def build(magic: bytes, algorithm: int, key_id: uuid.UUID, key_version: int) -> bytes:
        return magic + bytes([FORMAT_VERSION, algorithm]) + key_id.bytes + struct.pack(">I", key_version)

    @classmethod
    def parse(cls, value: bytes, magic: bytes, algorithms) -> "Header":
        if len(value) < HEADER_LEN:
            raise FormatError("shorter than the 24-byte header")
        if value[:2] != magic:
            raise FormatError(f"magic {value[:2]!r}, expected {magic!r}")
        if value[2] != FORMAT_VERSION:
            raise FormatError(f"unknown format version {value[2]}")
        if value[3] not in algorithms:
            raise FormatError(f"unknown algorithm {value[3]}")
        return cls(value[:2], value[2], value[3], uuid.UUID(bytes=value[4:20]),
                   struct.unpack(">I", value[20:24])[0], value[:HEADER_LEN])


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Standard alphabet with padding, strictly (RFC 4648)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except binascii.Error as e:
        raise FormatError(f"not base64: {e}") from None


def b64url_nopad_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_nopad_decode(text: str) -> bytes:
    if "=" in text:
        raise FormatError("base64url without padding expected")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def from_pg_bytea(text: str) -> bytes:
    """psql's hex output of a bytea (`\\x...`)."""
    if not text.startswith("\\x"):
        raise FormatError("expected bytea hex output")
    return bytes.fromhex(text[2:])
