"""Issue 27, attacker round 1 on ORE input: a role that creates and exports an ORE key of its own
can compute valid MACs over any trits. It forges three values whose first trits are 0, 1 and 2
(a comparison cycle, each with a valid MAC) and a value under its own key with a trit pattern no
plaintext has, and tries to insert them into an indexed column; every one must be refused, and
the index must stay sound (amcheck). Uses the documented formats only (docs/formats.md) and the
client in examples/python."""
import base64
import hashlib
import hmac
import os
import struct
import sys
import uuid

import psycopg

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../examples/python"))
from encml_client import DataKey, new_recipient  # noqa: E402

DB = os.environ["ORE_FORGERY_DB"]


def pack(key_id: uuid.UUID, version: int, trits, mac_key: bytes) -> bytes:
    ct = bytearray(16)
    for i, t in enumerate(trits):
        ct[i // 4] |= (t & 3) << (6 - 2 * (i % 4))
    body = b"EO\x01\x03" + key_id.bytes + struct.pack(">I", version) + b"\x01" + bytes(ct)
    return body + hmac.new(mac_key, body, hashlib.sha256).digest()[:16]


def main() -> None:
    with psycopg.connect(dbname=DB, user="encml_it_forger", autocommit=True) as conn:
        key = conn.execute("SELECT encml.create_key('forger-ore', 'ore')").fetchone()[0]
        conn.execute("INSERT INTO forge_target SELECT encml.ore_encrypt(i, %s) FROM generate_series(1, 300) i", (key,))
        private, public = new_recipient()
        exported = conn.execute("SELECT encml.export_key(%s, %s)", (key, public)).fetchone()[0]
        dk = DataKey(private, bytes(exported))
        sub = dk.subkey("ore", 64)
        mac_key = sub[32:]
        real = bytes(conn.execute("SELECT encml.ore_encrypt(42::bigint, %s)::bytea", (key,)).fetchone()[0])
        trits = [(real[25 + i // 4] >> (6 - 2 * (i % 4))) & 3 for i in range(64)]
        # Sanity: our MAC over the real trits is the server's.
        assert pack(dk.key_id, dk.version, trits, mac_key) == real, "formats.md MAC does not match"
        forged = []
        for first in range(3):
            t = list(trits)
            t[0] = first
            value = pack(dk.key_id, dk.version, t, mac_key)
            if value != real:
                forged.append(value)
        # A later trit changed too: valid MAC, no plaintext encrypts to it.
        t = list(trits)
        t[40] = (t[40] + 2) % 3
        forged.append(pack(dk.key_id, dk.version, t, mac_key))
        refused = 0
        for value in forged:
            for sql in ("INSERT INTO forge_target VALUES (%s::encml.ore_int8)",
                        "INSERT INTO forge_target VALUES (%s::bytea::encml.ore_int8)"):
                arg = base64.b64encode(value).decode() if "::bytea" not in sql else value
                try:
                    conn.execute(sql, (arg,))
                except psycopg.errors.InvalidTextRepresentation:
                    refused += 1
                except psycopg.errors.InvalidBinaryRepresentation:
                    refused += 1
        print(f"refused {refused} of {2 * len(forged)} forged inserts")
        assert refused == 2 * len(forged)


if __name__ == "__main__":
    main()
