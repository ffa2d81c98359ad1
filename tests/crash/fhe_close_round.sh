#!/usr/bin/env bash
# Crash inside fhe_close_round: paused after the round's row says closed with its sum, before the
# contributions are cleared and the transaction commits; the server stopped (immediate). After
# restart the round is open with its three updates; closed again, its sum decrypts to the sum of
# the updates.
source "$(dirname "$0")/lib.sh"
crash_cluster
q "CREATE ROLE crash_c1 IN ROLE encml_fhe_contributor; CREATE ROLE crash_c2 IN ROLE encml_fhe_contributor;
   CREATE ROLE crash_c3 IN ROLE encml_fhe_contributor" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET encml.fhe_client_functions = on" \
  -c "CREATE TABLE f AS SELECT k.secret_key, encml.fhe_register_keyset('crash-fhe', k.public_material) AS keyset FROM encml.fhe_keygen() k" \
  -c "ALTER TABLE f ADD COLUMN round bigint" \
  -c "UPDATE f SET round = encml.fhe_open_round(keyset, 2, min_contributions => 3, unproven => true)" \
  -c "CREATE TABLE u AS SELECT r, encml.fhe_encrypt(ARRAY[r, 10 * r]::float8[], keyset) AS u FROM f, generate_series(1, 3) r" \
  -c "GRANT SELECT ON f, u TO encml_fhe_contributor" >/dev/null
for r in 1 2 3; do
  psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET ROLE crash_c$r" -c "SELECT encml.fhe_submit(round, u) FROM f, u WHERE r = $r" >/dev/null
done
kill_at fhe_close_round server "SELECT encml.fhe_close_round(round) FROM f"
assert_eq "after the crash the round is open with its three updates" "open|3" \
  "$(q "SELECT r.status, (SELECT count(*) FROM encml.fhe_contributions c WHERE c.round = r.id AND c.update IS NOT NULL)
          FROM encml.fhe_rounds r JOIN f ON f.round = r.id")"
q "SELECT encml.fhe_close_round(round) FROM f" >/dev/null
assert_eq "closed again: its sum is the sum of the updates" "{6,60}" \
  "$(psql -X -q -At -d "$DB" -c "SET encml.fhe_client_functions = on" \
       -c "SELECT encml.fhe_decrypt(encml.fhe_round_sum(round), secret_key) FROM f")"
