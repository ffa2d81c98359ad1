#!/usr/bin/env bash
# Proven updates end to end (docs/fhe.md "Proven updates"): the key holder makes a key set with
# a CRS, the database checks the CRS once and every proof before it stores an update; the round
# sum decrypts to the plaintext sum. Then what an attacker with a contributor role uploads: an
# update without proofs, a proof made for another round (also relabelled), the chosen-mask
# ciphertext that reads the secret key from the sum, a moved body (an out-of-range value), a
# replay, cut and padded bytes. Each is refused with a security event and nothing is stored.
source "$(dirname "$0")/lib.sh"
DB=encml_it_fhe_proven
WORK=$(mktemp -d)
chmod 755 "$WORK"   # the server reads the (public) key and CRS files from here
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
# The same package set and features as `make test-unit`, so the build is shared (tfhe is slow).
cargo build -q -p encml-core -p encml-dp -p encml-fhe --features encml-fhe/uint32,encml-fhe/zk --bin pg_encrypt_ml-fhe
FHE=${CARGO_TARGET_DIR:-target}/debug/pg_encrypt_ml-fhe
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null

# 64 values per proof keeps the CRS small (seconds to make and check); rounds of up to 8 updates
# of 16-bit values.
KS=$("$FHE" keygen --out "$WORK/keys" --proofs --value-bits 16 --max-contributions 8 --values-per-proof 64 2>"$WORK/keygen.err")
assert_match "keygen writes a CRS" "crs.bin: proofs of 16-bit values, sums of 19 message bits, 64 values per proof" "$(cat "$WORK/keygen.err")"
chmod 644 "$WORK/keys/public.key" "$WORK/keys/crs.bin"
assert_match "a damaged CRS is refused at registration" "22023.*not a CRS" \
  "$(q_err "$DB" "SELECT encml.fhe_register_keyset('bad', pg_read_binary_file('$WORK/keys/public.key'),
                    overlay(pg_read_binary_file('$WORK/keys/crs.bin') placing '\\xff'::bytea from 5000))" || true)"
assert_eq "register the key set with its CRS" "$KS" \
  "$(q "$DB" "SELECT encml.fhe_register_keyset('proven', pg_read_binary_file('$WORK/keys/public.key'), pg_read_binary_file('$WORK/keys/crs.bin'))")"
assert_eq "clients can download the CRS" "t" \
  "$(q "$DB" "SELECT proof_crs = pg_read_binary_file('$WORK/keys/crs.bin') FROM encml.fhe_key_sets WHERE id = '$KS'")"
assert_match "a proven key set opens no unproven round" "22023.*takes proven updates only" \
  "$(q_err "$DB" "SELECT encml.fhe_open_round('$KS', 100, min_contributions => 3, max_contributions => 8, value_bits => 16, unproven => true)" || true)"
assert_match "the round's value bits are the CRS's" "22023.*proves values of 16 bits, not 20" \
  "$(q_err "$DB" "SELECT encml.fhe_open_round('$KS', 100, min_contributions => 3, max_contributions => 8, value_bits => 20)" || true)"
assert_match "more contributions than the CRS's headroom" "22023.*does not fit" \
  "$(q_err "$DB" "SELECT encml.fhe_open_round('$KS', 100, min_contributions => 3, max_contributions => 100, value_bits => 16)" || true)"
ROUND=$(q "$DB" "SELECT encml.fhe_open_round('$KS', 100, min_contributions => 3, max_contributions => 8, value_bits => 16, frac_bits => 4)")
OTHER=$(q "$DB" "SELECT encml.fhe_open_round('$KS', 100, min_contributions => 3, max_contributions => 8, value_bits => 16, frac_bits => 4)")
assert_eq "the round takes proven updates" "t|19" \
  "$(q "$DB" "SELECT proven, message_bits FROM encml.fhe_round_status WHERE id = $ROUND")"
# An unproven key set's rounds need unproven => true.
"$FHE" keygen --out "$WORK/plain" >"$WORK/plain.id"
chmod 755 "$WORK/plain"; chmod 644 "$WORK/plain/public.key"
q "$DB" "SELECT encml.fhe_register_keyset('plain', pg_read_binary_file('$WORK/plain/public.key'))" >/dev/null
assert_match "a key set without CRS opens no round by default" "55000.*has no CRS" \
  "$(q_err "$DB" "SELECT encml.fhe_open_round('$(cat "$WORK/plain.id")', 100)" || true)"

python3 - "$WORK" <<'PY'
import json, random, sys
work = sys.argv[1]
rng = random.Random(11)
total = [0.0] * 100
for c in range(3):
    v = [rng.randint(-2**15, 2**15 - 1) / 16 for _ in range(100)]
    total = [t + x for t, x in zip(total, v)]
    json.dump(v, open(f"{work}/u{c}.json", "w"))
json.dump(total, open(f"{work}/expected.json", "w"))
PY
for c in 0 1 2 3; do
  q "$DB" "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_it_prover_$c') THEN
             CREATE ROLE encml_it_prover_$c NOLOGIN IN ROLE encml_fhe_contributor; END IF; END \$\$"
done
for c in 0 1 2; do
  "$FHE" encrypt --public-key "$WORK/keys/public.key" --crs "$WORK/keys/crs.bin" --round "$ROUND" \
    --frac-bits 4 --in "$WORK/u$c.json" --out "$WORK/u$c.bin"
  chmod 644 "$WORK/u$c.bin"
done
"$FHE" info --in "$WORK/u0.bin" >"$WORK/u0.info"
assert_match "the tool shows a proven update's header" "proven update: keyset=$KS round=$ROUND dim=100 value_bits=16 frac_bits=4 message_bits=19 values_per_proof=64" "$(cat "$WORK/u0.info")"
submit() { # submit ROLE FILE [ROUND] (on psql's standard input: an update can pass ARG_MAX)
  { echo "SET ROLE $1;"; printf "SELECT encml.fhe_submit_proven(%s, decode('" "${3:-$ROUND}"
    base64 -w0 "$2"; echo "', 'base64'));"; } | psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB"
}
# attack ROUND FILE: the attacker's contributor role (no update of its own yet) submits FILE as
# a proven update; prints the SQLSTATE and message it gets.
attack() {
  q_err "$DB" "SET ROLE encml_it_prover_3; SELECT encml.fhe_submit_proven($1, decode('$(base64 -w0 "$2")', 'base64'))" || true
}
refused_before=$(q "$DB" "SELECT count(*) FROM encml.audit_log WHERE operation = 'fhe_submit_refused'")

# The attacks, each by a contributor role that has not contributed yet.
"$FHE" encrypt --public-key "$WORK/keys/public.key" --value-bits 16 --frac-bits 4 --max-terms 8 \
  --in "$WORK/u0.json" --base64 --out "$WORK/plain.b64"
assert_match "an update without proofs" "22000.*takes proven updates only" \
  "$(q_err "$DB" "SET ROLE encml_it_prover_3; SELECT encml.fhe_submit($ROUND, '$(cat "$WORK/plain.b64")')" || true)"
assert_match "a proven update submitted for another round" "22000.*proven for round $ROUND, not round $OTHER" \
  "$(attack $OTHER "$WORK/u0.bin")"
python3 - "$WORK" "$OTHER" <<'PY'
import struct, sys
work, other = sys.argv[1], int(sys.argv[2])
good = bytearray(open(f"{work}/u0.bin", "rb").read())
HEADER, N = 36, 2048
masks = 2 * N  # 100 values at 64 per proof: two masks
def write(name, data):
    open(f"{work}/{name}.bin", "wb").write(bytes(data))
# The proof's round relabelled: the proof still says round u0 was made for.
relabelled = bytearray(good); relabelled[20:28] = struct.pack("<q", other); write("relabelled", relabelled)
# The chosen mask (A = Δ·2^t·X^0, body 0) that puts key bits into the sum's high bits.
chosen = bytearray(good)
for w in range(N):
    chosen[HEADER + 8 * w:HEADER + 8 * w + 8] = struct.pack("<Q", (1 << 40) if w == 0 else 0)
for b in range(64):
    at = HEADER + 8 * (masks + b)
    chosen[at:at + 8] = struct.pack("<Q", 0)
write("chosen", chosen)
# One body moved by 2^14 steps of Δ = 2^45: a value far outside the proven range.
moved = bytearray(good)
at = HEADER + 8 * (masks + 99)
moved[at:at + 8] = struct.pack("<Q", (struct.unpack("<Q", moved[at:at + 8])[0] + (1 << 59)) % (1 << 64))
write("moved", moved)
# Bytes appended to the first proof, its length raised to cover them.
at = HEADER + 8 * (masks + 100)
n = struct.unpack("<I", good[at:at + 4])[0]
write("padded_proof", good[:at] + struct.pack("<I", n + 10) + good[at + 4:at + 4 + n] + b"\x01" * 10 + good[at + 4 + n:])
write("cut", good[:-1])
write("padded", good + b"\0")
PY
chmod 644 "$WORK"/*.bin
assert_match "a proof relabelled to another round" "22000.*does not verify" \
  "$(attack $OTHER "$WORK/relabelled.bin")"
assert_match "the chosen-mask ciphertext" "22000.*proof 0 does not verify" \
  "$(attack $ROUND "$WORK/chosen.bin")"
assert_match "an out-of-range value (a moved body)" "22000.*proof 1 does not verify" \
  "$(attack $ROUND "$WORK/moved.bin")"
assert_match "a proof with bytes appended" "22000.*proof 0 is not in its canonical encoding" \
  "$(attack $ROUND "$WORK/padded_proof.bin")"
assert_match "cut bytes" "22P03.*cut short|22P03.*missing" \
  "$(attack $ROUND "$WORK/cut.bin")"
assert_match "padded bytes" "22P03.*after its last proof" \
  "$(attack $ROUND "$WORK/padded.bin")"
assert_eq "nothing of them is stored" "0" \
  "$(q "$DB" "SELECT count(*) FROM encml.fhe_contributions WHERE round IN ($ROUND, $OTHER)")"
assert_eq "the refusals left security events (written outside the failed transactions)" "8" \
  "$(q "$DB" "SELECT count(*) - $refused_before FROM encml.audit_log WHERE operation = 'fhe_submit_refused'")"

for c in 0 1 2; do submit "encml_it_prover_$c" "$WORK/u$c.bin" >/dev/null; done
assert_match "a replayed proven update" "23505.*already submitted" \
  "$(attack $ROUND "$WORK/u1.bin")"
assert_eq "three proven updates in the round" "3" "$(q "$DB" "SELECT contributions FROM encml.fhe_round_status WHERE id = $ROUND")"
q "$DB" "SELECT encml.fhe_close_round($ROUND)" >/dev/null
q "$DB" "SELECT encml.fhe_round_sum($ROUND)" >"$WORK/sum.b64"
"$FHE" decrypt --secret-key "$WORK/keys/secret.key" --in "$WORK/sum.b64" --json >"$WORK/sum.json"
assert_eq "the decrypted sum of proven updates equals the plaintext sum" "equal" \
  "$(python3 -c "import json; a=json.load(open('$WORK/sum.json')); b=json.load(open('$WORK/expected.json')); print('equal' if a == b else f'differ at {[i for i in range(len(a)) if a[i] != b[i]][:5]}')")"

# Differentially private round sums (docs/fhe.md): a key set whose CRS leaves room for the noise
# (8-bit values, message bits for 4,096 updates), a round released to one decryptor role only,
# two contributors of zero vectors: the decrypted sum is the noise alone.
KSDP=$("$FHE" keygen --out "$WORK/dp" --proofs --value-bits 8 --max-contributions 4096 --values-per-proof 1024 2>/dev/null)
chmod 755 "$WORK/dp"; chmod 644 "$WORK/dp/public.key" "$WORK/dp/crs.bin"
q "$DB" "SELECT encml.fhe_register_keyset('dp', pg_read_binary_file('$WORK/dp/public.key'), pg_read_binary_file('$WORK/dp/crs.bin'))" >/dev/null
q "$DB" "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_it_dp_reader') THEN
    CREATE ROLE encml_it_dp_reader NOLOGIN IN ROLE encml_fhe_decryptor; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_it_dp_other') THEN
    CREATE ROLE encml_it_dp_other NOLOGIN IN ROLE encml_fhe_decryptor; END IF; END \$\$"
DIM=1024
DPROUND=$(q "$DB" "SELECT encml.fhe_open_round('$KSDP', $DIM, min_contributions => 2, max_contributions => 8, value_bits => 8, frac_bits => 0, decryptor => 'encml_it_dp_reader')")
python3 -c "import json; json.dump([0] * $DIM, open('$WORK/zeros.json', 'w'))"
for c in 0 1; do
  "$FHE" encrypt --public-key "$WORK/dp/public.key" --crs "$WORK/dp/crs.bin" --round "$DPROUND" \
    --frac-bits 0 --in "$WORK/zeros.json" --out "$WORK/z$c.bin"
  submit "encml_it_prover_$c" "$WORK/z$c.bin" "$DPROUND" >/dev/null
done
assert_match "noise that could wrap the sum is refused before anything changes" "22023.*could wrap the sum" \
  "$(q_err "$DB" "SELECT encml.fhe_close_round($DPROUND, dp_epsilon => 0.05, dp_delta => 1e-6)" || true)"
assert_eq "the round is still open" "open" "$(q "$DB" "SELECT status FROM encml.fhe_round_status WHERE id = $DPROUND")"
q "$DB" "SELECT encml.fhe_close_round($DPROUND, dp_epsilon => 1.0, dp_delta => 1e-6)" >/dev/null
SIGMA=$(q "$DB" "SELECT dp_sigma FROM encml.fhe_round_status WHERE id = $DPROUND")
q "$DB" "SELECT encml.set_privacy_budget('encml_it_dp_reader', 2.5, 1e-5)" >/dev/null
assert_match "another decryptor may not read the round's sum" "42501.*releases its sum to role encml_it_dp_reader only" \
  "$(q_err "$DB" "SET ROLE encml_it_dp_other; SELECT encml.fhe_round_sum($DPROUND)" || true)"
q "$DB" "SET ROLE encml_it_dp_reader; SELECT encml.fhe_round_sum($DPROUND)" >"$WORK/dpsum.b64"
charges() {
  q "$DB" "SELECT count(*) FILTER (WHERE granted) || '/' || count(*) FILTER (WHERE NOT granted)
             FROM encml.privacy_charges WHERE analyst = 'encml_it_dp_reader'::regrole"
}
assert_eq "one read, one charge" "1/0" "$(charges)"
q "$DB" "BEGIN; SET ROLE encml_it_dp_reader; SELECT encml.fhe_round_sum($DPROUND) IS NOT NULL; ROLLBACK" >/dev/null
assert_eq "a read in a transaction rolled back is charged all the same" "2/0" "$(charges)"
assert_match "a read the budget no longer covers releases nothing" "42501.*privacy budget exhausted" \
  "$(q_err "$DB" "SET ROLE encml_it_dp_reader; SELECT encml.fhe_round_sum($DPROUND)" || true)"
assert_eq "the refusal is recorded" "2/1" "$(charges)"
assert_eq "the budget spent is two reads' epsilon" "2" \
  "$(q "$DB" "SELECT epsilon_spent FROM encml.privacy_budgets WHERE analyst = 'encml_it_dp_reader'::regrole")"
"$FHE" decrypt --secret-key "$WORK/dp/secret.key" --in "$WORK/dpsum.b64" --json >"$WORK/dpsum.json"
# The sum of zeros is the noise: over 1,024 values its variance is sigma^2 (standard error
# sqrt(2/1024) = 4.4%: within 20%), its mean 0 (within 6 standard errors), 68.3% of it within
# one sigma (standard error 1.5%: within 7 points), every value an integer.
assert_eq "the decrypted DP sum has the stated noise" "ok" "$(python3 - "$WORK/dpsum.json" "$SIGMA" <<'PY'
import json, math, sys
z = json.load(open(sys.argv[1])); sigma = float(sys.argv[2]); n = len(z)
mean = sum(z) / n
var = sum((x - mean) ** 2 for x in z) / (n - 1)
within = sum(1 for x in z if abs(x) <= sigma) / n
problems = []
if n != 1024: problems.append(f"{n} values")
if abs(mean) > 6 * sigma / math.sqrt(n): problems.append(f"mean {mean}")
if abs(var / sigma ** 2 - 1) > 0.2: problems.append(f"variance {var} vs {sigma ** 2}")
if abs(within - 0.6827) > 0.07: problems.append(f"{within} within one sigma")
if any(x != int(x) for x in z): problems.append("not integers")
print("ok" if not problems else f"sigma {sigma}: " + ", ".join(problems))
PY
)"
