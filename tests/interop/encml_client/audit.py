"""The audit chain (docs/audit.md "Tamper evidence"): verify rows read from `encml.audit_log`.

mac_n = HMAC-SHA256(K_chain, "pg_encrypt_ml/v1/audit-row" || mac_{n-1} || record_n), record_n the
canonical encoding of the row. What the docs leave open was settled against the database
(tests/interop/DEFECTS.md): integers (id, seq, table_oid, the timestamps) are fields of their
own, tag 1, length 8, 8 bytes big-endian; timestamps are microseconds since 1970-01-01 UTC;
`xact_id` is its decimal text; `client_addr` is `text(inet)` (host/masklen)."""
import hashlib
import hmac
import struct
from dataclasses import dataclass

from .common import FormatError

DOMAIN = b"pg_encrypt_ml/v1/audit-row"

# The columns a client selects, in encoding order, with SQL that gives each its encoded form
# as text (NULL stays NULL). Timestamps as µs since the Unix epoch.
SQL_COLUMNS = [
    ("id", "id::text", "int"),
    ("seq", "seq::text", "int"),
    ("mac_key", "mac_key", "text"),
    ("mac", "encode(mac, 'hex')", "hex"),
    ("logged_at", "(extract(epoch from logged_at) * 1000000)::int8::text", "int"),
    ("xact_started_at", "(extract(epoch from xact_started_at) * 1000000)::int8::text", "int"),
    ("xact_id", "xact_id::text", "text"),
    ("session_role", "session_role", "text"),
    ("effective_role", "effective_role", "text"),
    ("client_addr", "text(client_addr)", "text"),
    ("application_name", "application_name", "text"),
    ("tenant", "tenant", "text"),
    ("kind", "kind", "text"),
    ("operation", "operation", "text"),
    ("table_oid", "table_oid::int8::text", "int"),
    ("table_name", "table_name", "text"),
    ("old_row", "old_row::text", "text"),
    ("new_row", "new_row::text", "text"),
    ("changed_columns", "changed_columns::text", "text"),
    ("detail", "detail::text", "text"),
]
INNER = [c for c, _, _ in SQL_COLUMNS[4:]]


def select_sql(where: str = "seq IS NOT NULL") -> str:
    return "SELECT " + ", ".join(expr for _, expr, _ in SQL_COLUMNS) + \
        f" FROM encml.audit_log WHERE {where} ORDER BY seq"


@dataclass
class Row:
    values: dict    # column -> str | int | bytes | None

    @classmethod
    def from_text(cls, texts):
        """From the SELECT above, one string (or None for NULL) per column."""
        vals = {}
        for (name, _, kind), t in zip(SQL_COLUMNS, texts):
            if t is None:
                vals[name] = None
            elif kind == "int":
                vals[name] = int(t)
            elif kind == "hex":
                vals[name] = bytes.fromhex(t)
            else:
                vals[name] = t
        return cls(vals)


def _field(b) -> bytes:
    if b is None:
        return b"\0"
    return b"\1" + struct.pack(">I", len(b)) + b


def _enc(v):
    if v is None:
        return None
    if isinstance(v, int):
        return struct.pack(">q", v)
    return v.encode("utf-8")


def record(row: Row) -> bytes:
    v = row.values
    inner = b"".join(_field(_enc(v[c])) for c in INNER)
    return _field(_enc(v["id"])) + _field(_enc(v["seq"])) + _field(_enc(v["mac_key"])) + _field(inner)


def row_mac(key: bytes, prev_mac: bytes, row: Row) -> bytes:
    return hmac.new(key, DOMAIN + prev_mac + record(row), hashlib.sha256).digest()


@dataclass
class Result:
    ok: bool
    rows_checked: int
    first_bad_id: int = None
    detail: str = ""


def verify_chain(rows, chain_keys, start_mac: bytes = bytes(32), start_seq: int = None) -> Result:
    """`rows` in seq order; `chain_keys[mac_key]` is the key a row names (`svc:audit-chain:<n>`)."""
    prev, expect_seq = start_mac, start_seq
    for n, r in enumerate(rows):
        v = r.values
        if expect_seq is not None and v["seq"] != expect_seq:
            return Result(False, n, v["id"], f"seq {v['seq']}, expected {expect_seq} (a row is missing)")
        key = chain_keys.get(v["mac_key"])
        if key is None:
            return Result(False, n, v["id"], f"unknown chain key {v['mac_key']}")
        if not hmac.compare_digest(row_mac(key, prev, r), v["mac"] or b""):
            return Result(False, n, v["id"], "MAC does not verify")
        prev, expect_seq = v["mac"], v["seq"] + 1
    if not rows:
        return Result(False, 0, None, "no row could be verified")
    return Result(True, len(rows))


def redaction_token(redact_key: bytes, value_text: str) -> str:
    """`hmac:` + 32 hex: HMAC-SHA256 of the value's text under the audit-redact key, cut to 128 bits."""
    return "hmac:" + hmac.new(redact_key, value_text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def parse_mac_key(mac_key: str):
    if mac_key.startswith("svc:audit-chain:"):
        return ("service", int(mac_key.rsplit(":", 1)[1]))
    if len(mac_key) == 16:
        return ("master", mac_key)
    raise FormatError(f"unknown mac_key {mac_key!r}")
