#!/usr/bin/env bash
# Crash inside destroy_key: paused after the key's versions are erased in the catalog, before
# the transaction commits, the backend killed. After recovery the key is intact and its values
# decrypt (nothing was shredded); destroy_key run again shreds them, for good across a restart.
source "$(dirname "$0")/lib.sh"
crash_cluster
K=$(q "SELECT encml.create_key('crash-destroy')")
q "SELECT encml.rotate_key('$K'); CREATE TABLE t (id int, v encml.enc_bytea);
   INSERT INTO t SELECT i, encml.encrypt('value ' || i, '$K') FROM generate_series(1, 100) i" >/dev/null
kill_at destroy_key backend "SELECT encml.destroy_key('$K')"
assert_eq "after a crash inside destroy_key: the key is intact" "active,active" \
  "$(q "SELECT string_agg(status, ',' ORDER BY version) FROM encml.data_key_versions WHERE key_id = '$K'")"
assert_eq "and its values decrypt" "100" "$(q "SELECT count(encml.decrypt_text(v)) FROM t")"
q "SELECT encml.destroy_key('$K')" >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$CRASH_DATA" -m immediate -w stop >/dev/null; crash_start
assert_eq "destroyed and crashed: still shredded after recovery" "destroyed,destroyed|0" \
  "$(q "SELECT string_agg(status, ',' ORDER BY version), count(wrapped_key) FROM encml.data_key_versions WHERE key_id = '$K'")"
err=$(psql -X -q -At -d "$DB" -c "SELECT encml.decrypt_text(v) FROM t LIMIT 1" 2>&1 || true)
assert_match "its values are refused" "destroyed" "$err"
