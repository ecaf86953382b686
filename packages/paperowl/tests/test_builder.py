"""Builder on hand-written LaTeX: exact floats, captions, labels, referring paragraphs and samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperowl.builder import BuildConfig, build, find_papers, load_mpaper
from paperowl.latex import collect_macros, expand_macros, find_main_file, flatten, strip_comment
from paperowl.parse import parse_paper


def _parse(root: Path):
    source = flatten(find_main_file(root))
    return source, parse_paper(source, root.name)


def test_strip_comment_keeps_escaped_percent():
    assert strip_comment(r"50\% of runs % a comment") == r"50\% of runs "
    assert strip_comment(r"a \\% b") == "a \\\\"


def test_macros_simple_and_with_arguments():
    macros = collect_macros(r"\newcommand{\method}{OwlNet}\newcommand{\bold}[1]{\textbf{#1}}\def\x{X}")
    assert macros == {"method": (0, "OwlNet"), "bold": (1, r"\textbf{#1}"), "x": (0, "X")}
    assert expand_macros(r"\method{} and \bold{b} \x", macros) == r"OwlNet{} and \textbf{b} X"


def test_flatten_maps_lines_back_to_files(tiny_paper):
    source = flatten(tiny_paper / "main.tex")
    assert "never seen" not in source.text and "a comment that must vanish" not in source.text
    assert source.where(source.text.index("The accuracy of")) == ("sections/results.tex", 2)
    assert source.where(source.text.index("We study")) == ("main.tex", 10)
    assert source.warnings == []


def test_floats_captions_labels_exact(tiny_paper):
    _, paper = _parse(tiny_paper)
    got = [(d.id, d.env, d.caption, d.labels, d.graphics, d.file, d.line) for d in paper.diagrams]
    assert got == [
        (
            "figure1",
            "figure",
            "Accuracy of OwlNet against training epochs.",
            ["fig:curve"],
            ["figures/curve.png"],
            "sections/results.tex",
            5,
        ),
        ("table1", "table*", "Results on the test set.", ["tab:main"], [], "sections/results.tex", 12),
        (
            "figure2",
            "figure",
            "Two views of the loss.",
            ["fig:pair", "fig:pair-a", "fig:pair-b"],
            ["figures/left", "right"],
            "sections/results.tex",
            22,
        ),
    ]
    assert paper.diagrams[2].subcaptions == {"fig:pair-a": "Left panel.", "fig:pair-b": "Right panel."}
    assert paper.diagrams[1].latex.startswith(r"\begin{tabular}{lc}") and paper.diagrams[1].latex.endswith(
        r"\end{tabular}"
    )
    assert paper.graphicspath == ("figures/",)
    assert paper.sections == ["Introduction", "Results"]


def test_referring_paragraphs_exact(tiny_paper):
    _, paper = _parse(tiny_paper)
    referring = [(p.section, p.text, p.refs, p.file, p.line) for p in paper.paragraphs if p.refs]
    assert referring == [
        (
            "Results",
            "The accuracy of OwlNet grows with the training budget, as Fig. 1 shows for five runs with "
            "different seeds. It saturates after ten epochs.",
            ["figure1"],
            "sections/results.tex",
            2,
        ),
        (
            "Results",
            "Table 1 compares OwlNet with the baseline, and Figure 2a shows the loss on the left panel "
            "while Figure 2 gives both views.",
            ["table1", "figure2"],
            "sections/results.tex",
            37,
        ),
    ]
    assert [p.refs for p in paper.paragraphs] == [[], ["figure1"], ["table1", "figure2"]]


def test_samples_per_task_exact(tiny_paper, tmp_path):
    out = tmp_path / "out"
    summary = build(tiny_paper, out, BuildConfig(render_tables=False))
    assert summary["warnings"] == []
    assert summary["task_types"] == {
        "figure_cap": 2,
        "tablelatex_cap": 1,
        "figure_outline_to_analysis": 1,
        "figure_analysis": 1,
        "figure_simple_outline": 1,
        "figure_detailed_outline": 1,
        "figure_tablelatex_outline_to_analysis": 1,
        "figure_tablelatex_analysis": 1,
        "figure_tablelatex_simple_outline": 1,
        "figure_tablelatex_detailed_outline": 1,
    }
    assert summary["multi_diagram_samples"] == 4
    rows = [json.loads(line) for line in (out / "sft" / "3tasks.jsonl").read_text().splitlines()]
    by_type = {r["task_type"]: r for r in rows if r["task_type"] != "figure_cap"}
    cap = [r for r in rows if r["task_type"] == "figure_cap"]
    assert [r["conversations"][1]["value"] for r in cap] == [
        "Accuracy of OwlNet against training epochs.",
        "Two views of the loss.",
    ]
    assert cap[0]["image"] == ["imgs/tiny_paper/figure1.png"] and (out / cap[0]["image"][0]).is_file()
    table_cap = by_type["tablelatex_cap"]
    assert table_cap["image"] == [] and r"\begin{tabular}{lc}" in table_cap["conversations"][0]["value"]
    simple = by_type["figure_simple_outline"]["conversations"][1]["value"]
    assert simple == (
        "The accuracy of OwlNet grows with the training budget, as Fig. 1 shows for five runs with "
        "different seeds."
    )
    detailed = by_type["figure_detailed_outline"]["conversations"][1]["value"]
    assert detailed == (
        "- The accuracy of OwlNet grows with the training budget, as Fig. 1 ...\n"
        "- It saturates after ten epochs."
    )
    multi = by_type["figure_tablelatex_outline_to_analysis"]
    assert multi["diagrams"] == ["table1", "figure2"] and multi["image"] == ["imgs/tiny_paper/figure2.png"]
    prompt = multi["conversations"][0]["value"]
    assert prompt.startswith("Table 1 (LaTeX):\n\\begin{tabular}") and "Figure 2: <image>" in prompt
    assert "Context: The accuracy of OwlNet" in prompt and "Outline: " in prompt
    assert multi["conversations"][1]["value"].startswith("Table 1 compares OwlNet")
    assert "Context:" not in by_type["figure_analysis"]["conversations"][0]["value"]
    dataset = load_mpaper(out, task="analysis")
    assert len(dataset) == 4 and set(dataset["task"]) == {"analysis"}


def test_broken_tex_warns_with_file_and_line_and_skips_only_that_diagram(broken_paper, tmp_path, caplog):
    summary = build(broken_paper, tmp_path / "out", BuildConfig(render_tables=False, min_paragraph_words=5))
    warnings = summary["warnings"]
    assert len(warnings) == 3
    assert warnings[0] == "broken_paper/main.tex:4: \\input{sections/missing}: file not found; skipped"
    assert warnings[1] == "broken_paper/main.tex:12: unbalanced braces in \\begin{figure}; diagram skipped"
    assert warnings[2].startswith("broken_paper/main.tex:18: figure file 'nothere.png' not found")
    assert warnings[2].endswith("diagram skipped")
    assert summary["task_types"] == {"figure_cap": 1}  # the paragraph refers to skipped diagrams: no analysis
    assert (
        summary["papers"]["broken_paper"]["figures"] == 2
        and summary["papers"]["broken_paper"]["usable_diagrams"] == 1
    )
    assert (tmp_path / "out" / "warnings.txt").read_text().count("\n") == 3


def test_unclosed_float_is_skipped_and_later_floats_kept(tmp_path):
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n\\begin{figure}\n\\caption{Lost.}\n"
        "\\begin{table}\n\\caption{Kept table.}\n\\begin{tabular}{c}\nx\n\\end{tabular}\n\\end{table}\n\\end{document}\n"
    )
    source, paper = _parse(tmp_path)
    assert [d.caption for d in paper.diagrams] == ["Kept table."]
    assert [str(w) for w in source.warnings] == [
        "main.tex:3: \\begin{figure} is never closed; diagram skipped"
    ]


def test_find_papers_and_bad_inputs(tiny_paper, tmp_path):
    assert find_papers(tiny_paper) == [("tiny_paper", tiny_paper / "main.tex")]
    assert find_papers(tiny_paper.parent)[0][0] == "tiny_paper"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_papers(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no M-Paper JSONL"):
        load_mpaper(tmp_path)
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "3tasks.jsonl").write_text('{"id": 1, "task_type": "x", "image": []}\n')
    with pytest.raises(ValueError, match=r"3tasks.jsonl:1: missing field 'conversations'"):
        load_mpaper(tmp_path)
    with pytest.raises(Exception, match="max_diagrams"):
        BuildConfig(max_diagrams=0)
