#!/usr/bin/env python3
"""Internal errors (SQLSTATE XX000) only where no user can cause them (docs/architecture.md).

Every SQLSTATE of the extension is chosen at its call site through `pg::errors`; XX000 only
through `pg::errors::internal`/`internal_full`/`spi_failed`/`or_spi_failed`, and
tests/architecture/internal_errors.txt lists, per file, how many such call sites there are and
why no caller's input, rights, data or timing reaches them. This fails on a raise of
ERRCODE_INTERNAL_ERROR anywhere else, and on a file whose count differs from the list: a new
internal error either gets the SQLSTATE that tells its user what to do, or its line in the list
with the reason. `--self-test` checks the checker.
"""

import os
import re
import sys

CALL = re.compile(r"\b(?:internal|internal_full|spi_failed)\(|\.or_spi_failed\(")
DIRECT = re.compile(r"ERRCODE_INTERNAL_ERROR")
HOME = "src/pg/errors.rs"


def counts(src_root):
    found, direct = {}, []
    for root, _, files in os.walk(os.path.join(src_root, "src")):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.relpath(os.path.join(root, f), src_root)
            if path == HOME:
                continue
            text = open(os.path.join(src_root, path)).read()
            code = "\n".join(line.split("//")[0] for line in text.splitlines())
            n = len(CALL.findall(code))
            if n:
                found[path] = n
            direct += [f"{path}: raises ERRCODE_INTERNAL_ERROR itself (use pg::errors::internal)"
                       for _ in DIRECT.findall(code)]
    return found, direct


def listed(list_path):
    out = {}
    for line in open(list_path):
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.match(r"(\S+):\s+(\d+)\s+(\w+)$", line)
        if not m:
            raise SystemExit(f"{list_path}: cannot read {line!r} (want 'path: count category')")
        out[m.group(1)] = int(m.group(2))
    return out


def problems(found, direct, allowed):
    out = list(direct)
    for path in sorted(set(found) | set(allowed)):
        have, want = found.get(path, 0), allowed.get(path, 0)
        if have != want:
            out.append(f"{path}: {have} internal-error call site(s), the list says {want}")
    return out


def self_test():
    assert problems({"src/a.rs": 2}, [], {"src/a.rs": 2}) == []
    assert problems({"src/a.rs": 3}, [], {"src/a.rs": 2})
    assert problems({}, [], {"src/a.rs": 1})
    assert problems({"src/b.rs": 1}, [], {})
    assert len(CALL.findall("errors::internal(x); c.or_spi_failed(\"q\"); nextval_internal(1)")) == 2
    print("internal_errors.py self-test passed")


def main():
    if "--self-test" in sys.argv:
        self_test()
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    found, direct = counts(root)
    bad = problems(found, direct, listed(os.path.join(root, "tests/architecture/internal_errors.txt")))
    if bad:
        print("\n".join(bad))
        raise SystemExit("internal errors: a new XX000 needs a SQLSTATE its user can act on, or a line in "
                         "tests/architecture/internal_errors.txt saying why no user can cause it")
    print(f"internal errors: {sum(found.values())} call sites in {len(found)} files, all listed")


if __name__ == "__main__":
    main()
