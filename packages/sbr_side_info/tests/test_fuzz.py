"""Fuzzed loaders (paperlab.fuzz): every public raw loader gets structurally mutated versions of a small valid file
(the hand-written fixtures in the published formats) and must load it or refuse it with a DataFormatError naming
the file; nothing else may escape. Examples per loader: PAPERLAB_FUZZ_EXAMPLES (40 in make test)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from paperlab.fuzz import fuzz_loader
from sbr_side_info.loaders import (
    load_amazon,
    load_diginetica,
    load_gce_gnn,
    load_movielens_atomic,
    load_retailrocket,
    load_session_rec,
    load_tmall,
    load_yoochoose,
    restricted_load,
)
from sbr_side_info.preprocess import load_prepared, save_prepared
from sbr_side_info.schema import Cases, DataFormatError, Prepared

FIXTURES = Path(__file__).parent / "fixtures"
SESSION_REC = (
    b"SessionId\tItemId\tTime\n1\t10\t1400000000\n1\t11\t1400000060\n2\t10\t1400086400\n2\t12\t1400086460\n"
)


def _files(*names: str) -> dict[str, bytes]:
    return {name: (FIXTURES / name).read_bytes() for name in names}


def _check(counts) -> None:
    assert counts["parsed"] + counts["refused"] >= 1 and counts["refused"] >= 1, counts
    print(dict(counts))


def test_fuzz_diginetica_csv() -> None:
    files = _files("train-item-views.csv", "products.csv", "product-categories.csv")
    counts = fuzz_loader(
        lambda d: load_diginetica(d / "train-item-views.csv", d / "products.csv", d / "product-categories.csv"),
        files, kind="csv", name="sbr_side_info.load_diginetica", error=DataFormatError,
    )  # fmt: skip
    _check(counts)


def test_fuzz_yoochoose_csv() -> None:
    files = _files("yoochoose-clicks.dat", "yoochoose-buys.dat")
    counts = fuzz_loader(
        lambda d: load_yoochoose(d / "yoochoose-clicks.dat", d / "yoochoose-buys.dat"),
        files, kind="csv", name="sbr_side_info.load_yoochoose", error=DataFormatError,
    )  # fmt: skip
    _check(counts)


def test_fuzz_session_rec_tsv() -> None:
    counts = fuzz_loader(
        load_session_rec, SESSION_REC, kind="tsv", name="sbr_side_info.load_session_rec",
        error=DataFormatError, suffix=".txt",
    )  # fmt: skip
    _check(counts)


def test_fuzz_tmall_csv() -> None:
    counts = fuzz_loader(
        load_tmall, (FIXTURES / "user_log_format1.csv").read_bytes(), kind="csv",
        name="sbr_side_info.load_tmall", error=DataFormatError, suffix=".csv",
    )  # fmt: skip
    _check(counts)


def test_fuzz_retailrocket_csv() -> None:
    counts = fuzz_loader(
        lambda d: load_retailrocket(d / "events.csv", [d / "item_properties_part1.csv"]),
        _files("events.csv", "item_properties_part1.csv"), kind="csv",
        name="sbr_side_info.load_retailrocket", error=DataFormatError,
    )  # fmt: skip
    _check(counts)


def test_fuzz_amazon_jsonl() -> None:
    counts = fuzz_loader(
        lambda d: load_amazon(d / "reviews.jsonl", d / "meta.jsonl"),
        _files("reviews.jsonl", "meta.jsonl"), kind="jsonl", name="sbr_side_info.load_amazon",
        error=DataFormatError,
    )  # fmt: skip
    _check(counts)


def test_fuzz_movielens_atomic_tsv() -> None:
    files = {f"ml-100k.{x}": (FIXTURES / "ml-100k" / f"ml-100k.{x}").read_bytes() for x in ("inter", "item")}
    counts = fuzz_loader(
        load_movielens_atomic, files, kind="tsv", name="sbr_side_info.load_movielens_atomic",
        error=DataFormatError,
    )  # fmt: skip
    _check(counts)


def test_fuzz_gce_gnn_pickles() -> None:
    files = {
        "all_train_seq.txt": pickle.dumps([[1, 2, 3], [2, 4], [3, 1]]),
        "test.txt": pickle.dumps(([[1], [2, 3]], [2, 4])),
    }
    counts = fuzz_loader(
        load_gce_gnn, files, kind="pickle", name="sbr_side_info.load_gce_gnn", error=DataFormatError
    )
    _check(counts)


def test_fuzz_restricted_unpickler() -> None:
    counts = fuzz_loader(
        restricted_load, pickle.dumps(([[1, 2], [3]], (4, 5))), kind="pickle",
        name="sbr_side_info.restricted_load", error=DataFormatError, suffix=".txt",
    )  # fmt: skip
    _check(counts)


@pytest.fixture(scope="module")
def prepared_bytes(tmp_path_factory) -> bytes:
    data = Prepared(
        "toy", Cases([[1, 2], [1]], [3, 2], [[1, 1], [1]]), Cases([[2]], [3]), Cases([[3]], [1]), n_items=4,
        item_category=[0, 1, 1, 2], n_categories=3, stats={"items": 3},
    )  # fmt: skip
    path = save_prepared(data, tmp_path_factory.mktemp("prepared") / "p.json")
    assert load_prepared(path) == data
    return path.read_bytes()


def test_fuzz_prepared_split_json(prepared_bytes: bytes) -> None:
    """The cached split is our own file, but a damaged one must be refused (and then derived again), not crash."""
    counts = fuzz_loader(
        load_prepared, prepared_bytes, kind="json", name="sbr_side_info.load_prepared", error=DataFormatError,
        suffix=".json",
    )  # fmt: skip
    _check(counts)
