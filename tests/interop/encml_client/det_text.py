"""`det_text`: AES-SIV (RFC 5297) with the 24-byte header as its one associated-data string."""
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from .common import ALG_AES_SIV, HEADER_LEN, FormatError, Header, subkey

MAGIC = b"ED"


def encrypt(root: bytes, key_id: uuid.UUID, version: int, plaintext: bytes) -> bytes:
    header = Header.build(MAGIC, ALG_AES_SIV, key_id, version)
    return header + AESSIV(subkey(root, "deterministic", key_id, version)).encrypt(plaintext, [header])


def decrypt(root: bytes, value: bytes) -> bytes:
    h = Header.parse(value, MAGIC, (ALG_AES_SIV,))
    if len(value) < HEADER_LEN + 16:
        raise FormatError("det_text too short")
    return AESSIV(subkey(root, "deterministic", h.key_id, h.key_version)).decrypt(value[HEADER_LEN:], [h.raw])
