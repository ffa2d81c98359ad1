#!/usr/bin/env bash
# make test-slow: a 2.25 GB large object (beyond the 1 GB limit of a bytea) encrypted and
# decrypted by the server in bounded memory: the round trip is exact (compared piece by piece),
# range reads across the 1 GB and 2 GB marks match, a truncated object is refused, and the
# backend's private memory (RssAnon) grows by less than 64 MB.
source "$(dirname "$0")/../integration/lib.sh"
DB=encml_slow_lo
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" 2>/dev/null || true' EXIT
dropdb --if-exists "$DB" 2>/dev/null; createdb "$DB"
PIECES=${ENCML_SLOW_LO_PIECES:-36}   # 64 MiB each: 2.25 GiB
q "$DB" "CREATE EXTENSION pg_encrypt_ml" >/dev/null
KEY=$(q "$DB" "SET client_min_messages = error; SELECT encml.create_key('slow-lo')")
# Pseudo-random pieces (ciphertext of zeros), each a little different, written with lo_put.
SRC=$(q "$DB" "SELECT lo_create(0)")
q "$DB" "DO \$\$ DECLARE p bytea := encml.encrypt(convert_to(repeat('x', 64 * 1048576 - 52), 'UTF8'), '$KEY')::bytea;
         BEGIN FOR i IN 0 .. $PIECES - 1 LOOP
             PERFORM lo_put($SRC, i::bigint * 67108864, overlay(p placing int8send(i) from 1));
         END LOOP; END \$\$" >/dev/null
SIZE=$(q "$DB" "SELECT $PIECES::bigint * 67108864")
echo "source: large object $SRC, $SIZE bytes"

# One session: warm up (key cache), note RssAnon, encrypt and decrypt, sample RssAnon meanwhile.
cat >"$WORK/run.sql" <<SQL
SELECT pg_backend_pid() \\g $WORK/pid
SELECT lo_from_bytea(0, '\\x00') AS w \\gset
SELECT encml.lo_encrypt(:w, '$KEY') AS we \\gset
SELECT encml.lo_decrypt(:we) IS NOT NULL;
SELECT pg_sleep(0.5);
SELECT clock_timestamp() AS t0 \\gset
SELECT encml.lo_encrypt($SRC, '$KEY') AS enc \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0') \\g $WORK/enc_s
SELECT clock_timestamp() AS t0 \\gset
SELECT encml.lo_decrypt(:enc) AS dec \\gset
SELECT extract(epoch FROM clock_timestamp() - :'t0') \\g $WORK/dec_s
SELECT :enc \\g $WORK/enc
SELECT :dec \\g $WORK/dec
SQL
psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" -f "$WORK/run.sql" >/dev/null &
PSQL=$!
while [ ! -s "$WORK/pid" ]; do sleep 0.05; done
PID=$(cat "$WORK/pid")
sleep 0.3
BASE=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status")
PEAK=$BASE
while kill -0 "$PSQL" 2>/dev/null; do
  NOW=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
  [ "${NOW:-0}" -gt "$PEAK" ] && PEAK=$NOW
  sleep 0.1
done
wait "$PSQL"
ENC=$(cat "$WORK/enc"); DEC=$(cat "$WORK/dec")
GROWTH_MB=$(( (PEAK - BASE) / 1024 ))
echo "lo_encrypt: $(cat "$WORK/enc_s") s, lo_decrypt: $(cat "$WORK/dec_s") s for $SIZE bytes"
echo "backend RssAnon: $((BASE / 1024)) MB before, $((PEAK / 1024)) MB peak"
[ "$GROWTH_MB" -lt 64 ] || { echo "FAIL: backend private memory grew by $GROWTH_MB MB" >&2; exit 1; }
echo "ok: private memory growth $GROWTH_MB MB (< 64 MB)"

assert_eq "encrypted object: header + chunks of 1 MiB + 16-byte tags" \
  "$SIZE|$((SIZE + 56 + 16 * (SIZE / 1048576)))" \
  "$(q "$DB" "SELECT i.plaintext_bytes || '|' || (SELECT pg_catalog.sum(octet_length(data)) FROM pg_largeobject WHERE loid = $ENC)
              FROM encml.lo_encryption_info($ENC) i")"
assert_eq "round trip of $PIECES x 64 MiB is exact" "$PIECES" \
  "$(q "$DB" "SELECT count(*) FILTER (WHERE lo_get($SRC, i::bigint * 67108864, 67108864) = lo_get($DEC, i::bigint * 67108864, 67108864))
              FROM generate_series(0, $PIECES - 1) i")"
assert_eq "range reads across the 1 GB and 2 GB marks" "true|true" \
  "$(q "$DB" "SELECT (encml.lo_decrypt_range($ENC, 1073741824 - 1000, 5000) = lo_get($SRC, 1073741824 - 1000, 5000))
              || '|' || (encml.lo_decrypt_range($ENC, 2147483648 - 10, 5000) = lo_get($SRC, 2147483648 - 10, 5000))")"
q "$DB" "BEGIN; SELECT lo_truncate64(lo_open($ENC, 131072), 1500000000); COMMIT" >/dev/null
assert_match "a truncated 2 GB object is refused" "truncated or extended" \
  "$(q_err "$DB" "SELECT encml.lo_decrypt($ENC)")"
