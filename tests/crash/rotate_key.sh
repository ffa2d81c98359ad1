#!/usr/bin/env bash
# Crash during a key rotation and the bulk re-encryption after it.
# 1. rotate_key paused after the new version is in the catalog, the backend killed: after
#    recovery the key has its old version only, and every value decrypts.
# 2. rotate_key committed, then `UPDATE ... SET v = encml.reencrypt(v)` paused at its 500th value,
#    the server stopped (immediate): after restart every value decrypts, all still under version
#    1 (the UPDATE is one transaction); the re-encryption run again finishes under version 2.
source "$(dirname "$0")/lib.sh"
crash_cluster
K=$(q "SELECT encml.create_key('crash-rotate')")
q "CREATE TABLE t (id int PRIMARY KEY, v encml.enc_bytea);
   INSERT INTO t SELECT i, encml.encrypt('value ' || i, '$K', 't:' || i) FROM generate_series(1, 2000) i" >/dev/null
versions() { q "SELECT string_agg(kv || ':' || n, ',' ORDER BY kv) FROM (SELECT encml.key_version(v) kv, count(*) n FROM t GROUP BY 1) s"; }
all_decrypt() { q "SELECT count(*) FILTER (WHERE encml.decrypt_text(v, 't:' || id) = 'value ' || id) FROM t"; }

kill_at rotate_key backend "SELECT encml.rotate_key('$K')"
assert_eq "after a crash inside rotate_key: version 1 only" "1" \
  "$(q "SELECT string_agg(version::text, ',') FROM encml.data_key_versions WHERE key_id = '$K'")"
assert_eq "every value decrypts" "2000" "$(all_decrypt)"

assert_eq "rotate_key again" "2" "$(q "SELECT encml.rotate_key('$K')")"
kill_at reencrypt:500 server "UPDATE t SET v = encml.reencrypt(v, 't:' || id)"
assert_eq "after a crash in the bulk re-encryption: every value decrypts" "2000" "$(all_decrypt)"
assert_eq "all still under version 1 (the UPDATE rolled back)" "1:2000" \
  "$(versions)"
q "UPDATE t SET v = encml.reencrypt(v, 't:' || id)" >/dev/null
assert_eq "the re-encryption run again: all under version 2" "2:2000" \
  "$(versions)"
assert_eq "and every value decrypts" "2000" "$(all_decrypt)"
