"""Copy generated tables into the docs: every block

    <!-- table: results/ladder/nav2d/table.md -->
    ...
    <!-- /table -->

in docs/*.md gets the current content of the named file (written by the command the doc names).

    python scripts/sync_doc_tables.py            # rewrite the blocks
    python scripts/sync_doc_tables.py --check    # exit 1 (naming the block) if a doc is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def synced(text: str) -> str:
    def fill(m: re.Match) -> str:
        path = ROOT / m.group("path")
        if not path.is_file():
            raise SystemExit(f"sync_doc_tables: a block quotes {m.group('path')}, which does not exist "
                             "(run the command the doc names to write it)")
        table = path.read_text()
        return m.group(1) + table + ("" if table.endswith("\n") else "\n") + m.group(4)

    return BLOCK.sub(fill, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    stale = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        new = synced(text)
        if new != text:
            stale.append(doc.relative_to(ROOT))
            if not args.check:
                doc.write_text(new)
    if args.check and stale:
        print(f"out of date (run python scripts/sync_doc_tables.py): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
