"""Results people can read: ``metrics.json`` for machines, Markdown and CSV tables, matplotlib PNG plots.

Every experiment writes to ``results/<package>/<experiment>/`` (:func:`results_dir`) with :func:`write_results`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paperlab.data import repo_root
from paperlab.io import atomic_write_bytes, atomic_write_json, atomic_write_text

ENV_RESULTS = "PAPERLAB_RESULTS"


def results_dir(package: str, experiment: str) -> Path:
    """``$PAPERLAB_RESULTS/<package>/<experiment>``, default ``results/`` at the repository root (or the
    working directory outside a checkout). Created if missing."""
    base = os.environ.get(ENV_RESULTS)
    if base:
        root = Path(base)
    else:
        repo = repo_root()
        root = (repo if repo is not None else Path.cwd()) / "results"
    out = root / package / experiment
    out.mkdir(parents=True, exist_ok=True)
    return out


def _fmt(value: Any, floatfmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, floatfmt: str = ".2f"
) -> str:
    """A GitHub Markdown table; ``columns`` defaults to the keys of the first row, in order. Missing values
    and None print as an en dash."""
    if not rows:
        return "(no rows)\n"
    cols = list(columns) if columns is not None else list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c), floatfmt) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_csv(
    path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Rows to CSV (atomic write); ``columns`` as in :func:`markdown_table`."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c) for c in cols})
    return atomic_write_text(path, buffer.getvalue())


def _figure() -> tuple[Any, Any]:
    from paperlab.signals import signals_deferred

    # an interrupt inside matplotlib's C-extension init leaves it half made and aborts the interpreter at exit
    with signals_deferred():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    return fig, ax


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_lines(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
    markers: bool = True,
) -> Path:
    """One line per entry of ``series`` against ``x`` (a loss curve, a metric vs budget) as a PNG."""
    fig, ax = _figure()
    for name, ys in series.items():
        xs = list(x)[: len(ys)]
        ax.plot(xs, list(ys), marker="o" if markers else None, markersize=3, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_bars(
    path: str | Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    title: str = "",
) -> Path:
    """Grouped bars: one group per category, one bar per entry of ``series``, as a PNG."""
    import numpy as np

    fig, ax = _figure()
    n = max(len(series), 1)
    width = 0.8 / n
    centers = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(centers + (i - (n - 1) / 2) * width, list(values), width, label=name)
    ax.set_xticks(centers, list(categories), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def write_results(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Sequence[str] | None = None,
    title: str = "Results",
    notes: str = "",
    floatfmt: str = ".2f",
) -> Path:
    """Write ``metrics.json`` and, when ``rows`` are given, ``results.md`` (title, table, notes) and
    ``results.csv`` into ``out_dir``. Returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", dict(metrics))
    if rows is not None:
        text = f"# {title}\n\n" + markdown_table(rows, columns, floatfmt)
        if notes:
            text += "\n" + notes.strip() + "\n"
        atomic_write_text(out / "results.md", text)
        write_csv(out / "results.csv", rows, columns)
    return out


def write_bench(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    columns: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    floatfmt: str = ".3g",
) -> Path:
    """A benchmark's output: ``results/bench/<name>.json`` (``rows`` and ``extra``) and ``<name>.md`` (``# title``
    and the table), both written atomically; the Markdown is printed. Returns the Markdown path. The folder is
    ``results/bench`` under the repository root (or ``$PAPERLAB_RESULTS/bench``)."""
    out = results_dir("bench", ".").resolve()
    atomic_write_json(out / f"{name}.json", {"rows": list(rows), **(extra or {})})
    text = f"# {title}\n\n" + markdown_table(rows, columns, floatfmt=floatfmt)
    path = atomic_write_text(out / f"{name}.md", text)
    print(text, flush=True)
    return path
