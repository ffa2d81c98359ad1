"""An erasure against transactions still open when it starts (issue 27, attacker round 8): a row
of the subject inserted, or a key of the subject made, by a transaction that commits while the
erasure runs survived it. The erasure now waits for the writers in progress on the registered
tables and the subject keys, and keeps new ones waiting until it commits."""
import os
import threading
import time
import psycopg

DB = os.environ["PGDATABASE"]


def connect():
    return psycopg.connect(dbname=DB, user="postgres", autocommit=True)


def ok(what):
    print(f"ok: {what}")


admin = connect()
admin.execute("CREATE TABLE people (user_id text, note encml.enc_bytea)")
admin.execute("SELECT encml.register_subject_column('people', 'user_id')")
admin.execute("CREATE TABLE vault (c encml.enc_bytea)")


def erase_in_background(subject):
    """Starts subject_forget(subject) in a session of its own; returns (thread, result holder)."""
    result = {}

    def run():
        conn = connect()
        try:
            result["receipt"] = conn.execute("SELECT encml.subject_forget(%s)", (subject,)).fetchone()[0]
        except psycopg.Error as e:
            result["error"] = f"{e.sqlstate}: {e}"

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_until_blocked(what):
    """Until some session waits for a lock (the erasure's worker, behind the open writer)."""
    for _ in range(200):
        if admin.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the erasure did not wait for {what}")


def erase_while_writing(subject, write, waiting_for):
    """subject_forget(subject) started while `writer` has run `write` in an open transaction,
    which commits once the erasure waits for it; returns the erasure's receipt."""
    writer.execute("BEGIN")
    writer.execute(write)
    thread, result = erase_in_background(subject)
    wait_until_blocked(waiting_for)
    writer.execute("COMMIT")
    thread.join(timeout=30)
    assert not thread.is_alive() and "error" not in result, result
    return result["receipt"]


writer = connect()

# A transaction inserts a row of the subject and commits while the erasure runs.
erase_while_writing("zoe", "INSERT INTO people SELECT 'zoe', encml.encrypt('zoe-note', encml.subject_key('zoe'))",
                    "the open insert")
assert admin.execute("SELECT count(*) FROM people WHERE user_id = 'zoe'").fetchone()[0] == 0, \
    "a row inserted by a transaction open when the erasure started survived it"
ok("a row of the subject written by a transaction open at the start of the erasure is erased")

# A transaction makes the subject's key, uses it, and commits while the erasure runs.
receipt = erase_while_writing("zed", "INSERT INTO vault SELECT encml.encrypt('zed-secret', encml.subject_key('zed'))",
                              "the open key creation")
assert receipt["keys_destroyed"] == 1, receipt
try:
    admin.execute("SELECT encml.decrypt_text(c) FROM vault")
    raise AssertionError("a subject key made by a transaction open at the start of the erasure survived it")
except psycopg.Error as e:
    ok(f"a subject key made by a transaction open at the start of the erasure is destroyed ({e.sqlstate})")

# A caller that holds a lock the erasure would wait for is refused instead of waiting forever
# (an UPDATE that changed nothing holds ROW EXCLUSIVE without having written).
caller = connect()
caller.execute("BEGIN")
caller.execute("UPDATE people SET note = NULL WHERE false")
try:
    caller.execute("SELECT encml.subject_forget('nobody')")
    raise AssertionError("subject_forget waited for its caller's own lock")
except psycopg.Error as e:
    assert e.sqlstate == "55000", e
    ok("a caller holding ROW EXCLUSIVE on a registered table is refused (55000), not left waiting")
caller.execute("ROLLBACK")

# The caller's lock_timeout bounds the erasure's wait for writers (55P03, nothing erased).
writer.execute("BEGIN")
writer.execute("INSERT INTO people VALUES ('yves', NULL)")
admin.execute("INSERT INTO people VALUES ('yves', NULL)")
caller = connect()
caller.execute("SET lock_timeout = '300ms'")
started = time.monotonic()
try:
    caller.execute("SELECT encml.subject_forget('yves')")
    raise AssertionError("the erasure did not wait for the open writer")
except psycopg.Error as e:
    assert e.sqlstate == "55P03", e
    waited = time.monotonic() - started
    assert waited < 10, waited
    ok(f"the caller's lock_timeout bounds the erasure's wait ({e.sqlstate} after {waited:.1f} s)")
writer.execute("ROLLBACK")
assert admin.execute("SELECT count(*) FROM people WHERE user_id = 'yves'").fetchone()[0] == 1
