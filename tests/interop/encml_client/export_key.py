"""Exported keys (`encml.export_key`): "EX" 1 1 key id version | HPKE enc | HPKE ciphertext."""
import struct
import uuid
from dataclasses import dataclass

from . import hpke
from .common import FormatError

MAGIC, VERSION, SUITE = b"EX", 1, 1
LENGTH = 24 + 32 + 48


@dataclass(frozen=True)
class ExportedKey:
    key_id: uuid.UUID
    key_version: int
    root: bytes


def parse_header(value: bytes):
    if len(value) != LENGTH:
        raise FormatError(f"an exported key is {LENGTH} bytes, not {len(value)}")
    if value[:2] != MAGIC:
        raise FormatError("not an exported key (magic)")
    if value[2] != VERSION:
        raise FormatError(f"unknown exported-key version {value[2]}")
    if value[3] != SUITE:
        raise FormatError(f"unknown exported-key suite {value[3]}")
    return uuid.UUID(bytes=value[4:20]), struct.unpack(">I", value[20:24])[0]


def open_key(value: bytes, private_key) -> ExportedKey:
    key_id, version = parse_header(value)
    root = hpke.open_(value[24:56], private_key, value[:24], value[56:])
    return ExportedKey(key_id, version, root)


def seal_key(root: bytes, key_id: uuid.UUID, version: int, recipient_public: bytes, sk_e: bytes = None) -> bytes:
    """What the database does (for the self-tests)."""
    header = MAGIC + bytes([VERSION, SUITE]) + key_id.bytes + struct.pack(">I", version)
    enc, ct = hpke.seal(recipient_public, header, root, sk_e=sk_e)
    return header + enc + ct
