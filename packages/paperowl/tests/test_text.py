"""Text conversion of real-paper-shaped LaTeX (issue 29): logos, ``\\S`` and ``\\verb`` keep their text, removed
citations leave no dangling words or empty parentheses, a ``\\label`` further down a section prints its number;
and a build without pdflatex says loudly, at the end, how many tables were left unrendered and what fixes it."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from paperowl.builder import BuildConfig, build
from paperowl.latex import find_main_file, flatten, latex_to_text
from paperowl.parse import parse_paper


def test_logos_section_sign_and_verb_are_kept_as_text() -> None:
    # astropy-like: "citation information as Bib\TeX{} entries"; an ephemeris epoch written with \verb
    assert latex_to_text(r"Astropy provides citation information as Bib\TeX{} entries.") == (
        "Astropy provides citation information as BibTeX entries."
    )
    assert latex_to_text(r"The reference epoch is JD \verb|2455348.5| (TDB).") == (
        "The reference epoch is JD 2455348.5 (TDB)."
    )
    assert latex_to_text(r"Written in \LaTeX\ and plain \TeX; details in \S\ref{x}.").startswith(
        "Written in LaTeX and plain TeX; details in \u00a7"
    )


def test_removed_citations_leave_no_dangling_words() -> None:
    text = latex_to_text(
        r"The method was introduced in a paper by \citet{foreman2017}. It scales linearly "
        r"(e.g. \citealp{rasmussen2006}). Kernels are standard \citep{gp}."
    )
    assert "by ." not in text and "(e.g. )" not in text and " ." not in text
    assert text == (
        "The method was introduced in a paper by [foreman2017]. It scales linearly. Kernels are standard."
    )


def test_a_label_later_in_the_section_prints_the_section_number(tmp_path: Path) -> None:
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n"
        "\\section{Introduction}\nWe start here and refer to the method in Section~\\ref{sec:method}.\n\n"
        "\\section{Method}\nSome words first, as real papers do.\n\\label{sec:method}\n"
        "\\subsection{Details}\nA paragraph.\n\n\\begin{equation}x=1\\label{eq:x}\\end{equation}\n"
        "\\end{document}\n"
    )
    paper = parse_paper(flatten(find_main_file(tmp_path)), "p")
    intro = next(p for p in paper.paragraphs if "We start" in p.text)
    assert "Section 2." in intro.text and "??" not in intro.text


def test_build_without_pdflatex_ends_with_a_loud_count_and_the_fix(tiny_paper, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("paperowl.builder.tex_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="paperowl.builder"):
        summary = build(tiny_paper, tmp_path / "out", BuildConfig(render_tables=True))
    tables = sum(v["tables"] for v in summary["papers"].values())
    assert tables >= 1 and summary["tables_unrendered"] == tables and summary["tables_rendered"] is False
    assert summary["tables_fix"] == "make paperowl-tex"
    last = caplog.records[-1].getMessage()
    assert (
        f"{tables} table(s) NOT rendered" in last and "`make paperowl-tex`" in last and last.startswith("!!!")
    )
    if shutil.which("pdflatex"):
        ok = build(tiny_paper, tmp_path / "out2", BuildConfig(render_tables=True))
        assert ok["tables_fix"] is None
