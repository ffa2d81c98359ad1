"""Master keys (provider output), fingerprints, wrapped data keys and service keys."""
import hashlib
import struct
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .common import FormatError, hkdf_sha256


def parse_provider_output(text: str):
    """Master keys, current first: 64 hex characters a line; blank and `#` lines ignored."""
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) != 64:
            raise FormatError(f"line {n}: a master key is 64 hex characters")
        try:
            keys.append(bytes.fromhex(line))
        except ValueError:
            raise FormatError(f"line {n}: not hex") from None
    if not keys:
        raise FormatError("no master key")
    return keys


def fingerprint(master_key: bytes) -> str:
    return hkdf_sha256(master_key, b"pg_encrypt_ml/v1/master-key-check-value", 8).hex()


def kek(master_key: bytes) -> bytes:
    return hkdf_sha256(master_key, b"pg_encrypt_ml/v1/key-encryption-key", 32)


def _wrap_aad(key_id: bytes, version: int) -> bytes:
    return b"pg_encrypt_ml/v1/wrap" + key_id + struct.pack(">I", version)


def unwrap(master_key: bytes, wrapped: bytes, key_id: bytes, version: int) -> bytes:
    """A wrapped data key (or service key): 1 | nonce 12 | AES-256-GCM(root 32) | tag 16."""
    if len(wrapped) != 61 or wrapped[0] != 1:
        raise FormatError("not a wrapped key of wrap version 1")
    return AESGCM(kek(master_key)).decrypt(wrapped[1:13], wrapped[13:], _wrap_aad(key_id, version))


def wrap(master_key: bytes, root: bytes, key_id: bytes, version: int, nonce: bytes) -> bytes:
    return b"\x01" + nonce + AESGCM(kek(master_key)).encrypt(nonce, root, _wrap_aad(key_id, version))


def unwrap_data_key(master_key: bytes, wrapped: bytes, key_id: uuid.UUID, version: int) -> bytes:
    return unwrap(master_key, wrapped, key_id.bytes, version)


def service_key_id(purpose: str) -> bytes:
    return hashlib.sha256(b"pg_encrypt_ml/v1/service-key/" + purpose.encode()).digest()[:16]


def unwrap_service_key(master_key: bytes, wrapped: bytes, purpose: str, version: int) -> bytes:
    return unwrap(master_key, wrapped, service_key_id(purpose), version)


def legacy_service_key(master_key: bytes, purpose: str) -> bytes:
    """What a pre-0.2.0 master key derived (the `derived_from` rows equal it)."""
    info = {"audit-chain": b"pg_encrypt_ml/v1/audit-chain-mac",
            "audit-redact": b"pg_encrypt_ml/v1/audit-redaction"}[purpose]
    return hkdf_sha256(master_key, info, 32)
