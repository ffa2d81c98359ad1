"""An outside client for pg_encrypt_ml's formats, written from docs/formats.md alone.

Standard library plus Python's `cryptography` (any version with AESGCM, AESSIV and X25519; the
HPKE of exported keys is implemented here from RFC 9180, and checked against cryptography's
own `hpke` module when that exists). One module per format; `selftest` holds the known-answer
tests that run without a database (`python3 tests/interop/reference_client.py`).
"""
