"""Issue 28 for sbr_side_info: derived files keyed by what they were derived from (a prepared split, a training
checkpoint), loaders that refuse what they cannot use (an empty GCE-GNN session, a malformed ``test.txt``), no
hidden network call (MovieLens-100k is an explicit make step), and the command line's one-line error contract."""

from __future__ import annotations

import os
import pickle
import random
import sys
from pathlib import Path

import pytest

from paperlab.config import UserError, compose
from sbr_side_info import loaders, movielens
from sbr_side_info.experiment import run
from sbr_side_info.loaders import load_gce_gnn
from sbr_side_info.preprocess import ProtocolConfig, load_prepared, prepare
from sbr_side_info.schema import DataFormatError


def write_session_rec(path: Path, n_sessions: int = 120, days: int = 20, seed: int = 0) -> Path:
    """A session-rec file (``SessionId ItemId Time``): ``n_sessions`` over ``days`` days, 20 items."""
    rng = random.Random(seed)
    rows = ["SessionId\tItemId\tTime"]
    for s in range(n_sessions):
        t0 = 1_400_000_000 + (s * days * 86400) // n_sessions
        start = rng.randrange(20)
        for k in range(rng.randint(2, 5)):
            rows.append(f"{s}\t{(start + k) % 20}\t{t0 + 60 * k}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _cfg(file: Path, *extra: str):
    return compose(
        "sbr_side_info",
        [
            "experiment=dataset",
            "models=[STAMP]",
            "train.epochs=1",
            "train.dim=8",
            "train.progress=false",
            f"datasets=[{{name: toy, loader: session_rec, paths: [{file}]}}]",
            *extra,
        ],
    )


def _splits(out: Path) -> dict[str, int]:
    return {p.name: len(load_prepared(p).test) for p in sorted(out.glob("prepared-toy*.json"))}


def test_prepared_split_is_keyed_by_protocol_and_input_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    data = write_session_rec(tmp_path / "toy.tsv")
    out = Path(run(_cfg(data))["out"])
    first = _splits(out)
    assert len(first) == 1
    # another protocol value: a new split, with the new protocol's numbers (not the cached 7-day split)
    run(_cfg(data, "protocol.test_days=3.0"))
    second = _splits(out)
    assert len(second) == 2
    expected = len(prepare(loaders.load_session_rec(data, "toy"), ProtocolConfig(test_days=3.0)).test)
    new = [n for n in second if n not in first]
    assert second[new[0]] == expected and expected != next(iter(first.values()))
    # the same settings: served from the cache, the raw file is not read again
    monkeypatch.setattr(
        loaders, "load_session_rec", lambda *a: pytest.fail("the cached split was not reused")
    )
    run(_cfg(data))
    assert _splits(out) == second
    monkeypatch.undo()
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    # another (invalid) input file: refused, never the old split
    bad = tmp_path / "bad.tsv"
    bad.write_text("SessionId,ItemId,Time\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.tsv: line 1: .*wrong delimiter"):
        run(_cfg(bad))
    # the same path with new content (size / mtime changed): a new split
    write_session_rec(data, n_sessions=160, seed=1)
    os.utime(data, ns=(1, 1))
    run(_cfg(data))
    assert len(_splits(out)) == 3


def test_checkpoints_are_keyed_by_training_settings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    data = write_session_rec(tmp_path / "toy.tsv")
    one = run(_cfg(data))
    ckpts = sorted((Path(one["out"]) / "checkpoints").glob("toy-STAMP*.pt"))
    assert len(ckpts) == 1
    other = run(
        _cfg(data, "train.lr=0.01")
    )  # a finished checkpoint of lr 1e-3 must not be served for lr 1e-2
    assert len(sorted((Path(one["out"]) / "checkpoints").glob("toy-STAMP*.pt"))) == 2
    assert other["rows"][0]["history"][0]["loss"] != one["rows"][0]["history"][0]["loss"]


def _gce(folder: Path, train, test) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps(train))
    (folder / "test.txt").write_bytes(pickle.dumps(test))
    return folder


@pytest.mark.parametrize(
    ("train", "test", "match"),
    [
        ([[]], ([[1]], [2]), r"all_train_seq\.txt: session 1: expected a non-empty list of item ids"),
        (
            [[1, 2]],
            (1, 2),
            r"test\.txt: expected a pair \(sequences, labels\) of two lists, got \(int, int\)",
        ),
        ([[1, 2]], ([[1], []], [2, 1]), r"test\.txt: sequence 2: expected a non-empty list of item ids"),
        ([[1, 0]], ([[1]], [2]), r"all_train_seq\.txt: session 1: item 2: expected item ids >= 1, got 0"),
        ([[1, 2]], ([[1]], [-3]), r"test\.txt: label 1: expected item ids >= 1, got -3"),
        ([[1]], ([[1]], [2]), r"all_train_seq\.txt: expected at least one session of 2 or more items"),
    ],
)
def test_gce_gnn_refuses_what_it_cannot_use(tmp_path: Path, train, test, match) -> None:
    with pytest.raises(DataFormatError, match=match):
        load_gce_gnn(_gce(tmp_path / "g", train, test))


def test_missing_raw_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere\.tsv: no such file"):
        loaders.load_session_rec(tmp_path / "nowhere.tsv")
    with pytest.raises(UserError, match=r"test\.txt: no such file"):
        load_gce_gnn(tmp_path)


def test_movielens_absent_is_refused_without_any_network(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    called = []

    def no_network(*args, **kwargs):
        called.append(args)
        raise AssertionError("network attempted")

    monkeypatch.setattr(movielens, "download_movielens", no_network, raising=False)
    import httpx

    monkeypatch.setattr(httpx, "get", no_network)
    cfg = compose("sbr_side_info", ["experiment=sample", "train.progress=false"])
    with pytest.raises(UserError) as err:
        run(cfg)
    message = str(err.value)
    assert called == []
    assert "make sbr_side_info-fetch-movielens" in message and "\n" not in message
    assert str(tmp_path / "cache" / "sbr" / "ml-100k") in message and "download=true" in message


def test_movielens_download_only_when_opted_in(tmp_path: Path, monkeypatch, fixtures: Path) -> None:
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PAPERLAB_CACHE", str(tmp_path / "cache"))
    called = []

    def fake_download(dest=None, timeout_s=120.0):
        called.append(dest)
        return fixtures / "ml-100k"

    monkeypatch.setattr(movielens, "download_movielens", fake_download)
    with pytest.raises(UserError, match="sbr_side_info-fetch-movielens"):
        movielens.require_movielens(download=False)
    assert called == []
    assert movielens.require_movielens(download=True) == fixtures / "ml-100k" and len(called) == 1
    # once in the cache (what `make sbr_side_info-fetch-movielens` does), no download is needed
    movielens.movielens_dir().mkdir(parents=True, exist_ok=True)
    for f in movielens.FILES:
        (movielens.movielens_dir() / f).write_bytes((fixtures / "ml-100k" / f).read_bytes())
    assert movielens.require_movielens(download=False) == movielens.movielens_dir() and len(called) == 1


def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from sbr_side_info.cli import main

    bad = tmp_path / "bad.tsv"
    bad.write_text("SessionId,ItemId,Time\n1,2,3\n", encoding="utf-8")
    GlobalHydra.instance().clear()
    monkeypatch.setenv("PAPERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(
        sys,
        "argv",
        ["sbr_side_info", "experiment=dataset", "train.progress=false",
         f"datasets=[{{name: toy, loader: session_rec, paths: [{bad}]}}]"],
    )  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert done.value.code == 2
    assert len(lines) == 1 and lines[0].startswith("sbr_side_info: error: ") and "bad.tsv" in lines[0]
    assert "DataFormatError" not in lines[0]
