#!/usr/bin/env python3
"""An ML engineer's round trip: store NumPy weights encrypted by the server, load them back, and
decrypt a value client-side from the documented format with a key exported for this client only.

Connection from the usual libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE). Run by
`make test` (tests/integration/python_client.sh); exits non-zero if anything differs.
"""
import sys
import uuid

import numpy as np
import psycopg

from encml_client import DataKey, new_recipient


def main() -> int:
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((64, 32)).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)

    with psycopg.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_encrypt_ml")
        name = f"model:demo-{uuid.uuid4().hex[:12]}"
        (key,) = conn.execute("SELECT encml.create_key(%s, 'aead')", (name,)).fetchone()
        conn.execute("CREATE TEMP TABLE params (layer text PRIMARY KEY, w encml.enc_bytea, meta jsonb)")

        # Store: the array goes as real[]; the server packs it into the ciphertext (4 bytes/value),
        # bound to its row by the AAD. Metadata stays plain and queryable.
        for layer, array in (("dense/kernel", weights), ("dense/bias", bias)):
            conn.execute(
                "INSERT INTO params VALUES (%s, encml.encrypt_tensor(%s::real[], %s, %s), %s)",
                (layer, array.tolist(), key, layer,
                 psycopg.types.json.Jsonb({"shape": list(array.shape), "dtype": "float32"})),
            )
        size, info = conn.execute(
            "SELECT octet_length(w::bytea), (encml.tensor_info(w)).shape FROM params WHERE layer = 'dense/kernel'"
        ).fetchone()
        # 4 bytes per value + header (24) + descriptor (2 + 4 + 8 per dimension) + nonce (12) + tag (16)
        assert size == weights.size * 4 + 58 + 8 * weights.ndim, size
        assert info == [64, 32], info

        # Load through the server.
        (loaded,) = conn.execute(
            "SELECT encml.decrypt_tensor_real(w, layer) FROM params WHERE layer = 'dense/kernel'"
        ).fetchone()
        assert np.array_equal(np.array(loaded, dtype=np.float32), weights)

        # Decrypt client-side: the server wraps the key for our X25519 public key (HPKE); the
        # key never crosses the wire, the logs or pg_stat_statements in clear.
        private, public = new_recipient()
        (exported,) = conn.execute("SELECT encml.export_key(%s, %s)", (key, public)).fetchone()
        data_key = DataKey(private, bytes(exported))
        (raw,) = conn.execute("SELECT w::bytea FROM params WHERE layer = 'dense/bias'").fetchone()
        client_bias = data_key.open_tensor(bytes(raw), b"dense/bias")
        assert client_bias.dtype == np.float32 and np.array_equal(client_bias, bias)
        try:
            data_key.open_tensor(bytes(raw), b"dense/kernel")
            raise AssertionError("a tensor opened with another row's AAD")
        except Exception as e:  # cryptography's InvalidTag
            assert type(e).__name__ == "InvalidTag", e

        # A jsonb document with an encrypted field, opened client-side.
        (doc,) = conn.execute(
            "SELECT encml.encrypt_jsonb(%s, %s, ARRAY['{layers,*,bias}'], 'model-7')",
            (psycopg.types.json.Jsonb({"name": "m7", "layers": [{"bias": bias[:3].tolist()}]}), key),
        ).fetchone()
        field = data_key.open_json_field(doc["layers"][0]["bias"], ["layers", 0, "bias"], b"model-7")
        assert np.allclose(field, bias[:3]), field
        assert doc["name"] == "m7"

        conn.execute("SELECT encml.destroy_key(%s)", (key,))
    print(f"model_store.py: stored, loaded and client-decrypted {weights.size + bias.size} float32 values: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
