#!/usr/bin/env python3
"""Reference client for pg_encrypt_ml's formats (docs/formats.md), written from the specification
with Python's `cryptography` package, independently of the Rust code.

The client is the package encml_client/ next to this file (one module per format: enc_bytea and
tensors, encrypted jsonb values, det_text, ORE, exported keys with HPKE, wrapped and service keys,
the audit chain, tenant tokens, dp_state, fhe_vector, encrypted large objects, subject exports,
FF1 tokens of fpe_encrypt).
Run with no arguments it runs its known-answer tests without a database: the vectors of
docs/formats.md, RFC 9180's, and values the database produced (vectors.json, captured with
capture_vectors.py). tests/integration/interop.sh checks it against a live database.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from encml_client import selftest  # noqa: E402

if __name__ == "__main__":
    n = selftest.run()
    print(f"reference client: {n} known-answer and round-trip checks ok (enc_bytea, tensors, jsonb, det_text, "
          "ORE, export_key/HPKE, wrapped keys, audit chain, tenant tokens, dp_state, fhe_vector, large objects, "
          "subject export, FF1)")
    sys.exit(0)
