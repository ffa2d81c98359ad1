"""HPKE base mode (RFC 9180) by hand: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, and an AEAD.

Written here because Debian 12's python3-cryptography (38) has no `hpke` module; only X25519,
HMAC and the AEADs of `cryptography` are used. Checked against RFC 9180 A.2.1 and, when
available, cryptography's own `hpke` module."""
import os
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat, NoEncryption

from .common import hkdf_expand, hkdf_extract

KEM_X25519_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_256_GCM, AEAD_CHACHA20POLY1305 = 0x0002, 0x0003
_AEADS = {AEAD_AES_256_GCM: (AESGCM, 32), AEAD_CHACHA20POLY1305: (ChaCha20Poly1305, 32)}


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info, length)


def _raw_public(key) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def raw_public(key: X25519PrivateKey) -> bytes:
    return _raw_public(key.public_key())


_KEM_SUITE = b"KEM" + struct.pack(">H", KEM_X25519_SHA256)


def _kem_shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, 32)


def encap(pk_r: bytes, sk_e: bytes = None):
    """(enc, shared_secret); sk_e fixes the ephemeral key (tests)."""
    eph = X25519PrivateKey.from_private_bytes(sk_e) if sk_e else X25519PrivateKey.generate()
    enc = raw_public(eph)
    dh = eph.exchange(X25519PublicKey.from_public_bytes(pk_r))
    return enc, _kem_shared_secret(dh, enc, pk_r)


def decap(enc: bytes, sk_r: X25519PrivateKey) -> bytes:
    dh = sk_r.exchange(X25519PublicKey.from_public_bytes(enc))
    return _kem_shared_secret(dh, enc, raw_public(sk_r))


def key_schedule(shared_secret: bytes, info: bytes, aead_id: int):
    """(key, base_nonce) of base mode (mode 0, no PSK)."""
    suite_id = b"HPKE" + struct.pack(">HHH", KEM_X25519_SHA256, KDF_HKDF_SHA256, aead_id)
    psk_id_hash = _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\0" + psk_id_hash + info_hash
    secret = _labeled_extract(suite_id, shared_secret, b"secret", b"")
    nk = _AEADS[aead_id][1]
    return (_labeled_expand(suite_id, secret, b"key", context, nk),
            _labeled_expand(suite_id, secret, b"base_nonce", context, 12))


def seal(pk_r: bytes, info: bytes, plaintext: bytes, aad: bytes = b"",
         aead_id: int = AEAD_AES_256_GCM, sk_e: bytes = None):
    """Single-shot SealBase: (enc, ciphertext)."""
    enc, ss = encap(pk_r, sk_e)
    key, nonce = key_schedule(ss, info, aead_id)
    return enc, _AEADS[aead_id][0](key).encrypt(nonce, plaintext, aad)


def open_(enc: bytes, sk_r: X25519PrivateKey, info: bytes, ciphertext: bytes, aad: bytes = b"",
          aead_id: int = AEAD_AES_256_GCM) -> bytes:
    """Single-shot OpenBase."""
    key, nonce = key_schedule(decap(enc, sk_r), info, aead_id)
    return _AEADS[aead_id][0](key).decrypt(nonce, ciphertext, aad)


def library_open(enc: bytes, sk_r: X25519PrivateKey, info: bytes, ciphertext: bytes):
    """The same with cryptography's `hpke` module (48 and later), or None where it is missing."""
    try:
        from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
    except ImportError:
        return None
    return Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM).decrypt(enc + ciphertext, sk_r, info=info)


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(os.urandom(32))
