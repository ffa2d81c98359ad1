"""A client for pg_encrypt_ml's documented formats (docs/formats.md), outside the database.

Only `cryptography` and `numpy`: unwrap a data key exported with encml.export_key() (HPKE,
RFC 9180), derive the sub-key of a key version, and open enc_bytea values, encrypted tensors and
encrypted jsonb fields. The key material stays in this process.
"""
import base64
import json
import struct
import uuid

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER_LEN, NONCE_LEN, TAG_LEN = 24, 12, 16
ALG_GCM, ALG_GCM_DESCRIBED = 1, 4
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i2"), 4: np.dtype("<i4")}
HPKE_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def new_recipient():
    """A fresh X25519 key pair: (private key, raw 32-byte public key for encml.export_key)."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, public


class DataKey:
    """One version of a data key, unwrapped from an encml.export_key() result."""

    def __init__(self, private_key: X25519PrivateKey, exported: bytes):
        if len(exported) != 104 or exported[:2] != b"EX" or exported[2] != 1 or exported[3] != 1:
            raise ValueError("not an exported key (format version 1, suite 1)")
        header = exported[:24]
        self.key_id = uuid.UUID(bytes=exported[4:20])
        (self.version,) = struct.unpack(">I", exported[20:24])
        # HPKE single-shot open: enc (32 bytes) followed by the sealed root; info = the header.
        self._root = HPKE_SUITE.decrypt(exported[24:], private_key, info=header)

    def subkey(self, label: str, length: int = 32) -> bytes:
        info = (b"pg_encrypt_ml/v1/subkey/" + label.encode() + b"\0" + self.key_id.bytes
                + struct.pack(">I", self.version))
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(self._root)

    def open(self, value: bytes, aad: bytes = b"") -> bytes:
        """The plaintext of an enc_bytea value (plain or described) under this key version."""
        return self.open_parts(value, aad)[1]

    def open_parts(self, value: bytes, aad: bytes = b""):
        if len(value) < HEADER_LEN + NONCE_LEN + TAG_LEN or value[:3] != b"EM\x01":
            raise ValueError("not an enc_bytea value (format version 1)")
        if uuid.UUID(bytes=value[4:20]) != self.key_id or struct.unpack(">I", value[20:24])[0] != self.version:
            raise ValueError("the value is under another key or key version")
        if value[3] == ALG_GCM:
            prefix_len, descriptor = HEADER_LEN, None
        elif value[3] == ALG_GCM_DESCRIBED:
            (d,) = struct.unpack(">H", value[24:26])
            prefix_len, descriptor = HEADER_LEN + 2 + d, value[26:26 + d]
        else:
            raise ValueError(f"unknown algorithm {value[3]}")
        prefix, nonce, body = value[:prefix_len], value[prefix_len:prefix_len + NONCE_LEN], value[prefix_len + NONCE_LEN:]
        plaintext = AESGCM(self.subkey("aead")).decrypt(nonce, body, prefix + aad)
        return descriptor, plaintext

    def open_tensor(self, value: bytes, aad: bytes = b"") -> np.ndarray:
        """An encrypted tensor as a NumPy array of its dtype and shape."""
        descriptor, plaintext = self.open_parts(value, aad)
        if descriptor is None or descriptor[0] != 1 or descriptor[1] != 1:
            raise ValueError("not an encrypted tensor (descriptor type 1, version 1)")
        dtype, ndim = DTYPES[descriptor[2]], descriptor[3]
        shape = [struct.unpack(">I", descriptor[4 + 8 * i:8 + 8 * i])[0] for i in range(ndim)]
        return np.frombuffer(plaintext, dtype=dtype).reshape(shape if ndim else (0,))

    def open_json_field(self, text: str, path: list, row_aad: bytes = b""):
        """The JSON value of an "encml:v1:" string found at `path` (keys as str, indices as int)."""
        if not text.startswith("encml:v1:"):
            raise ValueError("not an encrypted JSON value")
        aad = b"pg_encrypt_ml/v1/json-path\0"
        for elem in path:
            if isinstance(elem, int):
                aad += b"i" + struct.pack(">Q", elem)
            else:
                raw = elem.encode()
                aad += b"k" + struct.pack(">I", len(raw)) + raw
        aad += b"\0" + row_aad
        return json.loads(self.open(base64.b64decode(text[len("encml:v1:"):]), aad))
