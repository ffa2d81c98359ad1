#!/usr/bin/env bash
# Secure aggregation end to end with the client tool: keygen, register the public key, clients
# encrypt JSON/CSV updates, SQL sums them in a round, the key holder decrypts the sum; the result
# equals the plaintext sum. Also: the tool refuses what does not fit and damaged input.
source "$(dirname "$0")/lib.sh"
DB=encml_it_fhe
WORK=$(mktemp -d)
chmod 755 "$WORK"   # the server reads the (public) server key file from here
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
# The same package set and features as `make test-unit`, so the build is shared (tfhe is slow).
cargo build -q -p encml-core -p encml-dp -p encml-fhe --features encml-fhe/uint32,encml-fhe/zk --bin pg_encrypt_ml-fhe
FHE=${CARGO_TARGET_DIR:-target}/debug/pg_encrypt_ml-fhe
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null

KS=$("$FHE" keygen --out "$WORK/keys")
assert_eq "secret key file is private" "600" "$(stat -c %a "$WORK/keys/secret.key")"
PK_HEX=$(od -An -v -tx1 "$WORK/keys/public.key" | tr -d ' \n')
assert_eq "register the public key" "$KS" \
  "$(q "$DB" "SELECT encml.fhe_register_keyset('it', '\\x$PK_HEX')")"
q "$DB" "SELECT public_material FROM encml.fhe_key_sets WHERE id = '$KS'" >"$WORK/pk_from_db.hex"
assert_eq "clients can download the public key" "\\x$PK_HEX" "$(cat "$WORK/pk_from_db.hex")"

ROUND=$(q "$DB" "SELECT encml.fhe_open_round('$KS', 500, min_contributions => 12, max_contributions => 100, value_bits => 20, frac_bits => 8, unproven => true)")
# 12 clients, random signed fixed-point updates of 500 values; JSON for even, CSV for odd ones.
python3 - "$WORK" <<'PY'
import json, random, sys
work = sys.argv[1]
rng = random.Random(7)
total = [0.0] * 500
for c in range(12):
    v = [rng.randint(-2**19 + 1, 2**19 - 1) / 256 for _ in range(500)]
    total = [t + x for t, x in zip(total, v)]
    with open(f"{work}/u{c}.txt", "w") as f:
        f.write(json.dumps(v) if c % 2 == 0 else "\n".join(",".join(map(str, v[i:i + 50])) for i in range(0, 500, 50)))
with open(f"{work}/expected.json", "w") as f:
    json.dump(total, f)
PY
# A round takes one update per contributor role: one role per client.
for c in $(seq 0 11); do
  q "$DB" "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'encml_it_client_$c') THEN
             CREATE ROLE encml_it_client_$c NOLOGIN IN ROLE encml_fhe_contributor; END IF; END \$\$"
  "$FHE" encrypt --public-key "$WORK/keys/public.key" --value-bits 20 --frac-bits 8 --max-terms 100 \
    --in "$WORK/u$c.txt" --base64 --out "$WORK/u$c.b64"
  q "$DB" "SET ROLE encml_it_client_$c; SELECT encml.fhe_submit($ROUND, '$(cat "$WORK/u$c.b64")')" >/dev/null
done
assert_match "a second update from one client role is refused" "23505.*already contributed" \
  "$(q_err "$DB" "SET ROLE encml_it_client_0; SELECT encml.fhe_submit($ROUND, '$(cat "$WORK/u1.b64")')" || true)"
assert_eq "12 updates in the round" "12" "$(q "$DB" "SELECT contributions FROM encml.fhe_round_status WHERE id = $ROUND")"
q "$DB" "SELECT encml.fhe_close_round($ROUND)" >/dev/null
q "$DB" "SELECT encml.fhe_round_sum($ROUND)" >"$WORK/sum.b64"
"$FHE" info --in "$WORK/sum.b64" >"$WORK/info"
assert_match "the sum's header" "keyset=$KS dim=500 terms=12 value_bits=20 frac_bits=8 message_bits=27" "$(cat "$WORK/info")"
"$FHE" decrypt --secret-key "$WORK/keys/secret.key" --in "$WORK/sum.b64" --json >"$WORK/sum.json"
assert_eq "decrypted round sum equals the plaintext sum" "equal" \
  "$(python3 -c "import json,sys; a=json.load(open('$WORK/sum.json')); b=json.load(open('$WORK/expected.json')); print('equal' if a == b else f'differ at {[i for i in range(len(a)) if a[i] != b[i]][:5]}')")"
# The same through a plain aggregate over a table, with psql's binary (hex) output.
q "$DB" "CREATE TABLE updates (u encml.fhe_vector)"
for c in 0 1 2; do q "$DB" "INSERT INTO updates VALUES ('$(cat "$WORK/u$c.b64")')"; done
q "$DB" "SELECT encml.fhe_vector_sum(u)::bytea FROM updates" >"$WORK/sum3.hex"
"$FHE" decrypt --secret-key "$WORK/keys/secret.key" --in "$WORK/sum3.hex" --json >"$WORK/sum3.json"
assert_eq "decrypted table sum (hex transport) equals the plaintext sum" "equal" \
  "$(python3 -c "
import json
def load(c):
    t = open(f'$WORK/u{c}.txt').read()
    return json.loads(t) if t.startswith('[') else [float(x) for x in t.replace(chr(10), ',').split(',')]
u = [load(c) for c in (0, 1, 2)]
s = [a + b + c for a, b, c in zip(*u)]
print('equal' if s == json.load(open('$WORK/sum3.json')) else 'differ')")"
# The tool refuses values that do not fit, a wrong key and damaged input.
echo "[1e9]" >"$WORK/big.json"
assert_match "value too large for the encoding" "needs more than 20 bits" \
  "$("$FHE" encrypt --public-key "$WORK/keys/public.key" --value-bits 20 --in "$WORK/big.json" --out /dev/null 2>&1 || true)"
"$FHE" keygen --out "$WORK/other" >/dev/null
assert_match "another secret key" "not under this key" \
  "$("$FHE" decrypt --secret-key "$WORK/other/secret.key" --in "$WORK/sum.b64" 2>&1 || true)"
head -c 3000 "$WORK/u0.b64" >"$WORK/cut.b64"
assert_match "truncated ciphertext" "malformed|not an fhe_vector" \
  "$("$FHE" decrypt --secret-key "$WORK/keys/secret.key" --in "$WORK/cut.b64" 2>&1 || true)"
assert_match "truncated upload refused by the server" "22P03|invalid input" \
  "$(q_err "$DB" "SELECT encml.fhe_submit($ROUND, '$(cat "$WORK/cut.b64")')" || true)"

# Scalar fhe_uint32: client key outside, server key registered from a file, sum in SQL.
"$FHE" keygen --kind uint32 --out "$WORK/u32" >"$WORK/u32.id"
chmod 755 "$WORK/u32"; chmod 644 "$WORK/u32/server.key"
assert_eq "client key file is private" "600" "$(stat -c %a "$WORK/u32/client.key")"
assert_eq "register the server key" "$(cat "$WORK/u32.id")" \
  "$(q "$DB" "SELECT encml.fhe_register_keyset('it-u32', pg_read_binary_file('$WORK/u32/server.key'))")"
q "$DB" "CREATE TABLE payments (amount encml.fhe_uint32)"
for v in 1200 34 99999; do
  # A ciphertext (~350 KB of base64) is over the 128 KB limit of one command-line argument.
  echo "INSERT INTO payments VALUES ('$("$FHE" encrypt --client-key "$WORK/u32/client.key" --value $v --base64)');" \
    | psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f -
done
q "$DB" "SELECT encml.fhe_sum(amount) FROM payments" >"$WORK/u32sum.b64"
assert_eq "decrypted fhe_sum" "101233" \
  "$("$FHE" decrypt --client-key "$WORK/u32/client.key" --in "$WORK/u32sum.b64")"
q "$DB" "SELECT encml.fhe_compare(encml.fhe_sum(amount), '>', 100000) FROM payments" >"$WORK/u32cmp.b64"
assert_eq "decrypted comparison" "true" \
  "$("$FHE" decrypt --client-key "$WORK/u32/client.key" --in "$WORK/u32cmp.b64")"
# tfhe-rs runs the scalar operations on rayon's global pool: its threads must have Postgres's
# signals blocked (workers::prepare_global_pool), or a SIGTERM or SIGALRM lands on one of them.
assert_match "rayon's threads in the backend have Postgres's signals blocked" "^[1-9][0-9]* threads, 0 with signals open$" \
  "$(q "$DB" "SELECT encml.fhe_compare(encml.fhe_sum(amount), '>', 100000) IS NOT NULL FROM payments;
    WITH t AS (SELECT pg_read_file('/proc/' || pg_backend_pid() || '/task/' || tid || '/status') AS st
                 FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task') tid
                WHERE tid::int <> pg_backend_pid()),
         s AS (SELECT ('x' || (regexp_match(st, 'SigBlk:\s+([0-9a-f]+)'))[1])::bit(64)::bigint AS blk FROM t)
    SELECT count(*) || ' threads, ' || count(*) FILTER (WHERE blk & 25090 <> 25090) || ' with signals open' FROM s" | tail -n 1)"
assert_match "a vector key cannot decrypt a scalar" "not an FHE|malformed|Malformed|not a" \
  "$("$FHE" decrypt --client-key "$WORK/keys/secret.key" --in "$WORK/u32sum.b64" 2>&1 || true)"
