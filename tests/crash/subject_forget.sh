#!/usr/bin/env bash
# Crash inside subject_forget: the erasure runs and commits in a worker session of its own; it is
# paused after erasing the subject's rows, before destroying its keys, and that worker killed.
# After recovery the erasure did not happen at all (rows, keys and consent intact: all or
# nothing), and subject_forget run again erases everything and shreds the subject's key.
source "$(dirname "$0")/lib.sh"
crash_cluster
q "CREATE TABLE people (id int PRIMARY KEY, email text, note encml.enc_bytea);
   SELECT encml.register_subject_column('people', 'email');
   INSERT INTO people SELECT i, 'user' || (i % 10) || '@example.com',
          encml.encrypt('note ' || i, encml.subject_key('user' || (i % 10) || '@example.com'))
     FROM generate_series(1, 100) i" >/dev/null
S=user3@example.com
state() { q "SELECT (SELECT count(*) FROM people WHERE email = '$S'),
                     (SELECT count(*) FROM encml.data_keys k JOIN encml.data_key_versions v ON v.key_id = k.id
                       WHERE k.name LIKE 'subject\_key:%' AND v.status = 'active')"; }
before=$(state)
kill_at subject_forget backend "SELECT encml.subject_forget('$S')"
assert_eq "after a crash inside the erasure: nothing was erased" "$before" "$(state)"
assert_eq "the subject's values still decrypt" "10" \
  "$(q "SELECT count(encml.decrypt_text(note)) FROM people WHERE email = '$S'")"
q "SELECT encml.subject_forget('$S')" >/dev/null
keys_before=${before#*|}
assert_eq "erased again: no row left, the subject's key destroyed" "0|$((keys_before - 1))" "$(state)"
