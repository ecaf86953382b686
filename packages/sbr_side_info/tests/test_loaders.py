"""Raw loaders on hand-written files in the published formats, the published counts, and bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from sbr_side_info.loaders import (
    load_amazon,
    load_diginetica,
    load_gce_gnn,
    load_movielens_atomic,
    load_retailrocket,
    load_session_rec,
    load_tmall,
    load_yoochoose,
    prefix_augment,
    restricted_load,
)
from sbr_side_info.preprocess import ProtocolConfig, prepare
from sbr_side_info.schema import DataFormatError


def test_diginetica_orders_by_timeframe_and_reads_side_info(fixtures: Path) -> None:
    raw = load_diginetica(
        fixtures / "train-item-views.csv", fixtures / "products.csv", fixtures / "product-categories.csv"
    )
    by_id = {s.session_id: s for s in raw.sessions}
    assert by_id["1"].items == ["11", "10", "12"]  # timeframes 1000, 5000, 9000
    assert by_id["1"].behaviours == ["view"] * 3
    assert raw.item_side["10"] == {"price": 8.0, "text": "4,5,6", "category": "100"}
    assert raw.item_side["13"] == {"category": "300"}
    assert by_id["2"].date - by_id["1"].date == 86400.0  # the session date is its day


def test_yoochoose_sessions_are_clicks_only_buys_give_prices(fixtures: Path) -> None:
    # SR-GNN's YooChoose split is built from yoochoose-clicks.dat alone: the buy of item 214536500 is no event
    raw = load_yoochoose(fixtures / "yoochoose-clicks.dat", fixtures / "yoochoose-buys.dat")
    s1 = next(s for s in raw.sessions if s.session_id == "1")
    assert s1.items == ["214536502", "214536500", "214536506"]
    assert s1.behaviours == ["click", "click", "click"]
    with_buys = load_yoochoose(
        fixtures / "yoochoose-clicks.dat", fixtures / "yoochoose-buys.dat", buy_events=True
    )
    s1 = next(s for s in with_buys.sessions if s.session_id == "1")
    assert s1.items == ["214536502", "214536500", "214536506", "214536500"]
    assert s1.behaviours == ["click", "click", "click", "buy"]
    assert raw.item_side["214536500"]["price"] == 1046.0
    assert "category" not in raw.item_side["214536506"]  # 'S' = special offer, not a category
    assert raw.item_side["214662742"]["category"] == "2"
    assert raw.item_side["214825110"]["brand"] == "2053156470"


def test_tmall_retailrocket_amazon_movielens(fixtures: Path) -> None:
    tmall = load_tmall(fixtures / "user_log_format1.csv")
    assert sorted(len(s.items) for s in tmall.sessions) == [1, 3]  # user 7 on day 1111 and on day 1112
    day = next(s for s in tmall.sessions if len(s.items) == 3)
    assert day.behaviours == ["click", "cart", "buy"]
    assert tmall.item_side["503"] == {"category": "31", "brand": "81"}

    rr = load_retailrocket(fixtures / "events.csv", [fixtures / "item_properties_part1.csv"])
    assert sorted(len(s.items) for s in rr.sessions) == [1, 1, 2]  # visitor 257597 split by the 30-min gap
    assert rr.item_side == {"355908": {"category": "1338"}, "248676": {"category": "1277"}}
    assert any(s.behaviours == ["view", "cart"] for s in rr.sessions)

    amazon = load_amazon(fixtures / "reviews.jsonl", fixtures / "meta.jsonl")
    assert sorted(len(s.items) for s in amazon.sessions) == [1, 1, 2]
    assert amazon.item_side["B1"] == {
        "category": "Face",
        "brand": "Acme",
        "price": 12.5,
        "text": "Face cream",
    }
    assert amazon.item_side["B2"]["price"] == 1200.0 and amazon.item_side["B2"]["category"] == "Hair"

    ml = load_movielens_atomic(fixtures / "ml-100k", gap_s=3600)
    assert sorted(len(s.items) for s in ml.sessions) == [1, 1, 2]
    assert ml.item_side["10"]["category"] == "Animation"
    assert ml.session_side["1_0"] == {"user": "1"}


def test_session_rec_format_real_sample(real_data) -> None:
    raw = load_session_rec(real_data("sbr", "session-rec-rsc15-100k", "yoochoose-clicks-100k_train_full.txt"))
    assert (len(raw.sessions), raw.n_clicks) == (17794, 70278)  # counts in the data README


def test_diginetica_sample_counts_match_the_official_preprocessing(real_data) -> None:
    """Hand-checked against SR-GNN's own datasets/preprocess.py run on the same file: 469 training and 47 test
    sessions before dropping unseen items (39 after), 309 items, 1,205 training and 99 test cases, average length
    3.5669. Our prepared sequences and labels were identical to its train.txt / test.txt."""
    raw = load_diginetica(real_data("sbr", "diginetica-sample", "sample_train-item-views.csv"))
    assert (len(raw.sessions), raw.n_clicks, raw.n_items) == (2986, 12391, 7139)
    data = prepare(raw, ProtocolConfig(valid_portion=0.0))
    assert data.stats["train_sessions"] == 469
    assert data.stats["test_sessions"] == 39
    assert data.n_items - 1 == 309
    assert (len(data.train), len(data.test)) == (1205, 99)
    assert data.stats["avg_length"] == pytest.approx(3.5669291338582676)
    assert data.train.seqs[:2] == [[1, 2], [1]] and data.train.labels[:2] == [3, 2]


@pytest.mark.parametrize(
    ("name", "train_cases", "test_cases", "items"),
    [
        ("diginetica", 719470, 60858, 43097),
        ("Tmall", 351268, 25898, 40727),
        ("Nowplaying", 825304, 89824, 60416),
    ],
)
def test_gce_gnn_published_counts(real_data, name, train_cases, test_cases, items) -> None:
    folder = real_data("sbr", "gce-gnn", name)
    sessions = restricted_load(folder / "all_train_seq.txt")
    assert sum(len(s) - 1 for s in sessions) == train_cases
    seqs, labels = restricted_load(folder / "test.txt")
    assert len(seqs) == len(labels) == test_cases
    assert max(max(s) for s in sessions) == items


def test_gce_gnn_loader_rebuilds_srgnn_train_cases(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps([[1, 2, 3], [2, 4]]))
    (folder / "test.txt").write_bytes(pickle.dumps(([[1], [2, 3]], [2, 4])))
    data = load_gce_gnn(folder, valid_portion=0.0)
    assert data.train.seqs == [[1, 2], [1], [2]] and data.train.labels == [3, 2, 4]
    assert data.n_items == 5 and len(data.test) == 2
    assert prefix_augment([[5, 6, 7]]).labels == [7, 6]


def test_restricted_unpickler_refuses_anything_but_lists_tuples_ints(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(pickle.dumps(([[1, 2], [3]], (4, 5))))
    assert restricted_load(good) == ([[1, 2], [3]], (4, 5))
    evil = tmp_path / "evil.txt"
    evil.write_bytes(pickle.dumps(Path("/etc/passwd")))  # needs a global: pathlib.PosixPath
    with pytest.raises(DataFormatError, match=r"evil.txt.*not allowed"):
        restricted_load(evil)
    mapping = tmp_path / "dict.txt"
    mapping.write_bytes(pickle.dumps([[1, 2], {"a": 1}]))
    with pytest.raises(DataFormatError, match=r"dict.txt: root\[1\]: .*dict"):
        restricted_load(mapping)
    floats = tmp_path / "floats.txt"
    floats.write_bytes(pickle.dumps([[1, 2.5]]))
    with pytest.raises(DataFormatError, match="float"):
        restricted_load(floats)


def test_wrong_delimiter_missing_column_bad_timestamp_name_file_line_column(tmp_path: Path) -> None:
    comma = tmp_path / "comma.csv"
    comma.write_text("session_id,user_id,item_id,timeframe,eventdate\n1,NA,10,5,2016-05-01\n")
    with pytest.raises(DataFormatError, match=r"comma.csv: line 1: .*wrong delimiter"):
        load_diginetica(comma)
    missing = tmp_path / "missing.csv"
    missing.write_text("session_id;user_id;item_id;eventdate\n1;NA;10;2016-05-01\n")
    with pytest.raises(DataFormatError, match=r"missing.csv: line 1: missing column\(s\) \['timeframe'\]"):
        load_diginetica(missing)
    bad_date = tmp_path / "bad_date.csv"
    bad_date.write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;10;5;2016-05-01\n1;NA;11;6;01/05/2016\n"
    )
    with pytest.raises(DataFormatError, match=r"bad_date.csv: line 3: column 'eventdate': expected a date"):
        load_diginetica(bad_date)
    short = tmp_path / "short.csv"
    short.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;10;5\n")
    with pytest.raises(DataFormatError, match=r"short.csv: line 2: expected 5 fields"):
        load_diginetica(short)
    clicks = tmp_path / "clicks.dat"
    clicks.write_text("1,yesterday,214536502,0\n")
    with pytest.raises(
        DataFormatError, match=r"clicks.dat: line 1: column 'timestamp': expected an ISO timestamp"
    ):
        load_yoochoose(clicks)
    events = tmp_path / "events.csv"
    events.write_text("timestamp,visitorid,event,itemid,transactionid\n1,2,wishlist,3,\n")
    with pytest.raises(DataFormatError, match=r"events.csv: line 2: column 'event'"):
        load_retailrocket(events)
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text('{"reviewerID": "u", "asin": "B"}\n')
    with pytest.raises(DataFormatError, match=r"reviews.jsonl: line 1: field 'unixReviewTime' missing"):
        load_amazon(reviews)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        load_diginetica(tmp_path / "nowhere.csv")
