#!/usr/bin/env bash
# A/B of two builds of the library on the hot paths, interleaved: benches/ab.sh NEW.so BASE.so
# [ROUNDS]. Each round restarts the cluster of scripts/cluster.sh with each library in turn (the
# order alternates between rounds) and times every workload 3 times (the median counts); the
# ratio NEW/BASE of each round's pair gives one sample, and the report shows the median ratio of
# ROUNDS (default 11) samples with a 95% bootstrap interval. A regression is an interval entirely
# above 1.03 (issue 29). The installed library is NEW.so at the end.
#
# Build the two with `cargo build --release --lib` at each revision (one target directory) and
# copy target/release/libpg_encrypt_ml.so away after each. The database is created under NEW's
# install script; BASE must provide the symbols the workloads call.
#
# Workloads (one core, no parallel workers; sizes from the environment): encrypt and decrypt_text
# of AB_ROWS (1,000,000) 64-character values, AB_LOOKUPS (5,000) det_text lookups through a btree
# index over 100,000 rows, AB_RANGES (1,000) ORE range counts over 100,000 indexed rows, dp_sum
# over AB_DP_ROWS (10,000,000) rows, and AB_INSERTS (100,000) single-row inserts into an audited
# table, and as many into one with two redacted columns (text and timestamptz).
set -euo pipefail
NEW=${1:?NEW.so}; BASE=${2:?BASE.so}; ROUNDS=${3:-11}
cd "$(dirname "$0")/.."
LIB=/usr/lib/postgresql/15/lib/pg_encrypt_ml.so
OUT=target/bench/ab.tsv
mkdir -p target/bench
eval "$(bash scripts/cluster.sh env)"

use_library() {
  bash scripts/cluster.sh stop >/dev/null 2>&1 || true
  rm -f $LIB; cp "$1" $LIB
  bash scripts/cluster.sh start >/dev/null 2>&1
}

use_library "$NEW"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS encml_ab" -c "CREATE DATABASE encml_ab"
psql -X -q -v ON_ERROR_STOP=1 -d encml_ab -v rows="${AB_ROWS:-1000000}" -v lookups="${AB_LOOKUPS:-5000}" \
  -v ranges="${AB_RANGES:-1000}" -v dprows="${AB_DP_ROWS:-10000000}" -v inserts="${AB_INSERTS:-100000}" <<'SQL'
SET client_min_messages = error;
CREATE EXTENSION pg_encrypt_ml;
CREATE TABLE params AS SELECT :lookups AS lookups, :ranges AS ranges, :inserts AS inserts;
CREATE TABLE keys AS SELECT encml.create_key('ab') AS aead, encml.create_key('ab-det', 'deterministic') AS det,
       encml.create_key('ab-ore', 'ore') AS ore;
CREATE TABLE src AS SELECT i AS id, substr(md5(i::text) || md5((i + 1)::text), 1, 64) AS v
  FROM generate_series(1, :rows) i;
CREATE TABLE enc AS SELECT id, encml.encrypt(v, (SELECT aead FROM keys)) AS c FROM src;
CREATE TABLE det AS SELECT id, encml.det_encrypt('value ' || id, (SELECT det FROM keys)) AS d
  FROM generate_series(1, 100000) id;
CREATE INDEX ON det (d);
CREATE TABLE ore AS SELECT id, encml.ore_encrypt(id::bigint, (SELECT ore FROM keys)) AS o
  FROM generate_series(1, 100000) id;
CREATE INDEX ON ore (o);
CREATE TABLE dpdata AS SELECT (i % 100)::float8 AS x FROM generate_series(1, :dprows) i;
CREATE TABLE audited (id int, v text);
SELECT encml.audit_enable('audited');
CREATE TABLE redacted (id int, email text, at timestamptz);
SELECT encml.audit_enable('redacted', '{email,at}');
VACUUM ANALYZE;
SQL

# One line per workload: "<name> <median ms of 3>".
run_workloads() {
  psql -X -q -At -v ON_ERROR_STOP=1 -d encml_ab <<'SQL'
SET client_min_messages = error;
SET max_parallel_workers_per_gather = 0;
SELECT aead, det, ore FROM keys \gset
CREATE TEMP TABLE t (name text, ms float8);
CREATE TEMP TABLE warm AS SELECT encml.decrypt_text(c) FROM enc LIMIT 1000;
DO $$
DECLARE t0 timestamptz; k record; p record; n bigint;
BEGIN
  SELECT * INTO k FROM keys;
  SELECT * INTO p FROM params;
  FOR i IN 1..3 LOOP
    t0 := clock_timestamp();
    EXECUTE format('CREATE TEMP TABLE o AS SELECT id, encml.encrypt(v, %L) FROM src', k.aead);
    INSERT INTO t VALUES ('encrypt', extract(epoch FROM clock_timestamp() - t0) * 1000);
    DROP TABLE o;

    t0 := clock_timestamp();
    SELECT sum(length(encml.decrypt_text(c))) INTO n FROM enc;
    INSERT INTO t VALUES ('decrypt_text', extract(epoch FROM clock_timestamp() - t0) * 1000);

    t0 := clock_timestamp();
    FOR j IN 1..p.lookups LOOP
      EXECUTE 'SELECT count(*) FROM det WHERE d = encml.det_encrypt($1, $2)' INTO n
        USING 'value ' || (j * 97 % 100000 + 1), k.det;
    END LOOP;
    INSERT INTO t VALUES ('det_lookups', extract(epoch FROM clock_timestamp() - t0) * 1000);

    t0 := clock_timestamp();
    FOR j IN 1..p.ranges LOOP
      EXECUTE 'SELECT count(*) FROM ore WHERE o BETWEEN encml.ore_encrypt($1::bigint, $3) AND encml.ore_encrypt($2::bigint, $3)'
        INTO n USING j * 97 % 99000, j * 97 % 99000 + 1000, k.ore;
    END LOOP;
    INSERT INTO t VALUES ('ore_ranges', extract(epoch FROM clock_timestamp() - t0) * 1000);

    t0 := clock_timestamp();
    PERFORM encml.dp_sum(x, 0, 100, 1e-3) FROM dpdata;
    INSERT INTO t VALUES ('dp_sum', extract(epoch FROM clock_timestamp() - t0) * 1000);

    t0 := clock_timestamp();
    FOR j IN 1..p.inserts LOOP
      INSERT INTO audited VALUES (j, 'row ' || j);
    END LOOP;
    INSERT INTO t VALUES ('audited_inserts', extract(epoch FROM clock_timestamp() - t0) * 1000);
    TRUNCATE audited;

    t0 := clock_timestamp();
    FOR j IN 1..p.inserts LOOP
      INSERT INTO redacted VALUES (j, 'user' || j || '@example.org', '2026-01-01'::timestamptz + j * interval '1 second');
    END LOOP;
    INSERT INTO t VALUES ('redacted_inserts', extract(epoch FROM clock_timestamp() - t0) * 1000);
    TRUNCATE redacted;
  END LOOP;
END $$;
SELECT name || ' ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM t GROUP BY name ORDER BY name;
SQL
}

: > "$OUT"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="new base"; else order="base new"; fi
  for so in $order; do
    case $so in new) use_library "$NEW" ;; base) use_library "$BASE" ;; esac
    run_workloads | sed "s/^/$round $so /" | tee -a "$OUT"
  done
done
use_library "$NEW"

python3 - "$OUT" <<'PY'
import random, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs = {}
for rnd, so, name, ms in rows:
    runs.setdefault(name, {}).setdefault(int(rnd), {})[so] = float(ms)
random.seed(29)
print("| workload | base ms (median) | new ms (median) | new/base (median of rounds) | 95% interval | verdict |")
print("|---|---|---|---|---|---|")
for name in sorted(runs):
    pairs = [(r["new"], r["base"]) for r in runs[name].values() if "new" in r and "base" in r]
    ratios = [n / b for n, b in pairs]
    boot = sorted(statistics.median(random.choices(ratios, k=len(ratios))) for _ in range(10000))
    lo, hi = boot[249], boot[9749]
    verdict = "regression" if lo > 1.03 else "no regression"
    print(f"| {name} | {statistics.median(b for _, b in pairs):.1f} | {statistics.median(n for n, _ in pairs):.1f} "
          f"| {statistics.median(ratios):.3f} | {lo:.3f}–{hi:.3f} | {verdict} |")
print(f"\n{len(pairs)} interleaved rounds; {sys.argv[1]} has every sample.")
PY
