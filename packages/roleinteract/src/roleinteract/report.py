"""The results table in the paper's column order, our rows beside the published ones, and a bar chart.

Published rows: SocialBench paper (Chen et al., ACL Findings 2024, arXiv 2403.13679), Table 2 (open-source) and
Table 3 (closed-source), as reprinted in the official repository README at commit 1287b67.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paperlab.report import markdown_table, plot_bars, write_csv
from roleinteract.scoring import PAPER_COLUMNS

TABLE_COLUMNS = ("model", *PAPER_COLUMNS, "Avg")
PAPER_SOURCE = "SocialBench paper (arXiv 2403.13679) Tables 2-3, as in the official README @ 1287b67"

# SA Style, SA Know, EP Situ., EP Emo., CM Short, CM Long, SP Pos., SP Neu., SP Neg., Avg
PUBLISHED: dict[str, tuple[float, ...]] = {
    "LLaMA-2-7B-Chat": (48.76, 51.23, 31.23, 28.91, 25.38, 21.89, 44.98, 24.19, 27.67, 33.80),
    "LLaMA-2-13B-Chat": (57.62, 65.51, 37.12, 32.56, 30.43, 29.82, 66.38, 42.25, 26.27, 43.11),
    "LLaMA-2-70B-Chat": (67.61, 70.78, 35.74, 38.47, 45.57, 26.74, 69.87, 45.29, 39.37, 48.83),
    "Mistral-7B-Instruct-V0.2": (50.12, 61.17, 36.48, 31.72, 31.78, 25.42, 65.67, 46.34, 28.96, 41.96),
    "Qwen-7B-Chat": (66.44, 71.16, 41.68, 40.68, 67.45, 53.45, 75.61, 52.78, 43.11, 56.93),
    "Qwen-14B-Chat": (77.06, 86.15, 45.71, 43.78, 65.32, 51.37, 78.32, 58.25, 59.21, 62.80),
    "Qwen-72B-Chat": (83.87, 90.64, 53.10, 52.89, 83.29, 73.15, 91.53, 73.44, 63.82, 73.97),
    "GPT-4-Turbo": (84.57, 93.11, 56.48, 53.05, 81.39, 80.11, 89.73, 81.69, 75.10, 77.25),
    "GPT-3.5-Turbo": (73.17, 73.82, 52.44, 45.49, 73.03, 59.72, 81.59, 76.79, 54.16, 65.58),
    "Qwen-Max": (82.04, 93.34, 61.14, 52.36, 76.45, 72.65, 87.22, 72.14, 52.19, 72.17),
    "Xingchen-Plus": (85.43, 91.60, 55.44, 60.73, 82.43, 80.69, 94.27, 86.69, 77.26, 79.39),
    "Baichuan-NPC-Turbo": (53.69, 61.67, 52.14, 43.34, 76.47, 22.40, 62.09, 48.97, 34.59, 50.59),
    "Baichuan-2-Turbo": (77.75, 83.35, 55.70, 47.38, 80.11, 78.91, 87.37, 74.71, 68.50, 72.64),
    "CharGLM-3": (74.70, 79.41, 26.23, 41.27, 81.16, 68.29, 84.40, 70.45, 36.36, 62.47),
    "GLM-3-Turbo": (77.85, 84.62, 35.58, 53.05, 74.64, 71.68, 84.41, 67.47, 54.55, 67.09),
    "Minimax-abab5.5s-chat": (36.09, 42.11, 28.15, 47.97, 29.55, 19.30, 44.59, 41.04, 22.45, 34.58),
    "Minimax-abab6-chat": (82.92, 87.45, 35.90, 51.38, 83.60, 80.26, 89.12, 79.55, 74.65, 73.87),
}


def published_rows(models: Sequence[str] | None = None) -> list[dict[str, Any]]:
    names = list(PUBLISHED) if models is None else list(models)
    rows = []
    for name in names:
        values = PUBLISHED[name]
        rows.append({"model": f"{name} (paper)", **dict(zip((*PAPER_COLUMNS, "Avg"), values, strict=True))})
    return rows


def model_row(name: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """One table row from :func:`roleinteract.scoring.aggregate`'s output."""
    return {"model": name, **summary["columns"], "Avg": summary["Avg"]}


def category_rows(summaries: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per ``category/lang`` breakdown: one row per category, a score and an unparsed count per model."""
    keys = sorted({k for s in summaries.values() for k in s["categories"]})
    columns = ["category", "n"]
    for model in summaries:
        columns += [model, f"{model} unparsed"]
    rows = []
    for key in keys:
        row: dict[str, Any] = {"category": key}
        for model, s in summaries.items():
            cat = s["categories"].get(key)
            if cat is None:
                continue
            row["n"] = cat["n"]
            row[model] = cat["score"]
            row[f"{model} unparsed"] = cat["unparsed"]
        rows.append(row)
    return rows, columns


def write_report(
    out_dir: str | Path,
    rows: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, Mapping[str, Any]],
    *,
    title: str,
    notes: str = "",
    drift: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Path]:
    """``results.md`` (main table, breakdown, drift), ``results.csv``, ``categories.csv`` and ``scores.png``."""
    from paperlab.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cat_rows, cat_cols = category_rows(summaries)
    text = f"# {title}\n\n" + markdown_table(rows, TABLE_COLUMNS)
    if notes:
        text += "\n" + notes.strip() + "\n"
    text += "\n## Per category and language (score x 100; unparsed = answers with no option letter)\n\n"
    text += markdown_table(cat_rows, cat_cols, floatfmt=".1f")
    if drift:
        text += "\n## Group level: preference drift (with vs without the group conversation)\n\n"
        drift_rows = [{"model": m, "category": c, **v} for m, per in drift.items() for c, v in per.items()]
        cols = ["model", "category", "n", "with_group", "without_group", "drift", "flip_rate"]
        text += markdown_table(drift_rows, cols, floatfmt=".1f")
    atomic_write_text(out / "results.md", text)
    write_csv(out / "results.csv", rows, TABLE_COLUMNS)
    write_csv(out / "categories.csv", cat_rows, cat_cols)
    present = [
        c for c in PAPER_COLUMNS if any(r.get(c) is not None for r in rows if "(paper)" not in r["model"])
    ]
    series = {r["model"]: [r.get(c) or 0.0 for c in present] for r in rows}
    plot = plot_bars(out / "scores.png", present, series, ylabel="score (x100)", title=title)
    return {"results.md": out / "results.md", "results.csv": out / "results.csv", "scores.png": plot}
