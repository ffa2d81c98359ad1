#!/usr/bin/env python3
"""Reference client for the enc_bytea format (docs/formats.md), written from the specification
with Python's `cryptography` package, independently of the Rust code.

Run with no arguments it checks itself against the known-answer vectors that the Rust core also
pins (crates/core/src/kdf.rs and aead.rs), so the two implementations agree byte for byte.
"""
import hashlib
import hmac
import os
import struct
import sys
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

MAGIC = b"EM"
FORMAT_VERSION = 1
ALG_AES_256_GCM = 1
HEADER_LEN, NONCE_LEN, TAG_LEN = 24, 12, 16


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with an absent salt (a string of zero bytes)."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def aead_subkey(root: bytes, key_id: uuid.UUID, version: int) -> bytes:
    info = b"pg_encrypt_ml/v1/subkey/" + b"aead" + b"\0" + key_id.bytes + struct.pack(">I", version)
    return hkdf_sha256(root, info, 32)


def encrypt(root: bytes, key_id: uuid.UUID, version: int, plaintext: bytes, aad: bytes = b"",
            nonce: bytes = None) -> bytes:
    header = MAGIC + bytes([FORMAT_VERSION, ALG_AES_256_GCM]) + key_id.bytes + struct.pack(">I", version)
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    body = AESGCM(aead_subkey(root, key_id, version)).encrypt(nonce, plaintext, header + aad)
    return header + nonce + body


def decrypt(root: bytes, value: bytes, aad: bytes = b"") -> bytes:
    if len(value) < HEADER_LEN + NONCE_LEN + TAG_LEN or value[:2] != MAGIC:
        raise ValueError("not an enc_bytea value")
    if value[2] != FORMAT_VERSION or value[3] != ALG_AES_256_GCM:
        raise ValueError("unsupported version or algorithm")
    key_id = uuid.UUID(bytes=value[4:20])
    (version,) = struct.unpack(">I", value[20:24])
    header, nonce, body = value[:HEADER_LEN], value[HEADER_LEN:HEADER_LEN + NONCE_LEN], value[HEADER_LEN + NONCE_LEN:]
    return AESGCM(aead_subkey(root, key_id, version)).decrypt(nonce, body, header + aad)


def det_subkey(root: bytes, key_id: uuid.UUID, version: int) -> bytes:
    info = b"pg_encrypt_ml/v1/subkey/" + b"deterministic" + b"\0" + key_id.bytes + struct.pack(">I", version)
    return hkdf_sha256(root, info, 64)


def det_encrypt(root: bytes, key_id: uuid.UUID, version: int, plaintext: bytes) -> bytes:
    """det_text: header ("ED", 1, 2, key id, version) || AES-SIV(S2V over [header], plaintext)."""
    header = b"ED" + bytes([FORMAT_VERSION, 2]) + key_id.bytes + struct.pack(">I", version)
    return header + AESSIV(det_subkey(root, key_id, version)).encrypt(plaintext, [header])


def det_decrypt(root: bytes, value: bytes) -> bytes:
    if len(value) < HEADER_LEN + 16 or value[:2] != b"ED" or value[2] != FORMAT_VERSION or value[3] != 2:
        raise ValueError("not a det_text value")
    key_id = uuid.UUID(bytes=value[4:20])
    (version,) = struct.unpack(">I", value[20:24])
    return AESSIV(det_subkey(root, key_id, version)).decrypt(value[HEADER_LEN:], [value[:HEADER_LEN]])


def self_test() -> None:
    zero_id = uuid.UUID(bytes=bytes(16))
    assert aead_subkey(bytes(32), zero_id, 1).hex() == \
        "960ffd4d509273dd911900f83885ceeace516e4bd9743774aaa3b046533ab186"
    kat = encrypt(bytes(32), zero_id, 1, b"hello", nonce=bytes(12))
    assert kat.hex() == ("454d010100000000000000000000000000000000000000010000000000000000000000002ea44292f5"
                         "bca7177009744987c25cf610a1b09349"), kat.hex()
    root, kid = os.urandom(32), uuid.uuid4()
    for n in (0, 1, 64, 100_000):
        pt = os.urandom(n)
        assert decrypt(root, encrypt(root, kid, 7, pt, b"ctx"), b"ctx") == pt
    try:
        decrypt(root, encrypt(root, kid, 7, b"x", b"row 1"), b"row 2")
        raise AssertionError("wrong AAD accepted")
    except Exception as e:  # cryptography raises InvalidTag
        assert type(e).__name__ == "InvalidTag", e
    det = det_encrypt(bytes(32), zero_id, 1, b"hello")
    assert det.hex() == ("45440102000000000000000000000000000000000000000128982b47574eac6a2c6c5bd1fb6e8022"
                         "fbf101bd6b"), det.hex()
    assert det_decrypt(bytes(32), det) == b"hello"
    assert det_encrypt(root, kid, 3, b"x@y") == det_encrypt(root, kid, 3, b"x@y")
    print("reference client: enc_bytea and det_text known-answer vectors and round trips ok")


if __name__ == "__main__":
    self_test()
    sys.exit(0)
