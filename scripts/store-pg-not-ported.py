#!/usr/bin/env python3
"""Adds the PostgreSQL arm to store methods written for SQLite only (docs/cluster.md), so they compile next to
`Db::Pg`: after every `match self {` whose first arm is `Db::Sqlite(pool) =>`, inserts
`Db::Pg(_) => not_ported!("<method>"),` (a clear StoreError::NotPorted at run time on PostgreSQL, never wrong data),
and turns a test's `let Db::Sqlite(pool) = &db;` into a `let … else { panic!(…) }`. Idempotent.

    scripts/store-pg-not-ported.py crates/store/src/*.rs crates/store/src/tests/*.rs

Porting a method for real means replacing the match by `on_both!(self, pool, …)` with SQL both engines accept
(the rules are in docs/cluster.md) and running the store's tests under scripts/pg-test-server.sh.
"""
import re
import sys


def fix(text: str) -> tuple[str, int]:
    lines = text.split("\n")
    out: list[str] = []
    fn_name = None
    added = 0
    for i, line in enumerate(lines):
        m = re.search(r"\bfn (\w+)", line)
        if m:
            fn_name = m.group(1)
        arm = re.match(r"^(\s*)Db::Sqlite\(pool\) =>", line)
        if arm and i > 0 and lines[i - 1].strip() == "match self {":
            already = i + 1 < len(lines) and "Db::Pg(" in lines[i + 1]
            if not already and not (out and "Db::Pg(" in out[-1]):
                out.append(f'{arm.group(1)}Db::Pg(_) => not_ported!("{fn_name}"),')
                added += 1
        let = re.match(r"^(\s*)let Db::Sqlite\(pool\) = &(\w+);$", line)
        if let:
            ind = let.group(1)
            out.append(f"{ind}let Db::Sqlite(pool) = &{let.group(2)} else {{")
            out.append(f'{ind}    panic!("these checks read SQLite directly")')
            out.append(f"{ind}}};")
            added += 1
            continue
        out.append(line)
    return "\n".join(out), added


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new, added = fix(text)
        if added:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"{path}: {added} PostgreSQL arm(s) added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
