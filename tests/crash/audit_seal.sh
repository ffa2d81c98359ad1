#!/usr/bin/env bash
# Crash while sealing the audit log: audit_seal paused after chaining its first batch, before
# its commit, and the server stopped (immediate). After restart the chain verifies, the rows are
# unsealed again, and sealing again seals every row.
source "$(dirname "$0")/lib.sh"
crash_cluster
q "CREATE TABLE t (id int, note text); SELECT encml.audit_enable('t', '{note}');
   INSERT INTO t SELECT i, 'n' || i FROM generate_series(1, 3000) i; SELECT encml.audit_seal();
   UPDATE t SET note = note || '!'" >/dev/null
before=$(q "SELECT count(*) FROM encml.audit_log WHERE seq IS NULL")
kill_at audit_seal server "SELECT encml.audit_seal()"
assert_eq "after the crash the rows the seal had chained are unsealed again" "$before" \
  "$(q "SELECT count(*) FROM encml.audit_log WHERE seq IS NULL")"
assert_eq "the chain verifies" "t" "$(q "SELECT ok FROM encml.audit_verify_full()")"
q "SELECT encml.audit_seal()" >/dev/null
assert_eq "sealed again: no row unsealed, the chain verifies" "0|t" \
  "$(q "SELECT (SELECT count(*) FROM encml.audit_log WHERE seq IS NULL), (SELECT ok FROM encml.audit_verify_full())")"
