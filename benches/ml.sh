#!/usr/bin/env bash
# ML payload benchmarks, each against a baseline in the same run:
#  - encrypt_tensor / decrypt_tensor_real on a 25,000,000-element real[] (100 MB), on an array
#    already in memory (a PL/pgSQL variable: the function alone) and read from a table (TOAST
#    read included), against array_send (plain binary serialization of the same array);
#  - the seed design's way (pgp_sym_encrypt of the JSON text of the weights) against
#    encrypt_tensor on the same 1,000,000 values: speed and size ratios;
#  - lo_encrypt / lo_decrypt of a 2 GB large object against a plain chunked copy of it, with the
#    backend's private memory growth (RssAnon, sampled from /proc).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/cluster.sh env)"
DB=encml_bench_ml
N=${BENCH_TENSOR_VALUES:-25000000}
SEED_N=${BENCH_SEED_VALUES:-1000000}
RUNS=${BENCH_ML_RUNS:-5}
LO_PIECES=${BENCH_LO_PIECES:-32}   # 64 MiB each
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
p() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" "$@"; }
table() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -P border=2 -P footer=off "$@"; }
p -c "CREATE EXTENSION pg_encrypt_ml; CREATE EXTENSION IF NOT EXISTS pgcrypto"
KEY=$(p -c "SET client_min_messages = error; SELECT encml.create_key('bench-ml')")

# --- tensors -------------------------------------------------------------------------------
p <<SQL
CREATE TABLE tensor_src (v real[]);
ALTER TABLE tensor_src ALTER v SET STORAGE EXTERNAL;
INSERT INTO tensor_src SELECT array_agg(random()::real) FROM generate_series(1, $N);
CREATE TABLE tensor_enc AS SELECT encml.encrypt_tensor(v, '$KEY') AS c FROM tensor_src;
CREATE TABLE timings (what text, ms float8);
CREATE FUNCTION timed(what text) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); n bigint;
BEGIN
    -- Every variant reads the stored value (TOAST, 100 MB) the same way; the read-only ones are
    -- the baselines, and the difference is the function's own cost.
    CASE what
      WHEN 'read real[] (cardinality)' THEN SELECT cardinality(t.v) INTO n FROM tensor_src t;
      WHEN 'array_send (plain serialization)' THEN SELECT octet_length(array_send(t.v)) INTO n FROM tensor_src t;
      WHEN 'encrypt_tensor' THEN SELECT octet_length(encml.encrypt_tensor(t.v, '$KEY')::bytea) INTO n FROM tensor_src t;
      WHEN 'read enc_bytea (get_byte)' THEN SELECT get_byte(e.c::bytea, 0) INTO n FROM tensor_enc e;
      WHEN 'decrypt_tensor_real' THEN SELECT cardinality(encml.decrypt_tensor_real(e.c)) INTO n FROM tensor_enc e;
    END CASE;
    INSERT INTO timings VALUES (what, extract(epoch FROM clock_timestamp() - t0) * 1000);
END \$\$;
SQL
for r in $(seq 0 "$RUNS"); do   # run 0 warms up and is discarded
  for w in 'read real[] (cardinality)' 'array_send (plain serialization)' encrypt_tensor \
           'read enc_bytea (get_byte)' decrypt_tensor_real; do
    p -c "SELECT timed('$w')" >/dev/null
  done
  [ "$r" = 0 ] && p -c "TRUNCATE timings"
done
echo
echo "Encrypted tensors: $N float32 values ($((N * 4 / 1000000)) MB) read from a table, median of $RUNS runs (target: >= 500 MB/s)"
table -c "
WITH m AS (SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM timings GROUP BY what),
     base AS (SELECT (SELECT ms FROM m WHERE what LIKE 'read real%') AS arr, (SELECT ms FROM m WHERE what LIKE 'read enc%') AS enc)
SELECT m.what AS operation, round(m.ms::numeric, 1) AS ms,
       round(($N * 4 / 1e6 / (m.ms / 1000))::numeric) AS mb_per_s_end_to_end,
       CASE WHEN m.what NOT LIKE 'read%' THEN round(($N * 4 / 1e6 / ((m.ms - CASE WHEN m.what LIKE 'decrypt%' THEN base.enc ELSE base.arr END) / 1000))::numeric) END
         AS mb_per_s_function_only
  FROM m, base
 ORDER BY m.what LIKE '%decrypt%' OR m.what LIKE '%enc_bytea%', m.what LIKE 'read%' DESC, m.what"
table -c "
SELECT octet_length(c::bytea) AS ciphertext_bytes, octet_length(c::bytea) - $N * 4 AS overhead_bytes FROM tensor_enc"

# --- the seed's way -----------------------------------------------------------------------
p <<SQL
CREATE TABLE seed_src AS SELECT array_agg(random()::real) AS v FROM generate_series(1, $SEED_N);
CREATE TABLE seed_t (what text, ms float8, bytes bigint);
CREATE FUNCTION seed_timed(what text) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE v real[] := (SELECT s.v FROM seed_src s); t0 timestamptz; c bytea; r real[];
BEGIN
    t0 := clock_timestamp();
    IF what = 'pgp_sym_encrypt(json)' THEN c := pgp_sym_encrypt(array_to_json(v)::text, 'model-password');
    ELSIF what = 'encrypt_tensor' THEN c := encml.encrypt_tensor(v, '$KEY')::bytea;
    ELSIF what = 'pgp_sym_decrypt(json)' THEN
        c := pgp_sym_encrypt(array_to_json(v)::text, 'model-password'); t0 := clock_timestamp();
        SELECT array_agg(x::real) INTO r FROM json_array_elements_text(pgp_sym_decrypt(c, 'model-password')::json) x;
    ELSE
        c := encml.encrypt_tensor(v, '$KEY')::bytea; t0 := clock_timestamp();
        r := encml.decrypt_tensor_real(c::encml.enc_bytea);
    END IF;
    INSERT INTO seed_t VALUES (what, extract(epoch FROM clock_timestamp() - t0) * 1000, octet_length(c));
END \$\$;
SQL
for r in $(seq 1 "$RUNS"); do
  for w in 'pgp_sym_encrypt(json)' encrypt_tensor 'pgp_sym_decrypt(json)' decrypt_tensor_real; do
    p -c "SELECT seed_timed('$w')" >/dev/null
  done
done
echo
echo "The seed's way (pgp_sym_encrypt of the JSON text) vs encrypt_tensor: $SEED_N float32 values, median of $RUNS"
table -c "
WITH m AS (SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms, max(bytes) AS bytes FROM seed_t GROUP BY what)
SELECT s.what AS seed, round(s.ms::numeric, 1) AS seed_ms, e.what AS ours, round(e.ms::numeric, 1) AS ours_ms,
       round((s.ms / e.ms)::numeric, 1) AS speedup, s.bytes AS seed_bytes, e.bytes AS ours_bytes,
       round((s.bytes::numeric / e.bytes), 2) AS size_ratio
  FROM m s JOIN m e ON (s.what, e.what) IN (('pgp_sym_encrypt(json)', 'encrypt_tensor'), ('pgp_sym_decrypt(json)', 'decrypt_tensor_real'))
 ORDER BY s.what DESC"

# --- large objects ----------------------------------------------------------------------------
SRC=$(p -c "SELECT lo_create(0)")
p -c "DO \$\$ DECLARE piece bytea := encml.encrypt(convert_to(repeat('x', 64 * 1048576 - 52), 'UTF8'), '$KEY')::bytea;
      BEGIN FOR i IN 0 .. $LO_PIECES - 1 LOOP
          PERFORM lo_put($SRC, i::bigint * 67108864, overlay(piece placing int8send(i) from 1));
      END LOOP; END \$\$"
SIZE=$((LO_PIECES * 67108864))
# Baseline in its own session: the same bytes copied without encryption.
p >/dev/null <<SQL
SELECT set_config('bench.copy', lo_create(0)::text, false);
SELECT clock_timestamp() AS t0 \\gset
DO \$\$ DECLARE fd int := lo_open(current_setting('bench.copy')::oid, 131072);
BEGIN FOR i IN 0 .. $SIZE / 1048576 - 1 LOOP PERFORM lowrite(fd, lo_get($SRC, i::bigint * 1048576, 1048576)); END LOOP; END \$\$;
SELECT extract(epoch FROM clock_timestamp() - :'t0') \\g $WORK/copy_s
SQL
# The measured session: warm-up (key cache), then lo_encrypt and lo_decrypt while RssAnon is sampled.
cat >"$WORK/lo.sql" <<SQL
SELECT pg_backend_pid() \\g $WORK/pid
SELECT lo_from_bytea(0, '\\x00') AS w \\gset
SELECT encml.lo_encrypt(:w, '$KEY') AS we \\gset
SELECT encml.lo_decrypt(:we) IS NULL;
SELECT pg_sleep(0.5);
SELECT clock_timestamp() AS t0 \\gset
SELECT encml.lo_encrypt($SRC, '$KEY') AS enc \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0') \\g $WORK/enc_s
SELECT clock_timestamp() AS t0 \\gset
SELECT encml.lo_decrypt(:enc) AS dec \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0') \\g $WORK/dec_s
SELECT :enc \\g $WORK/enc
SQL
psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" -f "$WORK/lo.sql" >/dev/null &
PSQL=$!
while [ ! -s "$WORK/pid" ]; do sleep 0.05; done
PID=$(cat "$WORK/pid"); sleep 0.3
BASE=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status"); PEAK=$BASE
while kill -0 "$PSQL" 2>/dev/null; do
  NOW=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
  [ "${NOW:-0}" -gt "$PEAK" ] && PEAK=$NOW
  sleep 0.1
done
wait "$PSQL"
echo
echo "Encrypted large objects: $((SIZE / 1048576)) MiB, 1 MiB chunks (target: lo_encrypt >= 300 MB/s, RssAnon growth < 64 MB)"
table -c "
SELECT what AS operation, round(s::numeric, 2) AS seconds, round(($SIZE / 1e6 / s)::numeric) AS mb_per_s,
       round((s / $(cat "$WORK/copy_s"))::numeric, 2) AS x_plain_copy
  FROM (VALUES ('plain chunked copy (lo_get + lowrite)', $(cat "$WORK/copy_s")),
               ('lo_encrypt', $(cat "$WORK/enc_s")), ('lo_decrypt', $(cat "$WORK/dec_s"))) AS t(what, s)"
RANGE_S=$(p <<SQL | tail -1
SELECT clock_timestamp() AS t0 \\gset
SELECT octet_length(encml.lo_decrypt_range($(cat "$WORK/enc"), $SIZE / 2, 67108864));
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
)
echo "lo_decrypt_range of 64 MiB from the middle: $RANGE_S s"
echo "backend private memory (RssAnon): $((BASE / 1024)) MB before, $((PEAK / 1024)) MB peak, growth $(((PEAK - BASE) / 1024)) MB"
