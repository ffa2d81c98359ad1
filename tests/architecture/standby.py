#!/usr/bin/env python3
"""Every SQL function that may write says so on a hot standby (docs/operations.md).

A volatile `#[pg_extern]` (volatile is pgrx's default) either refuses during recovery first thing
(`crate::pg::recovery::refuse_during_recovery`, SQLSTATE 25006 naming the function) or is listed in
tests/architecture/standby.txt with the reason it works on a standby. A new volatile function
without either fails `make test`: left alone it would meet its first write on a standby as an
internal error (pgrx's SPI asks for a transaction id, XX000). `--self-test` checks the checker.
"""

import os
import re
import sys

EXTERN = re.compile(r"#\[pg_extern\((.*)\)\]\s*$", re.MULTILINE)
FN = re.compile(r"\bfn\s+([a-z0-9_]+)")
GUARD = "refuse_during_recovery("


def functions(text):
    """(name, sql name, guarded) of every volatile #[pg_extern] in one file."""
    out = []
    for m in EXTERN.finditer(text):
        attrs = m.group(1)
        # pgrx's default volatility is VOLATILE; `sql = false` functions declare theirs in sql/,
        # and are checked like volatile ones unless the attribute says otherwise.
        if re.search(r"\b(immutable|stable)\b", attrs):
            continue
        rest = text[m.end():]
        f = FN.search(rest)
        body_start = rest.index("{", f.end())
        # The first statement of the body: the guard must come before anything else runs.
        first = rest[body_start + 1:].lstrip().split(";", 1)[0]
        named = re.search(r'name\s*=\s*"([a-z0-9_]+)"', attrs)
        out.append((f.group(1), named.group(1) if named else f.group(1), GUARD in first))
    return out


def scan(root):
    found = {}
    for base, _, files in os.walk(os.path.join(root, "src")):
        for name in sorted(files):
            if name.endswith(".rs"):
                path = os.path.relpath(os.path.join(base, name), root)
                text = open(os.path.join(root, path)).read()
                if "#[cfg(any(test, feature = \"pg_test\"))]" in text:
                    text = text.split("#[cfg(any(test, feature = \"pg_test\"))]")[0]
                for fn, sql, guarded in functions(text):
                    found[f"{path}:{fn}"] = (sql, guarded)
    return found


def listed(list_path):
    out = set()
    for line in open(list_path):
        line = line.split("#")[0].strip()
        if line:
            m = re.match(r"(\S+:[a-z0-9_]+)\s+\S", line)
            if not m:
                raise SystemExit(f"{list_path}: cannot read {line!r} (want 'path:function reason')")
            out.add(m.group(1))
    return out


def problems(found, allowed):
    out = []
    for key, (sql, guarded) in sorted(found.items()):
        if guarded and key in allowed:
            out.append(f"{key}: refuses on a standby but is listed as working there")
        elif not guarded and key not in allowed:
            out.append(f"{key}: volatile encml.{sql}() neither refuses during recovery first thing "
                       "nor is listed as working on a standby")
    out += [f"{key}: listed, but no such volatile function" for key in sorted(allowed - set(found))]
    return out


def self_test():
    text = '''
#[pg_extern(volatile, parallel_unsafe)]
fn writes(a: i32) -> i32 {
    crate::pg::recovery::refuse_during_recovery("encml.writes()");
    a
}
#[pg_extern(name = "reads", volatile)]
fn reads_impl() {
    let x = 1; refuse_during_recovery("too late");
}
#[pg_extern(immutable)]
fn pure() {}
#[pg_extern(stable, strict)]
fn reads_only() {}
'''
    got = functions(text)
    assert got == [("writes", "writes", True), ("reads_impl", "reads", False)], got
    found = {"a.rs:writes": ("writes", True), "a.rs:reads_impl": ("reads", False)}
    assert problems(found, {"a.rs:reads_impl"}) == []
    assert problems(found, set())
    assert problems(found, {"a.rs:reads_impl", "a.rs:writes"})
    assert problems(found, {"a.rs:reads_impl", "a.rs:gone"})
    print("standby.py self-test passed")


def main():
    if "--self-test" in sys.argv:
        self_test()
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    found = scan(root)
    bad = problems(found, listed(os.path.join(root, "tests/architecture/standby.txt")))
    if bad:
        print("\n".join(bad))
        raise SystemExit("standby: a volatile SQL function refuses during recovery "
                         "(pg::recovery::refuse_during_recovery) or is listed in tests/architecture/standby.txt")
    guarded = sum(1 for _, g in found.values() if g)
    print(f"standby: {guarded} volatile functions refuse during recovery, {len(found) - guarded} listed as working there")


if __name__ == "__main__":
    main()
