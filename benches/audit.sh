#!/usr/bin/env bash
# Audited vs unaudited single-row INSERT throughput with pgbench: BENCH_AUDIT_TX inserts (default
# 100,000) from 4 clients into the same table, alternating audited and unaudited rounds, and
# reporting the ratio of medians. Target: audited at least 70% of unaudited.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
TX=${BENCH_AUDIT_TX:-100000}
ROUNDS=${BENCH_AUDIT_ROUNDS:-3}
CLIENTS=4
DB=encml_bench_audit
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" <<'SQL'
CREATE EXTENSION pg_encrypt_ml;
CREATE TABLE events (id bigserial PRIMARY KEY, account int NOT NULL, email text, amount numeric, note text);
SELECT encml.classify('events', 'email', 'pii');
SQL
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat > "$script" <<'PGB'
\set a random(1, 100000)
INSERT INTO events (account, email, amount, note) VALUES (:a, 'user' || :a || '@example.com', :a * 0.01, 'payment');
PGB
tps() {  # one pgbench run, prints its tps (excluding connection setup)
  pgbench -n -c $CLIENTS -j 2 -t $((TX / CLIENTS)) -f "$script" "$DB" 2>/dev/null \
    | awk '/^tps/ {print $3; exit}'
}
plain=(); audited=()
for r in $(seq 1 "$ROUNDS"); do
  psql -X -q -d "$DB" -c "SELECT encml.audit_disable('events')" >/dev/null 2>&1 || true
  psql -X -q -d "$DB" -c "TRUNCATE events" >/dev/null
  plain+=("$(tps)")
  psql -X -q -d "$DB" -c "TRUNCATE events; SELECT encml.audit_enable('events')" >/dev/null
  audited+=("$(tps)")
  psql -X -q -d "$DB" -c "SELECT encml.audit_seal()" >/dev/null
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plain[@]}"); a=$(median "${audited[@]}")
ok=$(psql -X -At -d "$DB" -c "SELECT ok FROM encml.audit_verify()")
seal_ms=$(psql -X -At -d "$DB" -c "INSERT INTO events (account) SELECT g FROM generate_series(1, 100000) g" \
  -c "\timing on" -c "SELECT encml.audit_seal()" | awk '/^Time/ {print $2}')
echo
echo "### Audit log: $TX single-row INSERTs, $CLIENTS clients (pgbench), median of $ROUNDS rounds"
echo
echo "| table | tps | ratio to unaudited |"
echo "|---|---|---|"
echo "| unaudited | $p | 1.00 |"
echo "| audited (email redacted) | $a | $(awk -v a="$a" -v p="$p" 'BEGIN {printf "%.2f", a / p}') |"
echo
echo "Chain verifies after the run: $ok. Sealing 100,000 rows (one bulk INSERT): ${seal_ms} ms."
