"""Threat detection end to end (run by threats.sh, which opens TCP and sets the lockout to 3)."""
import json
import re
import os
import time

import psycopg
from prometheus_client.parser import text_string_to_metric_families

DB = os.environ["PGDATABASE"]
HOST, PORT = os.environ["PGHOST"], os.environ["PGPORT"]


def admin():
    return psycopg.connect(host=HOST, port=PORT, dbname=DB, user="postgres", autocommit=True)


def login(password, addr="127.0.0.1"):
    return psycopg.connect(host=addr, port=PORT, dbname=DB, user="th_victim", password=password,
                           connect_timeout=5)


def ok(what):
    print(f"ok: {what}")


def expect_refused(what, password, addr="127.0.0.1", contains=""):
    try:
        login(password, addr).close()
    except psycopg.OperationalError as e:
        assert contains in str(e), f"{what}: unexpected error {e}"
        ok(what)
        return
    raise AssertionError(f"{what}: the login succeeded")


a = admin()
a.execute("DROP ROLE IF EXISTS th_victim, th_reader")
a.execute("SET password_encryption = 'scram-sha-256'")
a.execute("CREATE ROLE th_victim LOGIN PASSWORD 'right-pw'")
a.execute("CREATE ROLE th_reader")

# Brute force: three wrong passwords lock the pair (th_victim, 127.0.0.1).
login("right-pw").close()
ok("correct password accepted before any failure")
for i in range(3):
    expect_refused(f"wrong password {i + 1}", "wrong", contains="password authentication failed")
expect_refused("correct password refused while locked", "right-pw", contains="too many failed login attempts")
# Only the pair is locked: the same role from another address (here the Unix socket, with a
# password too) still logs in.
login("right-pw", addr=HOST).close()
ok("the role logs in from another address")
rows = a.execute("SELECT role_name, client_addr, failures, locked_until IS NOT NULL FROM encml.auth_failures"
                 " WHERE role_name = 'th_victim'").fetchall()
assert rows == [("th_victim", "127.0.0.1", 3, True)], rows
ok("encml.auth_failures shows the locked pair")
# The lockout reaches the audit log (it was raised before any database was connected).
events = a.execute("SELECT severity, detail->>'role', detail->>'client_addr', (detail->>'failures')::int,"
                   " client_addr::text FROM encml.security_events WHERE kind = 'auth_lockout'").fetchall()
assert events == [("critical", "th_victim", "127.0.0.1", 3, "127.0.0.1/32")], events
ok("auth_lockout event in the audit log")
assert a.execute("SELECT encml.unlock('th_victim')").fetchone()[0] == 1
login("right-pw").close()
ok("encml.unlock restores access")

# Alerts with LISTEN: a critical role change (delivered when it commits) ...
listener = admin()
listener.execute("LISTEN encml_alerts")
a.execute("ALTER ROLE th_reader SUPERUSER")
a.execute("ALTER ROLE th_reader NOSUPERUSER")
got = [json.loads(n.payload) for n in listener.notifies(timeout=10, stop_after=1)]
assert got and got[0]["operation"] == "role_superuser" and got[0]["severity"] == "critical", got
# The payload is a wake-up (anyone may LISTEN): no roles, tables or details; the event is read
# from the audit log by its transaction id.
assert sorted(got[0]) == ["operation", "severity", "xact_id"], got
row = a.execute("SELECT detail->>'role', detail->>'severity' FROM encml.audit_log"
                " WHERE kind = 'event' AND operation = 'role_superuser' AND xact_id = %s::xid8",
                (got[0]["xact_id"],)).fetchall()
assert row == [("th_reader", "critical")], row
ok("LISTEN receives the SUPERUSER grant; its event is found by xact_id")
# A forged alert (any role may NOTIFY on any channel) names no event of the audit log.
forger = psycopg.connect(host=HOST, port=PORT, dbname=DB, user="postgres", autocommit=True)
forger.execute("SET ROLE th_reader")
forger.execute("""SELECT pg_notify('encml_alerts', '{"operation":"auth_lockout","severity":"critical","xact_id":"1"}')""")
forged = [json.loads(n.payload) for n in listener.notifies(timeout=3, stop_after=1)]
assert forged and not a.execute("SELECT count(*) FROM encml.audit_log WHERE kind = 'event'"
                                " AND operation = %s AND xact_id = %s::xid8",
                                (forged[0]["operation"], forged[0]["xact_id"])).fetchone()[0], forged
forger.close()
ok("a forged alert names no event in the audit log")

# Alerts are sent when the transaction commits, as NOTIFY is: not those of a savepoint rolled
# back (queued, not sent at once: a NOTIFY made at once fails a transaction that is then
# prepared, as Citus prepares the workers' part of a GRANT of encml_dpo).
c = admin()
c.execute("BEGIN")
c.execute("SAVEPOINT s")
c.execute("ALTER ROLE th_reader BYPASSRLS")
c.execute("ROLLBACK TO SAVEPOINT s")
c.execute("ALTER ROLE th_reader SUPERUSER")
c.execute("ALTER ROLE th_reader NOSUPERUSER")
assert not list(listener.notifies(timeout=1, stop_after=1)), "alert sent before the commit"
c.execute("COMMIT")
got = [json.loads(n.payload)["operation"] for n in listener.notifies(timeout=3, stop_after=2)]
assert got == ["role_superuser"], got
c.close()
ok("alerts follow the commit; a rolled-back savepoint's are not sent")

# ... and bulk decryption, received while the decrypting transaction is still open.
key = a.execute("SELECT encml.create_key('threats')").fetchone()[0]
a.execute("SELECT encml.grant_key(%s, 'th_reader', 'decrypt')", (key,))
a.execute("CREATE TABLE vault AS SELECT i, encml.encrypt('secret ' || i, %s) AS c FROM generate_series(1, 300) i",
          (key,))
a.execute("GRANT SELECT ON vault TO th_reader")
reader = psycopg.connect(host=HOST, port=PORT, dbname=DB, user="postgres")
reader.execute("SET encml.decrypt_alert_threshold = 200")
reader.execute("SET ROLE th_reader")
assert reader.execute("SELECT count(encml.decrypt_text(c)) FROM vault").fetchone()[0] == 300
got = [json.loads(n.payload) for n in listener.notifies(timeout=10, stop_after=1)]
assert got and got[0]["operation"] == "decrypt_rate_exceeded", got
detail = a.execute("SELECT detail FROM encml.audit_log WHERE kind = 'event' AND operation = 'decrypt_rate_exceeded'"
                   " AND xact_id = %s::xid8", (got[0]["xact_id"],)).fetchone()[0]
assert detail["role"] == "th_reader" and detail["values_per_minute"] > 200, detail
assert "secret" not in json.dumps(got) + json.dumps(detail), "plaintext in the alert"
ok("LISTEN receives the exfiltration alert before the reader commits")
reader.rollback()
# Block mode stops the next bulk read (the settings went with the rollback).
reader.execute("SET encml.decrypt_alert_threshold = 200")
reader.execute("SET encml.decrypt_limit_action = 'block'")
reader.execute("SET ROLE th_reader")
try:
    reader.execute("SELECT count(encml.decrypt_text(c)) FROM vault").fetchone()
    raise AssertionError("block mode did not block")
except psycopg.errors.ConfigurationLimitExceeded as e:
    assert "blocked" in str(e)
    ok("block mode refuses further decryption (53400)")
reader.rollback()
reader.close()

# Metrics parse as Prometheus text.
text = a.execute("SELECT encml.metrics()").fetchone()[0]
families = list(text_string_to_metric_families(text))
samples = [s for f in families for s in f.samples]


def value(name):
    found = [s.value for s in samples if s.name == name]
    assert found, f"no sample {name}"
    return sum(found)


assert value("encml_preloaded") == 1
assert value("encml_auth_failures_total") >= 3 and value("encml_auth_lockouts_total") >= 1
assert value("encml_auth_refused_locked_total") >= 1
assert value("encml_decrypt_rate_alerts_total") >= 1 and value("encml_decrypt_rate_blocked_total") >= 1
assert value("encml_audit_chain_ok") == 1
assert any(s.name == "encml_security_events_total" and s.labels.get("kind") == "auth_lockout" for s in samples)
assert all(f.name.startswith("encml_") for f in families)
ok(f"metrics parse with prometheus_client ({len(families)} families)")

# JSON event lines in the server log, one object per line.
with open(os.environ["SERVER_LOG"], "rb") as f:
    f.seek(int(os.environ["LOG_START"]))
    lines = [l.decode(errors="replace") for l in f if b"pg_encrypt_ml event: " in l]
events = [json.loads(l.split("pg_encrypt_ml event: ", 1)[1]) for l in lines]
kinds = {e["operation"] for e in events}
assert {"auth_lockout", "role_superuser", "decrypt_rate_exceeded"} <= kinds, kinds
assert all(e["detail"]["severity"] in ("critical", "warning", "info") for e in events)
assert not any("right-pw" in l or "secret " in l for l in lines)
ok(f"{len(events)} JSON event lines in the server log")
# ... none followed by the statement's text (Postgres adds a STATEMENT line to LOG messages;
# the statement can hold the data being looked up).
with open(os.environ["SERVER_LOG"], "rb") as f:
    f.seek(int(os.environ["LOG_START"]))
    all_lines = [l.decode(errors="replace") for l in f]
pid = re.compile(r"\[(\d+)\] ")
followed = [
    (l, n) for l, n in zip(all_lines, all_lines[1:] + [""])
    if "pg_encrypt_ml" in l and " LOG: " in l
    and "STATEMENT:" in n and pid.search(l) and pid.search(n)
    and pid.search(l).group(1) == pid.search(n).group(1)
]
assert not followed, followed[:2]
ok("the extension's log lines carry no statement text")
a.execute("DROP TABLE vault")
