"""Tenant tokens (Citus): `encml-tenant.v1.<tenant>.<issued>.<fingerprint>.<mac>`."""
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass

from . import master
from .common import FormatError, b64url_nopad_decode, b64url_nopad_encode, hkdf_sha256


@dataclass(frozen=True)
class Token:
    tenant: str
    issued: int       # µs since 1970-01-01 UTC
    fingerprint: str
    mac: bytes


def _key(master_key: bytes) -> bytes:
    return hkdf_sha256(master_key, b"pg_encrypt_ml/v1/tenant-token", 32)


def _lp(b: bytes) -> bytes:
    return struct.pack(">Q", len(b)) + b


def _mac(master_key: bytes, tenant: str, role: str, database: str, issued: int) -> bytes:
    msg = _lp(tenant.encode()) + _lp(role.encode()) + _lp(database.encode()) + struct.pack(">q", issued)
    return hmac.new(_key(master_key), msg, hashlib.sha256).digest()[:16]


def make(master_key: bytes, tenant: str, role: str, database: str, issued: int = None) -> str:
    issued = int(time.time() * 1_000_000) if issued is None else issued
    return ".".join(["encml-tenant", "v1", b64url_nopad_encode(tenant.encode()), str(issued),
                     master.fingerprint(master_key),
                     b64url_nopad_encode(_mac(master_key, tenant, role, database, issued))])


def parse(token: str) -> Token:
    token = token.split("#", 1)[0]     # a node's setting appends #<xid>#<expiry>
    parts = token.split(".")
    if len(parts) != 6 or parts[0] != "encml-tenant":
        raise FormatError("not a tenant token")
    if parts[1] != "v1":
        raise FormatError(f"unknown tenant token version {parts[1]}")
    if not parts[3].isdigit():
        raise FormatError("issued is not a decimal number")
    if len(parts[4]) != 16:
        raise FormatError("fingerprint is 16 hex characters")
    return Token(b64url_nopad_decode(parts[2]).decode("utf-8"), int(parts[3]), parts[4],
                 b64url_nopad_decode(parts[5]))


def verify(master_key: bytes, token: str, role: str, database: str) -> Token:
    t = parse(token)
    if t.fingerprint != master.fingerprint(master_key):
        raise FormatError("token names another master key")
    if not hmac.compare_digest(t.mac, _mac(master_key, t.tenant, role, database, t.issued)):
        raise FormatError("tenant token MAC does not verify")
    return t
