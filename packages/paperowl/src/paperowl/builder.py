"""M-Paper builder: LaTeX sources -> diagram images + instruction samples per task (JSONL).

Task scheme of M-Paper (arXiv 2311.18248, Sec. 3 and Table 1; ``task_type`` = ``<object>_<task>`` as in the
official README): objects ``figure``, ``table`` (rendered image), ``tablelatex`` (LaTeX code), ``figure_table``,
``figure_tablelatex``; tasks ``cap`` (diagram -> caption), ``outline_to_analysis`` (diagrams + preceding context +
outline -> the paragraph that refers to them), ``analysis`` (the same without outline), ``simple_outline`` and
``detailed_outline`` (diagrams + context -> outline of that paragraph). A paragraph that refers to several
diagrams gives one multi-diagram sample.

Output folder::

    OUT_DIR/imgs/<paper>/<diagram>.png       figure images (and table images when pdflatex exists)
    OUT_DIR/sft/{cap,analysis,outline}.jsonl one sample per line: id, paper, split, task_type, image, conversations
    OUT_DIR/sft/3tasks.jsonl                 all samples
    OUT_DIR/meta/diagrams.jsonl              every parsed diagram (caption, labels, graphics, LaTeX, source)
    OUT_DIR/summary.json, warnings.txt       counts per paper/task/object; every warning as file:line: message
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from paperlab.config import require
from paperlab.io import DataError, MissingFileError, atomic_write_json, atomic_write_text, iter_jsonl
from paperowl.latex import expand_macros, find_main_file, flatten
from paperowl.outline import OutlineGenerator, make_outliner
from paperowl.parse import Diagram, Paper, Paragraph, parse_paper
from paperowl.render import TEX_MISSING, load_graphic, render_table, resolve_graphic, tex_available

log = logging.getLogger(__name__)

TASK_GROUPS = {
    "cap": "cap",
    "analysis": "analysis",
    "outline_to_analysis": "analysis",
    "simple_outline": "outline",
    "detailed_outline": "outline",
}
IMAGE_TOKEN = "<image>"


@dataclass
class BuildConfig:
    """Builder settings. ``min_paragraph_words``/``max_diagrams`` filter analysis samples (the paper keeps
    paragraphs that discuss at most a few diagrams); ``context_paragraphs``/``context_words`` bound the
    preceding context; ``outliner`` is ``extractive`` or ``llm`` (with ``outliner_options``)."""

    min_paragraph_words: int = 20
    max_diagrams: int = 4
    context_paragraphs: int = 2
    context_words: int = 150
    max_image_side: int = 1024
    pdf_dpi: float = 100.0
    render_tables: bool = True
    analysis_without_outline: bool = True
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    outliner: str = "extractive"
    outliner_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(
            self.min_paragraph_words >= 0, "min_paragraph_words", self.min_paragraph_words, "an integer >= 0"
        )
        require(self.max_diagrams >= 1, "max_diagrams", self.max_diagrams, "an integer >= 1")
        require(
            self.context_paragraphs >= 0, "context_paragraphs", self.context_paragraphs, "an integer >= 0"
        )
        require(self.context_words > 0, "context_words", self.context_words, "a positive integer")
        require(self.max_image_side >= 32, "max_image_side", self.max_image_side, "an integer >= 32")
        require(
            self.val_fraction >= 0 and self.test_fraction >= 0 and self.val_fraction + self.test_fraction < 1,
            "val_fraction/test_fraction",
            (self.val_fraction, self.test_fraction),
            "fractions summing below 1",
        )
        require(self.outliner in ("extractive", "llm"), "outliner", self.outliner, "'extractive' or 'llm'")


@dataclass
class Visual:
    """What a sample shows of one diagram: an image path (relative to OUT_DIR) or table LaTeX code."""

    diagram: Diagram
    image: str | None
    latex: str | None

    @property
    def object(self) -> str:
        if self.diagram.kind == "figure":
            return "figure"
        return "table" if self.image else "tablelatex"


def split_of(paper: str, val_fraction: float, test_fraction: float) -> str:
    """A paper's split from a stable hash of its name (every sample of a paper lands in one split)."""
    u = int(hashlib.sha256(paper.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def find_papers(src: str | Path) -> list[tuple[str, Path]]:
    """``(name, main file)`` of each paper under ``src``: ``src`` itself when it holds a main file, else its
    sub-folders (two levels deep, e.g. ``programmable-kv/paper/``), sorted by name."""
    src = Path(src)
    if not src.is_dir():
        if src.exists():
            raise DataError(
                f"{src}: is a file; expected a folder of LaTeX sources (a paper folder or a folder of them)"
            )
        raise MissingFileError(f"{src}: no such folder; expected a folder of LaTeX sources")
    main = find_main_file(src)
    if main is not None:
        return [(src.name, main)]
    papers = []
    for child in sorted(p for p in src.iterdir() if p.is_dir()):
        found = find_main_file(child)
        if found is None:
            found = next(
                (m for g in sorted(child.iterdir()) if g.is_dir() and (m := find_main_file(g))), None
            )
        if found is not None:
            papers.append((child.name, found))
    return papers


def _object_name(visuals: list[Visual]) -> str:
    objects = {v.object for v in visuals}
    if objects == {"figure"}:
        return "figure"
    if "figure" in objects:
        return "figure_tablelatex" if "tablelatex" in objects else "figure_table"
    return "tablelatex" if "tablelatex" in objects else "table"


def _describe(visuals: list[Visual]) -> tuple[str, list[str]]:
    """The diagram part of a prompt: ``Figure 1: <image>`` per image, the LaTeX code per table without one."""
    lines, images = [], []
    for v in visuals:
        name = f"{v.diagram.kind.capitalize()} {v.diagram.number}"
        if v.image:
            lines.append(f"{name}: {IMAGE_TOKEN}")
            images.append(v.image)
        else:
            lines.append(f"{name} (LaTeX):\n{v.latex}")
    return "\n".join(lines), images


def _context(paragraphs: list[Paragraph], index: int, config: BuildConfig) -> str:
    target = paragraphs[index]
    before = [
        p.text
        for p in paragraphs[max(0, index - config.context_paragraphs) : index]
        if p.section == target.section
    ]
    words = " ".join(before).split()
    return " ".join(words[-config.context_words :])


class PaperBuilder:
    """Turns one parsed paper into images and samples (see the module docstring)."""

    def __init__(self, config: BuildConfig, out_dir: Path, outliner: OutlineGenerator | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.outliner = outliner or make_outliner(config.outliner, **config.outliner_options)
        self.tex = config.render_tables and tex_available()

    def visuals(self, paper: Paper, root: Path, warn) -> dict[str, Visual]:
        """Usable diagrams: figures whose graphics load, tables with LaTeX code (and an image with TeX).
        A figure whose file is missing or unreadable is skipped with a warning at its float."""
        out: dict[str, Visual] = {}
        img_dir = self.out_dir / "imgs" / paper.name
        for diagram in paper.diagrams:
            rel = f"imgs/{paper.name}/{diagram.id}.png"
            if diagram.graphics:
                images = []
                for name in diagram.graphics:
                    path = resolve_graphic(root, name, paper.graphicspath)
                    if path is None:
                        warn(
                            diagram,
                            f"figure file {name!r} not found (tried .pdf/.png/.jpg/.eps and \\graphicspath)",
                        )
                        break
                    try:
                        images.append(load_graphic(path, self.config.max_image_side, self.config.pdf_dpi))
                    except ValueError as err:
                        warn(diagram, str(err))
                        break
                else:
                    img_dir.mkdir(parents=True, exist_ok=True)
                    _montage(images, self.config.max_image_side).save(self.out_dir / rel)
                    out[diagram.id] = Visual(diagram, rel, diagram.latex or None)
                continue
            if diagram.kind == "table" and diagram.latex:
                image = None
                if self.tex:
                    latex = expand_macros(diagram.latex, paper.macros)
                    image = render_table(latex, where=f"{paper.name}/{diagram.file}:{diagram.line}")
                if image is not None:
                    img_dir.mkdir(parents=True, exist_ok=True)
                    image.save(self.out_dir / rel)
                out[diagram.id] = Visual(diagram, rel if image is not None else None, diagram.latex)
        return out

    def samples(self, paper: Paper, visuals: dict[str, Visual], split: str) -> list[dict[str, Any]]:
        samples: list[dict[str, Any]] = []

        def add(task: str, chosen: list[Visual], prompt: str, answer: str, source: str) -> None:
            body, images = _describe(chosen)
            samples.append(
                {
                    "id": f"{paper.name}/{task}/{len(samples)}",
                    "paper": paper.name,
                    "split": split,
                    "task": TASK_GROUPS[task],
                    "task_type": f"{_object_name(chosen)}_{task}",
                    "diagrams": [v.diagram.id for v in chosen],
                    "image": images,
                    "conversations": [
                        {"from": "user", "value": f"{body}\n{prompt}".strip()},
                        {"from": "assistant", "value": answer},
                    ],
                    "source": source,
                }
            )

        for visual in visuals.values():
            d = visual.diagram
            if d.caption:
                add("cap", [visual], f"Write the caption of this {d.kind}.", d.caption, f"{d.file}:{d.line}")
        for i, para in enumerate(paper.paragraphs):
            if not para.refs or len(para.refs) > self.config.max_diagrams:
                continue
            if len(para.text.split()) < self.config.min_paragraph_words or any(
                r not in visuals for r in para.refs
            ):
                continue
            chosen = [visuals[r] for r in para.refs]
            context = _context(paper.paragraphs, i, self.config)
            ctx = f"Context: {context}\n" if context else ""
            outline = self.outliner.outline(para.text, [v.diagram.caption for v in chosen])
            where = f"{para.file}:{para.line}"
            add(
                "outline_to_analysis",
                chosen,
                f"{ctx}Outline: {outline.simple}\nWrite the next paragraph, analysing the diagrams above along the outline.",
                para.text,
                where,
            )
            if self.config.analysis_without_outline:
                add(
                    "analysis",
                    chosen,
                    f"{ctx}Write the next paragraph, analysing the diagrams above.",
                    para.text,
                    where,
                )
            add(
                "simple_outline",
                chosen,
                f"{ctx}Recommend a one-sentence outline for the next paragraph about the diagrams above.",
                outline.simple,
                where,
            )
            add(
                "detailed_outline",
                chosen,
                f"{ctx}Recommend a detailed outline, as key points, for the next paragraph about the diagrams above.",
                outline.detailed,
                where,
            )
        return samples


def _montage(images: list[Image.Image], max_side: int) -> Image.Image:
    """Side-by-side composition of a float's graphics (subfigures) on white, scaled to ``max_side``."""
    if len(images) == 1:
        return images[0]
    height = max(im.height for im in images)
    scaled = [im.resize((max(1, im.width * height // im.height), height)) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in scaled) + 8 * (len(scaled) - 1), height), "white")
    x = 0
    for im in scaled:
        canvas.paste(im, (x, 0))
        x += im.width + 8
    canvas.thumbnail((max_side, max_side))
    return canvas


def build(
    src: str | Path,
    out_dir: str | Path,
    config: BuildConfig | None = None,
    outliner: OutlineGenerator | None = None,
) -> dict[str, Any]:
    """Build M-Paper-style data from every paper under ``src`` into ``out_dir``; returns the summary
    (``papers``, ``tasks``, ``task_types``, ``diagrams``, ``warnings``), also written to ``summary.json``."""
    config = config or BuildConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builder = PaperBuilder(config, out, outliner)
    if config.render_tables and not builder.tex:
        log.warning(TEX_MISSING)
    all_samples: list[dict[str, Any]] = []
    diagrams_meta: list[dict[str, Any]] = []
    warnings: list[str] = []
    per_paper: dict[str, dict[str, Any]] = {}
    papers = find_papers(src)
    if not papers:
        raise DataError(
            f"{src}: no paper found: expected a main .tex file (main.tex, paper.tex, ms.tex, or one with "
            "\\documentclass and \\begin{document}) in this folder or in its sub-folders"
        )
    for name, main in tqdm(papers, desc="papers", unit="paper"):
        source = flatten(main)

        def warn(diagram: Diagram, message: str, _source=source, _name=name) -> None:
            text = f"{diagram.file}:{diagram.line}: {message}; diagram skipped"
            log.warning("%s: %s", _name, text)
            _source.warnings.append(text)  # type: ignore[arg-type]

        paper = parse_paper(source, name)
        visuals = builder.visuals(paper, main.parent, warn)
        samples = builder.samples(paper, visuals, split_of(name, config.val_fraction, config.test_fraction))
        all_samples.extend(samples)
        paper_warnings = [f"{name}/{w}" for w in source.warnings]
        warnings.extend(paper_warnings)
        for d in paper.diagrams:
            diagrams_meta.append(
                {"paper": name, **asdict(d), "image": visuals[d.id].image if d.id in visuals else None}
            )
        per_paper[name] = {
            "main": main.name,
            "figures": sum(d.kind == "figure" for d in paper.diagrams),
            "tables": sum(d.kind == "table" for d in paper.diagrams),
            "usable_diagrams": len(visuals),
            "paragraphs": len(paper.paragraphs),
            "referring_paragraphs": sum(bool(p.refs) for p in paper.paragraphs),
            "samples": len(samples),
            "warnings": len(paper_warnings),
        }
    if not diagrams_meta:
        mains = ", ".join(str(main) for _, main in papers[:3]) + (" ..." if len(papers) > 3 else "")
        raise DataError(
            f"{src}: no figure or table found in {len(papers)} paper(s) ({mains}): expected figure/table floats "
            "(\\begin{figure} ... \\includegraphics, \\begin{table} ... \\caption)"
        )
    if not all_samples:
        first = "; ".join(warnings[:3]) or "no caption or usable graphic"
        raise DataError(
            f"{src}: {len(diagrams_meta)} diagram(s) found but none usable, no sample built ({first})"
        )
    for group in ("cap", "analysis", "outline"):
        _write_jsonl(out / "sft" / f"{group}.jsonl", [s for s in all_samples if s["task"] == group])
    _write_jsonl(out / "sft" / "3tasks.jsonl", all_samples)
    _write_jsonl(out / "meta" / "diagrams.jsonl", diagrams_meta)
    atomic_write_text(out / "warnings.txt", "".join(w + "\n" for w in warnings))
    summary = {
        "papers": per_paper,
        "tasks": dict(Counter(s["task"] for s in all_samples)),
        "task_types": dict(sorted(Counter(s["task_type"] for s in all_samples).items())),
        "multi_diagram_samples": sum(len(s["diagrams"]) > 1 for s in all_samples),
        "samples": len(all_samples),
        "diagrams": len(diagrams_meta),
        "images": sum(1 for d in diagrams_meta if d["image"]),
        "tables_rendered": builder.tex,
        "tables_unrendered": sum(1 for d in diagrams_meta if d["kind"] == "table" and not d["image"]),
        "tables_fix": None if builder.tex or not config.render_tables else TEX_FIX,
        "warnings": warnings,
        # outlines a server failed (they fell back to the extractive outline; paperowl.outline.LLMOutliner)
        "outline_failures": getattr(builder.outliner, "failures", 0),
    }
    atomic_write_json(out / "summary.json", summary)
    if summary["tables_fix"] and summary["tables_unrendered"]:
        log.warning(unrendered_message(summary["tables_unrendered"]))
    return summary


#: the one command that gives the builder pdflatex (package.mk: apt-get install of a minimal TeX Live)
TEX_FIX = "make paperowl-tex"


def unrendered_message(count: int) -> str:
    """The end-of-build warning on a machine without pdflatex (M-Paper needs tables as images too)."""
    return (
        f"{'!' * 8} {count} table(s) NOT rendered as images: pdflatex is not installed, so no table_* / "
        f"figure_table_* samples were built (only tablelatex_*). Fix: `{TEX_FIX}` (apt-get install "
        f"texlive-latex-base texlive-latex-recommended texlive-latex-extra), then build again {'!' * 8}"
    )


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def load_mpaper(out_dir: str | Path, task: str | None = None, split: str | None = None):
    """The built samples as a :class:`datasets.Dataset` (``task`` in cap/analysis/outline filters one group,
    ``split`` one split). Raises ``FileNotFoundError`` naming the missing JSONL."""
    from datasets import Dataset

    from paperowl.data import check_row

    path = Path(out_dir) / "sft" / ("3tasks.jsonl" if task is None else f"{task}.jsonl")
    if not path.is_file():
        raise MissingFileError(
            f"{path}: no M-Paper JSONL here; run `python -m paperowl build SRC_DIR OUT_DIR` first"
        )
    rows = []
    for number, row in iter_jsonl(path):
        check_row(row, path, number, ("id", "task_type", "image", "conversations"))
        if split is None or row.get("split") == split:
            rows.append(row)
    try:
        return Dataset.from_list(rows)
    except Exception as err:  # pyarrow: the rows' fields do not share one type
        raise DataError(f"{path}: rows do not share one schema ({type(err).__name__}: {err})") from None
