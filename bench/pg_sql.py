#!/usr/bin/env python3
"""bench/pg_sql.py: the SQL statements of the PostgreSQL backend, as the
compiler sees them (macros expanded, adjacent literals joined), for
bench/bigspool_pg.sh to EXPLAIN what slhook really runs.

  pg_sql.py OUT-DIR [CFLAGS...]

Runs `cc -E CFLAGS` on each lib/store_pg_*.c and writes every
`static const char NAME[] = "...";` into OUT-DIR/NAME.sql.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECL = re.compile(r'static\s+const\s+char\s+(\w+)\s*\[\s*\]\s*=\s*'
                  r'((?:"(?:[^"\\]|\\.)*"\s*)+);')
LIT = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unescape(s):
    return re.sub(r'\\(.)', lambda m: {'n': '\n', 't': '\t'}.get(
        m.group(1), m.group(1)), s)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out, flags = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    n = 0
    for src in sorted(glob.glob(os.path.join(ROOT, "lib", "store_pg_*.c")) +
                      [os.path.join(ROOT, "lib", "store_pg.c")]):
        if src.endswith("_none.c"):
            continue
        text = subprocess.run(["cc", "-E", "-P"] + flags + [src], check=True,
                              capture_output=True, text=True).stdout
        for m in DECL.finditer(text):
            sql = "".join(unescape(x) for x in LIT.findall(m.group(2)))
            with open(os.path.join(out, m.group(1) + ".sql"), "w") as f:
                f.write(sql + "\n")
            n += 1
    print("pg_sql: %d statements into %s" % (n, out))


if __name__ == "__main__":
    main()
