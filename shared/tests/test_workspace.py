import pytest

from paperlab.workspace import read_status, summarize


def test_summary_lists_packages_and_embeds_result_tables(tmp_path):
    status = tmp_path / "status.tsv"
    status.write_text("adore\tadore-recall\tok\t12\naihf\t-\tnot implemented\t0\n")
    results = tmp_path / "results"
    (results / "adore" / "recall").mkdir(parents=True)
    (results / "adore" / "recall" / "results.md").write_text("# ADORE\n\n| a |\n| --- |\n| 1 |\n")
    text = summarize(status, tmp_path / "summary.md", results)
    assert "| adore | adore-recall | ok | 12 |" in text
    assert "| aihf | - | not implemented | 0 |" in text
    assert "# ADORE" in text


def test_read_status_names_bad_line(tmp_path):
    status = tmp_path / "s.tsv"
    status.write_text("a\tb\tc\t1\nbroken line\n")
    with pytest.raises(ValueError, match=r"s\.tsv:2: expected 4"):
        read_status(status)
