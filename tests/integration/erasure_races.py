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

# A notice of megabytes from an owner's trigger reaches the caller cut to a few kilobytes
# (attacker round 9: it was kept, carried and raised again whole).
admin.execute("INSERT INTO people VALUES ('xena', NULL)")
admin.execute("""CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN RAISE NOTICE '%', repeat('x', 5000000); RAISE NOTICE '%', repeat(chr(8238), 5000); RETURN OLD; END$$""")
admin.execute("CREATE TRIGGER shout BEFORE DELETE ON people FOR EACH ROW EXECUTE FUNCTION shout()")
caller = connect()
heard = []
caller.add_notice_handler(lambda n: heard.append(n.message_primary or ""))
caller.execute("SELECT encml.subject_forget('xena')")
loud = [m for m in heard if "xxxx" in m]
assert len(loud) == 1 and 4096 <= len(loud[0]) < 4400 and "bytes more" in loud[0], [len(m) for m in heard]
ok(f"an owner's notice of 5,000,000 bytes reaches the caller cut to {len(loud[0])} characters")
# Cut after escaping: 4,096 bytes of U+202E were escaped to 11 KB (issue 27, round 18).
hidden = [m for m in heard if "\\u{202e}" in m]
assert len(hidden) == 1 and len(hidden[0].encode()) < 4400 and "bytes more" in hidden[0], \
    [len(m.encode()) for m in heard]
ok(f"an owner's notice of 5,000 U+202E reaches the caller escaped and cut to {len(hidden[0].encode())} bytes")
admin.execute("DROP TRIGGER shout ON people")

# A caller whose client goes away while the erasure waits (here for an open writer) does not
# leave the worker waiting, holding its locks, for nobody: the caller's session ends and the
# worker is stopped, nothing erased (attacker round 9: the worker outlived its client by an hour).
admin.execute("INSERT INTO people VALUES ('walt', NULL)")
writer.execute("BEGIN")
writer.execute("INSERT INTO people VALUES ('walt', NULL)")
leaving = connect()
leaving_pid = leaving.execute("SELECT pg_backend_pid()").fetchone()[0]
leaving.pgconn.send_query(b"SELECT encml.subject_forget('walt')")
wait_until_blocked("the open writer")
leaving.pgconn.finish()  # the client closes its socket without waiting for the answer
started = time.monotonic()
for _ in range(100):
    left = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s OR backend_type = 'pg_encrypt_ml subject'",
        (leaving_pid,)).fetchone()[0]
    if left == 0:
        break
    time.sleep(0.1)
assert left == 0, "the caller or its worker outlived the client"
ok(f"a caller whose client left ends, with its worker, {time.monotonic() - started:.1f} s later")
writer.execute("COMMIT")
assert admin.execute("SELECT count(*) FROM people WHERE user_id = 'walt'").fetchone()[0] == 2, \
    "an erasure whose caller left committed"
ok("nothing was erased for the caller that left")

# A cycle through another session that waits for a worker of its own (attacker round 11): the
# erasure's worker waits for an advisory lock held by a session M, M waits for its export's
# worker, which waits for a table lock the erasure's caller holds. Every caller waits for its
# worker in the lock table, so Postgres's deadlock detector sees the whole cycle and one of them
# gets 40P01; on a latch, all four waited until a timeout.
admin.execute("CREATE TABLE bait (x int)")
admin.execute("CREATE TYPE mood AS ENUM ('calm')")
admin.execute("""CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE plpgsql AS
  $$BEGIN LOCK TABLE public.bait IN ACCESS EXCLUSIVE MODE; RETURN '"calm"'; END$$""")
admin.execute("CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood)")
admin.execute("CREATE TABLE moods (user_id text, m mood)")
admin.execute("INSERT INTO moods VALUES ('mia', 'calm')")
admin.execute("SELECT encml.register_subject_column('moods', 'user_id')")
admin.execute("INSERT INTO people VALUES ('ned', NULL)")
admin.execute("""CREATE FUNCTION wait_777() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_advisory_lock(777); RETURN OLD; END$$""")
admin.execute("CREATE TRIGGER wait_777 BEFORE DELETE ON people FOR EACH ROW EXECUTE FUNCTION wait_777()")
m = connect()
m.execute("SELECT pg_advisory_lock(777)")
dpo = connect()
dpo.execute("BEGIN")
dpo.execute("SELECT count(*) FROM bait")
outcome = {}


def call(conn, what, sql):
    try:
        conn.execute(sql)
        outcome[what] = "ok"
    except psycopg.Error as e:
        outcome[what] = e.sqlstate


export = threading.Thread(target=call, args=(m, "export", "SELECT encml.subject_export('mia')"))
export.start()
for _ in range(200):  # until the export's worker waits for the caller's lock on bait
    if admin.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'bait'::regclass").fetchone()[0]:
        break
    time.sleep(0.05)
started = time.monotonic()
erase = threading.Thread(target=call, args=(dpo, "erase", "SELECT encml.subject_forget('ned')"))
erase.start()
export.join(timeout=30)
if not export.is_alive():
    m.execute("SELECT pg_advisory_unlock_all()")
erase.join(timeout=30)
assert not export.is_alive() and not erase.is_alive(), f"the cycle hung: {outcome}"
assert "40P01" in outcome.values(), outcome
ok(f"a cycle through another session's worker ends in 40P01 after {time.monotonic() - started:.1f} s ({outcome})")
dpo.execute("ROLLBACK")

# A consent recorded by a transaction still open when the erasure starts is deleted too: the
# erasure waits for it (attacker round 12: it survived, dated before the erasure).
erase_while_writing("cora", "SELECT encml.record_consent('cora', 'marketing', true, 'open before the erasure')",
                    "the open consent")
assert admin.execute("SELECT count(*) FROM encml.consent_history WHERE subject = 'cora'").fetchone()[0] == 0, \
    "a consent recorded by a transaction open at the start of the erasure survived it"
ok("a consent recorded by a transaction open at the start of the erasure is deleted")

# A column registered by a transaction still open when the erasure starts: the erasure waits for
# it (the registrations are locked too) and erases that table's rows of the subject as well
# (attacker round 13: it did not wait, and the table, registered "before" the erasure by its
# timestamp, kept the rows; another session could also unregister a table mid-erasure).
admin.execute("CREATE TABLE late_reg (user_id text)")
admin.execute("INSERT INTO late_reg VALUES ('rex')")
receipt = erase_while_writing("rex", "SELECT encml.register_subject_column('late_reg', 'user_id')",
                              "the open registration")
assert admin.execute("SELECT count(*) FROM late_reg WHERE user_id = 'rex'").fetchone()[0] == 0, \
    f"a table registered by a transaction open at the start of the erasure kept the rows: {receipt}"
ok("a column registered by a transaction open at the start of the erasure is erased too")

# A partition whose DETACH ... CONCURRENTLY was interrupted stays under its table but is left out
# of statements on it: the erasure fails instead of leaving its rows behind a receipt (attacker
# round 13).
admin.execute("CREATE TABLE parted (user_id text) PARTITION BY LIST (user_id)")
admin.execute("CREATE TABLE parted_vic PARTITION OF parted FOR VALUES IN ('vic')")
admin.execute("INSERT INTO parted VALUES ('vic')")
admin.execute("SELECT encml.register_subject_column('parted', 'user_id')")
holder = connect()
holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
holder.execute("SELECT count(*) FROM parted")
detacher = connect()
detacher_pid = detacher.execute("SELECT pg_backend_pid()").fetchone()[0]
detach = threading.Thread(target=lambda: call(detacher, "detach",
                                              "ALTER TABLE parted DETACH PARTITION parted_vic CONCURRENTLY"))
detach.start()
for _ in range(200):
    if admin.execute("SELECT count(*) FROM pg_inherits WHERE inhdetachpending").fetchone()[0]:
        break
    time.sleep(0.05)
time.sleep(0.3)
admin.execute("SELECT pg_cancel_backend(%s)", (detacher_pid,))
detach.join(timeout=10)
holder.execute("ROLLBACK")
assert admin.execute("SELECT count(*) FROM pg_inherits WHERE inhdetachpending").fetchone()[0] == 1
try:
    admin.execute("SELECT encml.subject_forget('vic')")
    raise AssertionError("an erasure succeeded with a partition in DETACH PENDING")
except psycopg.Error as e:
    assert e.sqlstate == "55000" and "DETACH PENDING" in str(e), e
assert admin.execute("SELECT count(*) FROM parted_vic").fetchone()[0] == 1
ok("a partition left in DETACH PENDING fails the erasure (55000), nothing erased")
admin.execute("ALTER TABLE parted DETACH PARTITION parted_vic FINALIZE")

# The table's owner changes it in a transaction open when the erasure starts, which commits while
# the erasure waits for its lock on the table (attacker round 18): a column added and classified
# pii there, or an inheritance child holding the subject's row, was planned from what the erasure
# saw before it waited, and kept the subject's data under a receipt.
admin.execute("CREATE TABLE grown (user_id text, amount int)")
admin.execute("INSERT INTO grown VALUES ('gus', 7)")
admin.execute("SELECT encml.register_subject_column('grown', 'user_id', on_forget => 'anonymize')")
erase_while_writing(
    "gus",
    """ALTER TABLE grown ADD COLUMN email text, ADD COLUMN ssn encml.enc_bytea;
       SELECT encml.classify('grown', 'email', 'pii');
       UPDATE grown SET email = 'gus@example.org', ssn = encml.encrypt('123-45-6789', encml.subject_key('gus'))
        WHERE user_id = 'gus'""",
    "the open ALTER TABLE")
row = admin.execute("SELECT user_id, email, ssn IS NULL, amount FROM grown").fetchall()
assert row == [(None, None, True, 7)], f"a column added while the erasure waited kept the subject's data: {row}"
ok("a column added and classified by a transaction the erasure waited for is cleared too")

# (Also when the database makes REPEATABLE READ the default: the erasure's worker, a session of
# its own, would take its one snapshot before it waited.)
admin.execute("CREATE TABLE family (user_id text)")
admin.execute("SELECT encml.register_subject_column('family', 'user_id', on_forget => 'anonymize')")
admin.execute(f"ALTER DATABASE {DB} SET default_transaction_isolation = 'repeatable read'")
erase_while_writing(
    "hal",
    """CREATE TABLE family_kid (nickname text) INHERITS (family);
       SELECT encml.classify('family_kid', 'nickname', 'pii');
       INSERT INTO family_kid VALUES ('hal', 'hally')""",
    "the open CREATE TABLE ... INHERITS")
row = admin.execute("SELECT user_id, nickname FROM family_kid").fetchall()
assert row == [(None, None)], f"a child created while the erasure waited kept the subject's data: {row}"
ok("an inheritance child created by a transaction the erasure waited for is cleared too")
admin.execute(f"ALTER DATABASE {DB} RESET default_transaction_isolation")
