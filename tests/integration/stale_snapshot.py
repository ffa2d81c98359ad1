"""Crypto-shredding and consent against a session whose snapshot is older than the change
(issue 27, attacker round 7): a REPEATABLE READ transaction that began before a subject's
erasure loaded the subject's key through its old snapshot, after the invalidation that should
have dropped it, and kept decrypting, also in later transactions; a withdrawn consent likewise
stayed granted there."""
import os
import psycopg

DB = os.environ["PGDATABASE"]


def connect():
    return psycopg.connect(dbname=DB, user="postgres", autocommit=True)


def ok(what):
    print(f"ok: {what}")


admin = connect()
admin.execute("CREATE TABLE shred (c encml.enc_bytea)")
admin.execute("INSERT INTO shred SELECT encml.encrypt('wes-secret', encml.subject_key('wes'))")
admin.execute("INSERT INTO shred SELECT encml.encrypt('una-secret', encml.subject_key('una'))")

# A session whose snapshot predates the erasure, with the key not cached yet ...
cold = connect()
cold.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
cold.execute("SELECT 1")
# ... and one that decrypted with it before.
warm = connect()
warm.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
assert warm.execute("SELECT encml.decrypt_text(c) FROM shred WHERE encml.decrypt_text(c) LIKE 'una%'").fetchone()[0] == "una-secret"
admin.execute("SELECT encml.subject_forget('wes')")
admin.execute("SELECT encml.subject_forget('una')")


def refused(conn, sql):
    try:
        conn.execute(sql)
    except psycopg.Error as e:
        conn.rollback()
        return e.sqlstate
    return None


state = refused(cold, "SELECT encml.decrypt_text(c) FROM shred")
assert state is not None, "a snapshot older than the erasure still decrypts with the destroyed key"
ok(f"a transaction begun before the erasure cannot load the destroyed key ({state})")
state = refused(warm, "SELECT encml.decrypt_text(c) FROM shred")
assert state is not None, "a key cached before the erasure still decrypts"
ok(f"a key cached before the erasure is dropped at the next statement ({state})")
# Later transactions of the same sessions too.
for conn in (cold, warm):
    assert refused(conn, "SELECT encml.decrypt_text(c) FROM shred") is not None
ok("and in the sessions' later transactions")

# Consent withdrawn while a session's snapshot is older.
admin.execute("SELECT encml.record_consent('yan', 'model_training', true, 'signup')")
reader = connect()
reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
reader.execute("SELECT 1")
admin.execute("SELECT encml.record_consent('yan', 'model_training', false, 'withdrawn')")
assert reader.execute("SELECT encml.has_consent('yan', 'model_training')").fetchone()[0] is False
reader.execute("COMMIT")
assert reader.execute("SELECT encml.has_consent('yan', 'model_training')").fetchone()[0] is False
ok("a withdrawal reaches a session whose snapshot is older, at its next statement")
