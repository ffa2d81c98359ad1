#!/usr/bin/env bash
# Proven FHE updates (docs/benchmarks.md "Proven updates"): first what proofs cost per update
# (crates/fhe/examples/proven_cost.rs: prove, verify, sizes at d = 1,000 / 10,000 / 100,000,
# beside the unproven encryption), then accepted updates per minute through SQL: N proven
# updates of D values made ahead of time for a known round, submitted one after another by N
# contributor roles (fhe_submit_proven verifies each), against N unproven updates submitted to
# an unproven round in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
N=${BENCH_FHE_PROVEN_UPDATES:-20}
D=${BENCH_FHE_PROVEN_DIM:-1000}
DIMS=${BENCH_FHE_PROVEN_DIMS:-1000 10000 100000}
DB=encml_bench
OUT=$(mktemp -d)
chmod 755 "$OUT"
trap 'rm -rf "$OUT"' EXIT
cargo build -q --release -p encml-fhe --features uint32,zk --example proven_cost --bin pg_encrypt_ml-fhe
FHE=target/release/pg_encrypt_ml-fhe
echo
echo "Proven updates: cost per update (release build; 2,048 values per proof)"
# shellcheck disable=SC2086
target/release/examples/proven_cost $DIMS

q() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" -c "$*"; }
q "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_encrypt_ml"
KS=$("$FHE" keygen --out "$OUT/keys" --proofs --value-bits 16 --max-contributions 1000 2>/dev/null)
PLAIN=$("$FHE" keygen --out "$OUT/plain")
chmod 755 "$OUT/keys" "$OUT/plain"; chmod 644 "$OUT/keys/public.key" "$OUT/keys/crs.bin" "$OUT/plain/public.key"
q "SELECT encml.fhe_register_keyset('bench-proven-$KS', pg_read_binary_file('$OUT/keys/public.key'), pg_read_binary_file('$OUT/keys/crs.bin'))" >/dev/null
q "SELECT encml.fhe_register_keyset('bench-plain-$PLAIN', pg_read_binary_file('$OUT/plain/public.key'))" >/dev/null
ROUND=$(q "SELECT encml.fhe_open_round('$KS', $D, min_contributions => 2, max_contributions => 1000, value_bits => 16)")
PROUND=$(q "SELECT encml.fhe_open_round('$PLAIN', $D, min_contributions => 2, max_contributions => 1000, value_bits => 16, unproven => true)")
python3 - "$OUT" "$D" "$N" <<'PY'
import json, random, sys
out, d, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(5)
for i in range(n):
    json.dump([rng.uniform(-100, 100) for _ in range(d)], open(f"{out}/u{i}.json", "w"))
PY
started=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
  "$FHE" encrypt --public-key "$OUT/keys/public.key" --crs "$OUT/keys/crs.bin" --round "$ROUND" \
    --frac-bits 8 --in "$OUT/u$i.json" --out "$OUT/p$i.bin"
  "$FHE" encrypt --public-key "$OUT/plain/public.key" --value-bits 16 --frac-bits 8 --max-terms 1000 \
    --in "$OUT/u$i.json" --out "$OUT/v$i.bin"
done
proving=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
for i in $(seq 0 $((N - 1))); do
  q "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_bench_c$i') THEN
       CREATE ROLE encml_bench_c$i NOLOGIN IN ROLE encml_fhe_contributor; END IF; END \$\$"
done
# One psql session each, the updates read from files by the superuser, submitted as the role.
submissions() { # submissions ROUND PREFIX FUNCTION CAST
  for i in $(seq 0 $((N - 1))); do
    echo "SET ROLE encml_bench_c$i;"
    printf "SELECT encml.%s(%s, decode('" "$3" "$1"; base64 -w0 "$OUT/$2$i.bin"; echo "', 'base64')$4);"
    echo "RESET ROLE;"
  done
}
time_submissions() { # time_submissions ROUND PREFIX FUNCTION CAST: seconds
  local t0 t1
  t0=$(date +%s.%N)
  submissions "$@" | psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}
proven_s=$(time_submissions "$ROUND" p fhe_submit_proven "")
plain_s=$(time_submissions "$PROUND" v fhe_submit "::encml.fhe_vector")
q "SELECT encml.fhe_close_round($ROUND)" >/dev/null
q "SELECT encml.fhe_round_sum($ROUND)" >"$OUT/sum.b64"
"$FHE" decrypt --secret-key "$OUT/keys/secret.key" --in "$OUT/sum.b64" --json >"$OUT/sum.json"
exact=$(python3 - "$OUT" "$N" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
total = None
for i in range(n):
    v = [round(x * 256) for x in json.load(open(f"{out}/u{i}.json"))]
    total = v if total is None else [a + b for a, b in zip(total, v)]
got = [round(x * 256) for x in json.load(open(f"{out}/sum.json"))]
print("yes" if got == total else "NO")
PY
)
echo
echo "Proven updates through SQL: $N updates of $D values, made ahead for round $ROUND ($proving s to prove and encrypt both kinds)"
echo
echo "| updates | unproven: submit (s) | per min | proven: submit and verify (s) | per min | x unproven | sum exact |"
echo "|---|---|---|---|---|---|---|"
python3 -c "
n, p, v = $N, $plain_s, $proven_s
print(f'| {n} | {p:.2f} | {60 * n / p:.0f} | {v:.2f} | {60 * n / v:.0f} | {v / p:.1f} | $exact |')"
for i in $(seq 0 $((N - 1))); do q "DROP OWNED BY encml_bench_c$i; DROP ROLE encml_bench_c$i"; done
