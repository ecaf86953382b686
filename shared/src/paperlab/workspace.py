"""Workspace glue for the Makefile: ``python -m paperlab.workspace summary STATUS.tsv OUT.md``.

``make demo`` records one line per package (name, make target, status, seconds) and this module turns it into
``results/demo/summary.md``: every package, its status, and the result tables its demo wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paperlab.data import repo_root
from paperlab.io import atomic_write_text
from paperlab.report import markdown_table


def read_status(path: Path) -> list[dict[str, str]]:
    """Rows of ``name<TAB>target<TAB>status<TAB>seconds``; a malformed line names the file and line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 4 tab-separated fields, got {len(parts)}: {line!r}")
        rows.append(dict(zip(("package", "target", "status", "seconds"), parts)))
    return rows


def summarize(status_file: Path, out_file: Path, results_root: Path) -> str:
    rows = read_status(status_file)
    table = markdown_table(rows, ["package", "target", "status", "seconds"])
    parts = ["# paperlab demo summary\n", table]
    for row in rows:
        tables = sorted((results_root / row["package"]).glob("*/results.md"))
        if not tables:
            continue
        parts.append(f"\n## {row['package']}\n")
        for table_path in tables:
            body = table_path.read_text(encoding="utf-8").strip()
            parts.append(f"\n_from `{table_path.relative_to(results_root.parent)}`_\n\n{body}\n")
    text = "\n".join(parts)
    atomic_write_text(out_file, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paperlab.workspace")
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="write results/demo/summary.md from make demo's status file")
    summary.add_argument("status", type=Path)
    summary.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    root = repo_root() or Path.cwd()
    summarize(args.status, args.out, root / "results")
    rows = read_status(args.status)
    print(markdown_table(rows, ["package", "target", "status", "seconds"]))
    print(f"wrote {args.out}")
    failed = [r["package"] for r in rows if r["status"] == "FAILED"]
    if failed:
        print(f"demo failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
