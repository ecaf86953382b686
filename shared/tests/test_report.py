import json

from paperlab.report import markdown_table, plot_bars, plot_lines, write_csv, write_results


def test_markdown_table_formats_and_escapes():
    rows = [{"model": "a|b", "R@1": 12.3456, "note": None}, {"model": "c", "R@1": 1.0}]
    text = markdown_table(rows, ["model", "R@1", "note"])
    assert text.splitlines() == [
        "| model | R@1 | note |",
        "| --- | --- | --- |",
        "| a\\|b | 12.35 | – |",
        "| c | 1.00 | – |",
    ]


def test_write_results_and_plots(tmp_path):
    rows = [{"method": "x", "score": 0.5}]
    out = write_results(tmp_path / "exp", {"score": 0.5}, rows=rows, title="T", notes="paper: Table 2")
    assert json.loads((out / "metrics.json").read_text()) == {"score": 0.5}
    md = (out / "results.md").read_text()
    assert md.startswith("# T\n") and "paper: Table 2" in md
    assert (out / "results.csv").read_text() == "method,score\nx,0.5\n"
    png = plot_lines(
        tmp_path / "curve.png", [1, 2, 3], {"loss": [3.0, 2.0, 1.0], "val": [3.5, 2.5]}, xlabel="step"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars = plot_bars(tmp_path / "bars.png", ["a", "b"], {"m1": [1, 2], "m2": [2, 1]})
    assert bars.stat().st_size > 1000
    write_csv(tmp_path / "empty.csv", [])
    assert (tmp_path / "empty.csv").read_text() == "\n"


def test_write_bench_writes_json_and_markdown_under_results_bench(tmp_path, monkeypatch, capsys) -> None:
    from paperlab.report import write_bench

    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path))
    rows = [{"what": "a", "value": 1.23456, "ratio": 1.0}, {"what": "b", "value": 2.5, "ratio": 2.025}]
    md = write_bench("pkg", rows, title="pkg benchmark", extra={"threads": 1})
    assert md == tmp_path / "bench" / "pkg.md"
    assert (
        md.read_text()
        == "# pkg benchmark\n\n| what | value | ratio |\n| --- | --- | --- |\n| a | 1.23 | 1 |\n| b | 2.5 | 2.02 |\n"
    )
    assert json.loads((tmp_path / "bench" / "pkg.json").read_text()) == {"rows": rows, "threads": 1}
    assert "# pkg benchmark" in capsys.readouterr().out
