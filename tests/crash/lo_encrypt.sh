#!/usr/bin/env bash
# Crash inside lo_encrypt: paused after its third chunk, the backend killed. After recovery the
# source large object is intact, no half-written encrypted object exists, and lo_encrypt run
# again gives an object that decrypts to the source.
source "$(dirname "$0")/lib.sh"
crash_cluster
K=$(q "SELECT encml.create_key('crash-lo')")
SRC=$(q "SELECT lo_from_bytea(0, convert_to(repeat('chunk of a model checkpoint ', 20000), 'UTF8'))")
objects=$(q "SELECT count(*) FROM pg_largeobject_metadata")
kill_at lo_encrypt:3 backend "SELECT encml.lo_encrypt($SRC, '$K', 65536)"
assert_eq "after the crash: no new large object" "$objects" "$(q "SELECT count(*) FROM pg_largeobject_metadata")"
assert_eq "the source is intact" "560000" "$(q "SELECT length(lo_get($SRC))")"
ENC=$(q "SELECT encml.lo_encrypt($SRC, '$K', 65536)")
DEC=$(q "SELECT encml.lo_decrypt($ENC)")
assert_eq "encrypted again, it decrypts to the source" "t" "$(q "SELECT lo_get($DEC) = lo_get($SRC)")"
