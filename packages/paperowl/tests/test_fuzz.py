"""Fuzzed loaders (paperlab.fuzz): the LaTeX folder loader (``build`` on {main.tex, refs.bib}) and the builder
JSONL loaders (``samples_from_jsonl``, ``load_mpaper``) either load each mutated input or refuse it with a
DataError naming the file or folder; nothing else escapes. Examples per loader: PAPERLAB_FUZZ_EXAMPLES (40 in
make test)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from paperlab.fuzz import fuzz_loader
from paperowl.builder import BuildConfig, build, load_mpaper
from paperowl.data import samples_from_jsonl

MAIN = r"""\documentclass{article}
\newcommand{\method}{OwlNet}
\begin{document}
\section{Results}
Table~\ref{tab:acc} compares \method{} with two baselines on three data sets; it is better on every one of
them by a wide margin, as the table shows and as we discuss below in detail \cite{owl}.

\begin{table}[t]
\caption{Accuracy of \method{} and the baselines.}
\label{tab:acc}
\begin{tabular}{lcc}
\hline
Method & A & B \\
\hline
\method{} & 91.2 & 88.0 \\
Base & 80.1 & 79.5 \\
\hline
\end{tabular}
\end{table}

\begin{figure}
\includegraphics[width=\linewidth]{absent-plot}
\caption{A plot whose file is missing.}
\label{fig:plot}
\end{figure}
\bibliography{refs}
\end{document}
"""
BIB = "@article{owl, title={PaperOwl}, author={Hu, A.}, year={2024}}\n"


def test_fuzz_latex_folder_loader(tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = fuzz_loader(
        lambda folder: build(folder, out, BuildConfig(render_tables=False)),
        {"main.tex": MAIN.encode(), "refs.bib": BIB.encode()},
        kind="text", name="paperowl.build[latex folder]",
    )  # fmt: skip
    assert counts["parsed"] >= 1


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


ROWS = [
    {
        "id": f"p-{i}",
        "paper": "p",
        "split": "train",
        "task": "cap",
        "task_type": "figure_cap",
        "diagrams": ["fig1"],
        "image": ["imgs/p/fig1.png"],
        "conversations": [
            {"from": "user", "value": "<image>\nCaption?"},
            {"from": "assistant", "value": f"Plot {i}."},
        ],
    }
    for i in range(3)
]
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS).encode()


def test_fuzz_samples_from_jsonl() -> None:
    counts = fuzz_loader(
        lambda folder: samples_from_jsonl(folder / "sft" / "3tasks.jsonl"),
        {"sft/3tasks.jsonl": JSONL, "imgs/p/fig1.png": _png()},
        kind={"sft/3tasks.jsonl": "jsonl", "imgs/p/fig1.png": "text"}, name="paperowl.samples_from_jsonl",
    )  # fmt: skip
    assert counts["refused"] >= 1


def test_fuzz_load_mpaper() -> None:
    counts = fuzz_loader(load_mpaper, {"sft/3tasks.jsonl": JSONL}, kind="jsonl", name="paperowl.load_mpaper")
    assert counts["refused"] >= 1
