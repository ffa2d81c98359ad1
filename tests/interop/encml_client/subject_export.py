"""Subject export documents, layout `encml.subject_export/1`."""
import uuid

from .common import FormatError, b64decode

FORMAT = "encml.subject_export/1"
TOP = {"format": str, "export_id": str, "subject": str, "exported_at": str, "exported_by": str,
       "tables": list, "skipped": list, "consents": (list, type(None))}
TABLE = {"table": str, "identifier_column": str, "identifier": str, "rows": list,
         "undecrypted_values": (int, float)}
IDENTIFIERS = ("plain", "det_text", "fpe")


def check(doc: dict) -> dict:
    """Checks `format` first, then the documented fields and their types; returns the doc."""
    if not isinstance(doc, dict):
        raise FormatError("a subject export is a JSON object")
    if doc.get("format") != FORMAT:
        raise FormatError(f"unknown subject export format {doc.get('format')!r}")
    for name, typ in TOP.items():
        if name not in doc:
            raise FormatError(f"missing field {name}")
        if not isinstance(doc[name], typ):
            raise FormatError(f"field {name} has the wrong type")
    uuid.UUID(doc["export_id"])
    for t in doc["tables"]:
        for name, typ in TABLE.items():
            if name not in t or not isinstance(t[name], typ):
                raise FormatError(f"tables[].{name} missing or of the wrong type")
        if t["identifier"] not in IDENTIFIERS:
            raise FormatError(f"unknown identifier kind {t['identifier']!r}")
        if not all(isinstance(r, dict) for r in t["rows"]):
            raise FormatError("tables[].rows holds objects")
        if t["undecrypted_values"] != sum(1 for r in t["rows"] for v in r.values() if is_undecrypted(v)):
            raise FormatError("undecrypted_values does not count the encrypted cells")
    for s in doc["skipped"]:
        if not isinstance(s, dict) or "reason" not in s:
            raise FormatError("skipped[] entries carry a reason")
        if not s.get("consents") and not {"table", "identifier_column"} <= s.keys():
            raise FormatError("skipped[] names a table and identifier column")
    for c in doc["consents"] or []:
        if set(c) < {"purpose", "granted", "source", "recorded_by", "recorded_at"}:
            raise FormatError("consent entry lacks a field")
    return doc


def is_undecrypted(cell) -> bool:
    """`{"encrypted", "key", "reason"}`, all three present (docs/formats.md, "Subject export")."""
    return isinstance(cell, dict) and set(cell) == {"encrypted", "key", "reason"}


def cell_value(cell):
    """A decrypted cell: str (UTF-8 plaintext) or bytes ({"base64": ...}); undecrypted: the
    ciphertext text output as given; anything else is a plain column's JSON value."""
    if isinstance(cell, dict) and set(cell) == {"base64"}:
        return b64decode(cell["base64"])
    if is_undecrypted(cell):
        if cell.get("key") is not None:
            uuid.UUID(cell["key"])
        return cell["encrypted"]
    return cell
