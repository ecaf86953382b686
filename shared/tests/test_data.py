"""Data root resolution and the real_data fixture's skip / fail behaviour."""

import pytest

import paperlab
from paperlab.data import DataUnavailableError, data_path, data_root, repo_root

pytest_plugins = ["pytester"]


def test_data_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    (tmp_path / "x").mkdir()
    assert data_path("x") == tmp_path / "x"
    with pytest.raises(DataUnavailableError, match="PAPERLAB_DATA"):
        data_path("missing.json")


def test_default_data_root_is_beside_the_repo(monkeypatch):
    monkeypatch.delenv("PAPERLAB_DATA", raising=False)
    root = repo_root()
    assert root is not None and (root / "packages").is_dir()
    assert data_root() == (root / ".." / "shared" / "data").resolve()


_TEST = """
def test_needs_data(real_data):
    real_data("no", "such", "file.json")
"""


def test_real_data_fixture_skips_when_absent(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path))
    monkeypatch.delenv("PAPERLAB_REQUIRE_DATA", raising=False)
    pytester.makepyfile(_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*set PAPERLAB_DATA*"])


def test_real_data_fixture_fails_when_required(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path))
    monkeypatch.setenv("PAPERLAB_REQUIRE_DATA", "1")
    pytester.makepyfile(_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PAPERLAB_REQUIRE_DATA=1*"])


def test_real_data_fixture_returns_existing_path(real_data):
    readme = real_data("README.md")
    assert readme.is_file() and "Real data beside the repo" in readme.read_text()


def test_seed_everything_rejects_bad_seed():
    with pytest.raises(ValueError, match="non-negative int"):
        paperlab.seed_everything(-1)
