"""The Python client's API beyond the federated example: key files, input forms, errors, and
that its updates and keys are the tool's (the same formats)."""
import base64
import os
import stat
import subprocess
import sys
import tempfile

import numpy as np

import pg_encrypt_ml_fhe as fhe


def ok(what):
    print(f"ok: {what}")


keys = fhe.keygen(proofs=True, value_bits=8, max_contributions=16, values_per_proof=64)
assert "secret" not in repr(keys) and keys.id in repr(keys), repr(keys)
ok(f"keygen gives a key set with a CRS ({len(keys.crs)} bytes); its repr shows no key")
with tempfile.TemporaryDirectory() as d:
    keys.save(d)
    mode = stat.S_IMODE(os.stat(os.path.join(d, "secret.key")).st_mode)
    assert mode == 0o600, oct(mode)
    assert open(os.path.join(d, "public.key"), "rb").read() == keys.public_key
    try:
        keys.save(d)
        raise AssertionError("save overwrote a secret key")
    except ValueError as e:
        assert "exists" in str(e), e
    ok("save writes secret.key with mode 0600 and never overwrites one")
    values = np.array([1.5, -2.0, 0.25] + [0.0] * 61)
    update = fhe.encrypt_and_prove(values, keys.public_key, keys.crs, 42, 4)
    h = fhe.info(update)
    assert (h["keyset"], h["round"], h["dim"], h["value_bits"], h["frac_bits"], h["values_per_proof"]) \
        == (keys.id, 42, 64, 8, 4, 64), h
    ok("encrypt_and_prove writes a proven update for the round; info reads its header")
    tool = os.environ.get("FHE_TOOL", "target/debug/pg_encrypt_ml-fhe")
    if os.path.exists(tool):
        open(os.path.join(d, "u.bin"), "wb").write(update)
        shown = subprocess.run([tool, "info", "--in", os.path.join(d, "u.bin")], check=True,
                               capture_output=True, text=True).stdout
        assert f"round=42 dim=64" in shown, shown
        ok("the tool reads the Python client's update")
for bad in (b"", b"EZ\x01\x00" + b"\x00" * 10):
    try:
        fhe.info(bad)
        raise AssertionError("info accepted a malformed update")
    except ValueError:
        pass
try:
    fhe.encrypt_and_prove(np.array([100.0]), keys.public_key, keys.crs, 1, 4)
    raise AssertionError("a value out of the proven range was encrypted")
except ValueError as e:
    ok(f"a value out of range is refused: {e}")
plain = fhe.keygen(proofs=False)
assert plain.crs is None
v = fhe.encrypt(np.array([3.25, -1.5]), plain.public_key, value_bits=16, frac_bits=4, max_terms=10)
assert list(fhe.decrypt(v, plain.secret_key())) == [3.25, -1.5]
assert list(fhe.decrypt(base64.b64encode(v).decode(), plain.secret_key())) == [3.25, -1.5]
ok("an unproven vector decrypts from bytes and from its base64 text")
try:
    fhe.decrypt(v, keys.secret_key())
    raise AssertionError("decrypted under another key")
except ValueError as e:
    ok(f"another key set's secret key is refused: {e}")
try:
    fhe.encrypt(np.array([[1.0, 2.0]]), plain.public_key)
    raise AssertionError("a two-dimensional array was accepted")
except (TypeError, ValueError):
    ok("values must be a one-dimensional array")
sys.exit(0)
