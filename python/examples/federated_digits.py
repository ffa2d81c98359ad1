"""A federated round trip through pg_encrypt_ml (docs/fhe.md, "Python client").

Three clients train a softmax regression on their share of scikit-learn's bundled digits (8x8
images, 10 classes: 650 parameters). Each round the coordinator opens an FHE round, every
client sends its model update encrypted and proven (pg_encrypt_ml_fhe.encrypt_and_prove), the
coordinator closes the round, and the key holder reads the encrypted sum, decrypts it and
averages it into the global model. Then the same training with differentially private round
sums (fhe_close_round with dp_epsilon), whose every read is charged to the key holder's privacy
budget. Prints what each step did and a JSON summary on the last line.

    python federated_digits.py DBNAME [ROUNDS]

Connects as the current OS user's Postgres role (a superuser: it creates the roles it acts as);
PGHOST/PGPORT as for psql.
"""
import json
import sys

import numpy as np
import psycopg
from sklearn.datasets import load_digits

import pg_encrypt_ml_fhe as fhe

DB = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
CLIENTS = 3
VALUE_BITS, FRAC_BITS = 8, 6  # updates in [-2, 2) at steps of 1/64
LIMIT = 2 ** (VALUE_BITS - 1 - FRAC_BITS) - 2 ** -FRAC_BITS
DP_EPSILON, DP_DELTA = 1.0, 1e-6

db = psycopg.connect(dbname=DB, autocommit=True)
db.execute("SET client_min_messages = warning")
db.execute("CREATE EXTENSION IF NOT EXISTS pg_encrypt_ml")
roles = {"fl_coordinator": "encml_fhe_admin", "fl_keyholder": "encml_fhe_decryptor"}
roles.update({f"fl_client_{i}": "encml_fhe_contributor" for i in range(CLIENTS)})
for role, group in roles.items():
    db.execute(f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN IN ROLE {group};
        END IF; END $$""")


def as_role(role, sql, params=()):
    """One statement as `role` (SET ROLE in this superuser session)."""
    with db.transaction():
        db.execute(f"SET LOCAL ROLE {role}")
        return db.execute(sql, params).fetchone()[0]


# The key holder makes the key set; the coordinator registers its public part. The CRS leaves
# message bits for DP noise (max_contributions 4096: 20 message bits for 8-bit values).
keys = fhe.keygen(proofs=True, value_bits=VALUE_BITS, max_contributions=4096, values_per_proof=1024)
keyset = as_role("fl_coordinator", "SELECT encml.fhe_register_keyset(%s, %s, %s)::text",
                 (f"digits-{keys.id[:8]}", keys.public_key, keys.crs))
assert keyset == keys.id
db.execute("SELECT encml.set_privacy_budget('fl_keyholder', %s, %s)", (DP_EPSILON * ROUNDS, DP_DELTA * ROUNDS))
print(f"key set {keyset} registered; key holder's budget epsilon {DP_EPSILON * ROUNDS}")

digits = load_digits()
x = digits.data / 16.0
x = np.hstack([x, np.ones((len(x), 1))])  # bias column: W is 65 x 10 = 650 parameters
y = np.eye(10)[digits.target]
rng = np.random.default_rng(7)
order = rng.permutation(len(x))
test, train = order[:360], order[360:]
shares = np.array_split(train, CLIENTS)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def local_update(w, rows, epochs=40, rate=0.5):
    """Full-batch gradient descent from the global model on one client's rows."""
    local = w.copy()
    for _ in range(epochs):
        grad = x[rows].T @ (softmax(x[rows] @ local) - y[rows]) / len(rows)
        local -= rate * grad
    return local - w


def accuracy(w):
    return float((np.argmax(x[test] @ w, axis=1) == digits.target[test]).mean())


def federated(dp):
    w = np.zeros((65, 10))
    exact_ok, noise_sd = True, []
    for r in range(ROUNDS):
        round_id = as_role("fl_coordinator",
                           """SELECT encml.fhe_open_round(%s, 650, min_contributions => %s,
                                  max_contributions => 8, value_bits => %s, frac_bits => %s,
                                  decryptor => 'fl_keyholder')""",
                           (keyset, CLIENTS, VALUE_BITS, FRAC_BITS))
        quantized = []
        for c in range(CLIENTS):
            update = np.clip(local_update(w, shares[c]), -LIMIT, LIMIT).ravel()
            quantized.append(np.round(update * 2 ** FRAC_BITS) / 2 ** FRAC_BITS)
            proven = fhe.encrypt_and_prove(update, keys.public_key, keys.crs, round_id, FRAC_BITS)
            as_role(f"fl_client_{c}", "SELECT encml.fhe_submit_proven(%s, %s)", (round_id, proven))
        if dp:
            as_role("fl_coordinator", "SELECT encml.fhe_close_round(%s, dp_epsilon => %s, dp_delta => %s)",
                    (round_id, DP_EPSILON, DP_DELTA))
        else:
            as_role("fl_coordinator", "SELECT encml.fhe_close_round(%s)", (round_id,))
        encrypted = as_role("fl_keyholder", "SELECT encml.fhe_round_sum(%s)::bytea", (round_id,))
        total = fhe.decrypt(bytes(encrypted), keys.secret_key())
        exact = np.sum(quantized, axis=0)
        if dp:
            sigma = db.execute("SELECT dp_sigma FROM encml.fhe_round_status WHERE id = %s", (round_id,)).fetchone()[0]
            noise_sd.append((float(np.std(total - exact)), sigma))
        else:
            exact_ok = exact_ok and bool(np.array_equal(total, exact))
        w += (total / CLIENTS).reshape(65, 10)
        print(f"{'dp ' if dp else ''}round {round_id}: {CLIENTS} proven updates summed, test accuracy {accuracy(w):.3f}")
    return w, exact_ok, noise_sd


central = np.zeros((65, 10))
for _ in range(ROUNDS):
    central += local_update(central, train)
plain_w, exact_ok, _ = federated(dp=False)
dp_w, _, noise_sd = federated(dp=True)
spent = db.execute("""SELECT epsilon_spent FROM encml.privacy_budgets
                       WHERE analyst = 'fl_keyholder'::regrole""").fetchone()[0]
summary = {
    "centralized_accuracy": accuracy(central),
    "federated_accuracy": accuracy(plain_w),
    "sums_exact": exact_ok,
    "dp_accuracy": accuracy(dp_w),
    "dp_noise_sd_vs_sigma": noise_sd,
    "epsilon_spent": spent,
}
print(f"centralized {summary['centralized_accuracy']:.3f}, federated over encrypted proven updates "
      f"{summary['federated_accuracy']:.3f}, with DP round sums (epsilon {DP_EPSILON} per round) "
      f"{summary['dp_accuracy']:.3f}: with {CLIENTS} clients the noise (sigma {noise_sd[0][1]:.0f} per "
      f"parameter) drowns updates of at most {LIMIT} (docs/fhe.md, cost in utility)")
print(json.dumps(summary))
