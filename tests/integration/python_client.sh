#!/usr/bin/env bash
# The Python client (docs/fhe.md "Python client"): built with maturin from python/ in a virtual
# environment (Debian blocks system-wide pip; maturin, NumPy, psycopg and scikit-learn come from
# PyPI), its API checked (python_client.py), then the federated example: three clients, two
# rounds of proven updates whose decrypted sums are exact, two rounds with DP round sums.
source "$(dirname "$0")/lib.sh"
DB=encml_it_python
VENV=${CARGO_TARGET_DIR:-target}/py-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check maturin==1.16.0 numpy==2.4.6 \
  'psycopg[binary]==3.3.9' scikit-learn==1.9.1
# The dev profile (dependencies optimized, Cargo.toml), in the shared target directory.
VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH" maturin develop -q -m python/Cargo.toml
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
trap 'dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
"$VENV/bin/python" tests/integration/python_client.py
OUT=$("$VENV/bin/python" python/examples/federated_digits.py "$DB" 2)
echo "$OUT" | head -n -1
echo "$OUT" | tail -n 1 | "$VENV/bin/python" -c '
import json, sys
s = json.load(sys.stdin)
def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else f" ({s})"))
    if not ok: sys.exit(1)
check("the decrypted round sums equal the sums of the quantized updates", s["sums_exact"])
check("federated training over proven updates learns (test accuracy >= 0.85)", s["federated_accuracy"] >= 0.85)
check("and comes within 0.05 of centralized training", abs(s["federated_accuracy"] - s["centralized_accuracy"]) <= 0.05)
check("the DP sums carry noise of the stated sigma (within 20%, 650 values)",
      all(abs(sd / sigma - 1) <= 0.2 for sd, sigma in s["dp_noise_sd_vs_sigma"]))
check("each DP sum read charged epsilon once", abs(s["epsilon_spent"] - 2.0) < 1e-9)
'
