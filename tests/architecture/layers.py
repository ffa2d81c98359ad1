#!/usr/bin/env python3
"""The layering test (docs/architecture.md): every path from one top-level module of src/ to
another must point down the layer order stated in src/lib.rs.

Reads every `crate::` path in the code (use lines, `crate::{a::x, b::y}` groups, inline paths such
as `crate::api::subjects::f()`, `$crate::` in macros) and every `super::` chain, ignoring comments
and string literals, and fails on each one that names a module above its own. `--self-test`
checks the checker on small examples.

Usage: python3 tests/architecture/layers.py [--self-test] [SRC_DIR]
"""

import os
import re
import sys

ORDER_LINE = re.compile(r"^//! Layer order[^:]*:\s*(.+)$", re.M)


def layer_order(lib_rs):
    """The order stated in src/lib.rs: `//! Layer order (lowest first): a < b < c`."""
    m = ORDER_LINE.search(lib_rs)
    if not m:
        raise SystemExit("src/lib.rs states no '//! Layer order (lowest first): ...' line")
    return [name.strip() for name in m.group(1).split("<")]


def strip_comments_and_strings(text):
    """The code with comments removed and string/char literals emptied (newlines kept, so line
    numbers stay right)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif re.match(r'(?:b|c)?r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(?:b|c)?r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^'\\])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_path(src, path):
    """The module path of a file: src/a/b.rs -> [a, b]; src/a/mod.rs -> [a]."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def references(code, file_module):
    """(line, top-level module named) for every crate:: path and super:: chain in the code."""
    refs = []
    # Inline `mod name {` blocks change what `super` means inside them.
    inline = []  # brace depths at which inline modules opened
    depth = 0
    tokens = re.finditer(r"\bmod\s+\w+\s*\{|[{}]|\$?\bcrate::\{|\$?\bcrate::(\w+)|\bsuper::(?:super::)*(\w+|\{)", code)
    for t in tokens:
        line = code.count("\n", 0, t.start()) + 1
        s = t.group(0)
        if s.startswith("mod"):
            depth += 1
            inline.append(depth)
        elif s == "{":
            depth += 1
        elif s == "}":
            if inline and inline[-1] == depth:
                inline.pop()
            depth -= 1
        elif s.endswith("crate::{"):
            # A group: the first segment of each item at the group's top level.
            j = t.end()
            level, item_start = 1, j
            while j < len(code) and level:
                ch = code[j]
                if ch == "{":
                    level += 1
                elif ch == "}":
                    level -= 1
                if level == 0 or (ch == "," and level == 1):
                    m = re.match(r"\s*(\w+)", code[item_start:j])
                    if m:
                        refs.append((line, m.group(1)))
                    item_start = j + 1
                j += 1
        elif "crate::" in s:
            refs.append((line, t.group(1)))
        else:
            ups = s.count("super::")
            here = file_module + ["<inline>"] * len(inline)
            target = here[: len(here) - ups]
            if target:
                refs.append((line, target[0]))
            elif t.group(2) != "{":
                refs.append((line, t.group(2)))
            # (super::{..} reaching the crate root is not used in this crate)
    return refs


def check(src):
    order = layer_order(open(os.path.join(src, "lib.rs")).read())
    rank = {m: i for i, m in enumerate(order)}
    violations, edges = [], {}
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            mod = module_path(src, path)
            if mod == ["lib"]:
                continue  # the crate root wires the layers together
            if mod[0] not in rank:
                violations.append(f"{path}: module '{mod[0]}' is not in the layer order of src/lib.rs")
                continue
            code = strip_comments_and_strings(open(path).read())
            for line, target in references(code, mod):
                if target not in rank or target == mod[0]:
                    continue
                edges[(mod[0], target)] = edges.get((mod[0], target), 0) + 1
                if rank[target] > rank[mod[0]]:
                    violations.append(f"{path}:{line}: {mod[0]} -> {target} points up ({' < '.join(order)})")
    return order, edges, violations


def self_test():
    code = strip_comments_and_strings(
        '// crate::api::x in a comment\n'
        'let s = "crate::api::y";\n'
        "let c = '\"'; let l: &'static str = r#\"crate::api\"#;\n"
        "/* crate::api\n */ use crate::{pg::a, keys::{b, c}};\n"
        "crate::audit::f();\n"
        "mod tests { use super::x; }\n"
        "use super::super::api::z;\n"
    )
    got = references(code, ["keys", "cache"])
    want = [(5, "pg"), (5, "keys"), (6, "audit"), (7, "keys"), (8, "api")]
    assert got == want, f"references: got {got}, want {want}"
    assert references("use super::y;", ["keys"]) == [(1, "y")]
    assert layer_order("//! Layer order (lowest first): pg < keys < api\n") == ["pg", "keys", "api"]
    print("layers.py self-test passed")


def main():
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    if "--self-test" in sys.argv:
        self_test()
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "..", "src")
    order, edges, violations = check(os.path.normpath(src))
    if violations:
        print("\n".join(violations))
        print(f"layering: {len(violations)} reference(s) point up the layer order")
        sys.exit(1)
    print(f"layering: {sum(edges.values())} references between {len(order)} layers, all pointing down ({' < '.join(order)})")


if __name__ == "__main__":
    main()
