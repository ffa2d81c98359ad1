#!/usr/bin/env bash
# A/B of two builds of the library on encml.encrypt throughput (1M rows of 64 characters, one
# core, temp table): benches/library_ab.sh NEW.so BASE.so [ROUNDS]. Each round restarts the
# cluster of scripts/cluster.sh with each library in turn and reports the median of 5 runs; the
# installed library is put back from NEW.so at the end (reinstall with make install-dev after).
# Build the two with `cargo pgrx install --release` at each revision and copy the .so away.
set -euo pipefail
NEW=${1:?NEW.so}; BASE=${2:?BASE.so}; ROUNDS=${3:-3}
cd "$(dirname "$0")/.."
LIB=/usr/lib/postgresql/15/lib/pg_encrypt_ml.so
eval "$(bash scripts/cluster.sh env)"
bash scripts/cluster.sh stop >/dev/null 2>&1 || true
rm -f $LIB; cp "$NEW" $LIB
bash scripts/cluster.sh start >/dev/null 2>&1
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS encml_ab" -c "CREATE DATABASE encml_ab"
psql -X -q -d encml_ab <<'SQL'
SET client_min_messages = error;
CREATE EXTENSION pg_encrypt_ml;
CREATE TABLE src AS SELECT i AS id, substr(md5(i::text) || md5((i + 1)::text), 1, 64) AS v FROM generate_series(1, 1000000) i;
VACUUM ANALYZE src;
CREATE TABLE k AS SELECT encml.create_key('ab') AS k;
SQL
for round in $(seq "$ROUNDS"); do
for so in new base; do
  case $so in new) file=$NEW ;; base) file=$BASE ;; esac
  bash scripts/cluster.sh stop >/dev/null 2>&1 || true
  rm -f $LIB; cp "$file" $LIB
  bash scripts/cluster.sh start >/dev/null 2>&1
  psql -X -q -At -d encml_ab <<'SQL' | sed "s/^/$so /"
SET client_min_messages = error;
SET max_parallel_workers_per_gather = 0;
SELECT k AS key FROM k \gset
CREATE TEMP TABLE warm AS SELECT encml.encrypt(v, :'key') FROM src LIMIT 1000;
CREATE TEMP TABLE t (ms float8);
DO $$
DECLARE t0 timestamptz; key uuid := (SELECT k FROM k);
BEGIN
  FOR i IN 1..5 LOOP
    t0 := clock_timestamp();
    EXECUTE format('CREATE TEMP TABLE o AS SELECT id, encml.encrypt(v, %L) FROM src', key);
    INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    DROP TABLE o;
  END LOOP;
END $$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM t;
SQL
done; done
bash scripts/cluster.sh stop >/dev/null 2>&1 || true
rm -f $LIB; cp "$NEW" $LIB
bash scripts/cluster.sh start >/dev/null 2>&1
