"""Encrypted jsonb values: `"encml:v1:" || base64(enc_bytea)`, AAD binding the concrete path."""
import json
import struct
import uuid
from decimal import Decimal

from . import enc_bytea
from .common import ALG_AES_GCM, FormatError, b64decode, b64encode

PREFIX = "encml:v1:"


def path_aad(path, aad=None) -> bytes:
    """path: a sequence of str (object keys) and int (array indexes, from 0)."""
    out = b"pg_encrypt_ml/v1/json-path\0"
    for element in path:
        if isinstance(element, int) and not isinstance(element, bool):
            if element < 0:
                raise ValueError("concrete indexes are non-negative")
            out += b"i" + struct.pack(">Q", element)
        else:
            key = element.encode("utf-8")
            out += b"k" + struct.pack(">I", len(key)) + key
    out += b"\0"
    if aad is not None:
        out += aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)
    return out


def is_encrypted(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt_value(root: bytes, key_id: uuid.UUID, version: int, value, path, aad=None) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    v = enc_bytea.encrypt(root, key_id, version, text.encode("utf-8"), path_aad(path, aad))
    return PREFIX + b64encode(v)


def decode_value(text: str) -> bytes:
    """The enc_bytea inside a ciphertext string (refusing anything else with the prefix)."""
    if not is_encrypted(text):
        raise FormatError("not an encrypted jsonb value")
    v = b64decode(text[len(PREFIX):])
    if enc_bytea.parse(v).header.algorithm != ALG_AES_GCM:
        raise FormatError("an encrypted jsonb value is an enc_bytea of algorithm 1")
    return v


def decrypt_value(root: bytes, text: str, path, aad=None):
    v = decode_value(text)
    plain = enc_bytea.decrypt(root, v, path_aad(path, aad))
    return json.loads(plain.decode("utf-8"), parse_float=Decimal)


def decrypt_document(doc, roots, aad=None, path=()):
    """Every encrypted value in `doc` (parsed JSON) decrypted, nested ones too.

    `roots(key_id, version)` gives the root for a key version, or None to leave the value."""
    if is_encrypted(doc):
        v = decode_value(doc)
        h = enc_bytea.parse(v).header
        root = roots(h.key_id, h.key_version)
        if root is None:
            return doc
        inner = json.loads(enc_bytea.decrypt(root, v, path_aad(path, aad)).decode("utf-8"),
                           parse_float=Decimal)
        return decrypt_document(inner, roots, aad, path)
    if isinstance(doc, dict):
        return {k: decrypt_document(v, roots, aad, path + (k,)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [decrypt_document(v, roots, aad, path + (i,)) for i, v in enumerate(doc)]
    return doc
