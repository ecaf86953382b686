"""Loaders for the survey's benchmarks in their published raw formats, all producing one :class:`RawDataset`.

| data set | files (as published) | side information |
| --- | --- | --- |
| Diginetica (CIKM Cup 2016) | ``train-item-views.csv`` (``session_id;user_id;item_id;timeframe;eventdate``), ``products.csv`` (``itemId;pricelog2;product.name.tokens``), ``product-categories.csv`` (``itemId;categoryId``) | category, price (2^pricelog2), name tokens |
| YooChoose (RecSys Challenge 2015) | ``yoochoose-clicks.dat`` (``session,timestamp,item,category``, no header), ``yoochoose-buys.dat`` (``session,timestamp,item,price,quantity``) | category, price; click/buy behaviours |
| YooChoose, session-rec format | tab-separated ``SessionId ItemId Time`` | – |
| Tmall (IJCAI-15) | ``user_log_format1.csv`` (``user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type``) | category, brand; click/cart/buy/fav |
| RetailRocket | ``events.csv`` (``timestamp,visitorid,event,itemid,transactionid``), ``item_properties_part*.csv`` (``timestamp,itemid,property,value``) | categoryid; view/addtocart/transaction |
| Amazon reviews | reviews JSONL (``reviewerID, asin, unixReviewTime``), metadata JSONL (``asin, categories/category, brand, price, title``) | category, brand, price, title |
| MovieLens-100k (RecBole atomic) | ``ml-100k.inter`` (``user_id:token item_id:token rating:float timestamp:float``), ``ml-100k.item`` (``item_id:token movie_title:token_seq release_year:token class:token_seq``) | genres (first genre = category), title |

Every malformed line stops the load with the file, the line number and the column. The GCE-GNN preprocessed pickles
(already in the SR-GNN protocol) load through :func:`load_gce_gnn` with a restricted unpickler.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sbr_side_info.schema import Cases, DataFormatError, Prepared, RawDataset, Session

# ---------------------------------------------------------------------------------------- delimited files


def _rows(
    path: Path, delimiter: str, columns: tuple[str, ...], header: bool = True
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for a delimited file; checks the header (when there is one) and the column count."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        names = list(columns)
        if header:
            try:
                first = next(reader)
            except StopIteration:
                raise DataFormatError(
                    f"{path}: line 1: empty file, expected header {delimiter.join(columns)}"
                ) from None
            if len(first) == 1 and len(columns) > 1 and delimiter not in first[0]:
                raise DataFormatError(
                    f"{path}: line 1: expected {len(columns)} columns separated by {delimiter!r} "
                    f"({delimiter.join(columns)}), got {first[0][:80]!r}: wrong delimiter?"
                )
            missing = [c for c in columns if c not in first]
            if missing:
                raise DataFormatError(f"{path}: line 1: missing column(s) {missing}; header is {first}")
            names = first
        for number, row in enumerate(reader, start=2 if header else 1):
            if not row:
                continue
            if len(row) != len(names):
                raise DataFormatError(
                    f"{path}: line {number}: expected {len(names)} fields separated by {delimiter!r}, got {len(row)}"
                )
            yield number, dict(zip(names, row, strict=True))


def _parse(
    path: Path, number: int, column: str, value: str, parse: Callable[[str], Any], expected: str
) -> Any:
    try:
        return parse(value)
    except (ValueError, TypeError):
        raise DataFormatError(
            f"{path}: line {number}: column {column!r}: expected {expected}, got {value!r}"
        ) from None


def _iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp()


def _day_seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def _group(events: list[tuple[str, float, int, str, str]], name: str) -> list[Session]:
    """Sessions from ``(session, time, order, item, behaviour)`` events, each sorted by (time, file order)."""
    by: dict[str, list[tuple[float, int, str, str]]] = {}
    for sid, t, order, item, behaviour in events:
        by.setdefault(sid, []).append((t, order, item, behaviour))
    sessions = []
    for sid, evs in by.items():
        evs.sort(key=lambda e: (e[0], e[1]))
        sessions.append(Session(sid, [e[2] for e in evs], [e[0] for e in evs], [e[3] for e in evs]))
    return sessions


# ---------------------------------------------------------------------------------------- Diginetica


def load_diginetica(
    views: str | Path, products: str | Path | None = None, categories: str | Path | None = None
) -> RawDataset:
    """CIKM Cup 2016 ``train-item-views.csv`` (+ optional ``products.csv``, ``product-categories.csv``).

    Time: ``eventdate`` (a day) + ``timeframe`` (ms since the session's first event), as SR-GNN's preprocessing
    orders events (by timeframe within a session; the session's date is its last event's date)."""
    views = Path(views)
    events = []
    last_day: dict[str, float] = {}
    for number, row in _rows(views, ";", ("session_id", "item_id", "timeframe", "eventdate")):
        day = _parse(views, number, "eventdate", row["eventdate"], _day_seconds, "a date YYYY-MM-DD")
        frame = _parse(views, number, "timeframe", row["timeframe"], int, "an integer (ms)")
        events.append((row["session_id"], day + frame / 1000.0, number, row["item_id"], "view"))
        last_day[row["session_id"]] = day
    item_side: dict[str, dict[str, Any]] = {}
    if products is not None:
        products = Path(products)
        for number, row in _rows(products, ";", ("itemId", "pricelog2", "product.name.tokens")):
            log2 = _parse(products, number, "pricelog2", row["pricelog2"], float, "a number (log2 price)")
            side = item_side.setdefault(row["itemId"], {})
            side["price"] = 2.0**log2
            side["text"] = row["product.name.tokens"]
    if categories is not None:
        categories = Path(categories)
        for number, row in _rows(categories, ";", ("itemId", "categoryId")):
            _parse(categories, number, "categoryId", row["categoryId"], int, "an integer category id")
            item_side.setdefault(row["itemId"], {})["category"] = row["categoryId"]
    sessions = _group(events, "diginetica")
    for s in sessions:
        s.date = last_day[s.session_id]
    return RawDataset("diginetica", sessions, item_side)


# ---------------------------------------------------------------------------------------- YooChoose


def load_yoochoose(clicks: str | Path, buys: str | Path | None = None) -> RawDataset:
    """RecSys Challenge 2015 ``yoochoose-clicks.dat`` (no header) and optional ``yoochoose-buys.dat``.

    ``category`` is kept when it is a real category (the data also uses ``0`` = unknown, ``S`` = special offer and
    brand ids of 8-10 digits, which we keep as the item's brand)."""
    clicks = Path(clicks)
    events = []
    item_side: dict[str, dict[str, Any]] = {}
    for number, row in _rows(clicks, ",", ("session", "timestamp", "item", "category"), header=False):
        t = _parse(clicks, number, "timestamp", row["timestamp"], _iso_seconds, "an ISO timestamp")
        events.append((row["session"], t, number, row["item"], "click"))
        cat = row["category"]
        side = item_side.setdefault(row["item"], {})
        if len(cat) >= 8:
            side["brand"] = cat
        elif cat not in ("0", "S"):
            side["category"] = cat
    if buys is not None:
        buys = Path(buys)
        for number, row in _rows(
            buys, ",", ("session", "timestamp", "item", "price", "quantity"), header=False
        ):
            t = _parse(buys, number, "timestamp", row["timestamp"], _iso_seconds, "an ISO timestamp")
            price = _parse(buys, number, "price", row["price"], float, "a number")
            events.append((row["session"], t, 10**9 + number, row["item"], "buy"))
            if price > 0:
                item_side.setdefault(row["item"], {})["price"] = price
    return RawDataset("yoochoose", _group(events, "yoochoose"), item_side)


def load_session_rec(path: str | Path, name: str = "rsc15") -> RawDataset:
    """session-rec's prepared format: tab-separated ``SessionId ItemId Time`` (Unix seconds) with a header."""
    path = Path(path)
    events = []
    for number, row in _rows(path, "\t", ("SessionId", "ItemId", "Time")):
        t = _parse(path, number, "Time", row["Time"], float, "Unix seconds")
        events.append((row["SessionId"], t, number, row["ItemId"], "click"))
    return RawDataset(name, _group(events, name))


# ---------------------------------------------------------------------------------------- Tmall, RetailRocket


_TMALL_ACTIONS = {"0": "click", "1": "cart", "2": "buy", "3": "fav"}


def load_tmall(user_log: str | Path) -> RawDataset:
    """IJCAI-15 ``user_log_format1.csv``: a session is one user's actions on one day (``time_stamp`` = ``mmdd``)."""
    user_log = Path(user_log)
    events = []
    item_side: dict[str, dict[str, Any]] = {}
    cols = ("user_id", "item_id", "cat_id", "seller_id", "brand_id", "time_stamp", "action_type")
    for number, row in _rows(user_log, ",", cols):
        mmdd = _parse(user_log, number, "time_stamp", row["time_stamp"], int, "a day as mmdd")
        action = row["action_type"]
        if action not in _TMALL_ACTIONS:
            raise DataFormatError(
                f"{user_log}: line {number}: column 'action_type': expected 0-3, got {action!r}"
            )
        day = (mmdd // 100) * 31 + mmdd % 100
        events.append(
            (f"{row['user_id']}_{mmdd}", day * 86400.0, number, row["item_id"], _TMALL_ACTIONS[action])
        )
        side = item_side.setdefault(row["item_id"], {})
        side["category"] = row["cat_id"]
        if row["brand_id"]:
            side["brand"] = row["brand_id"]
    return RawDataset("tmall", _group(events, "tmall"), item_side)


_RR_EVENTS = {"view": "view", "addtocart": "cart", "transaction": "buy"}


def load_retailrocket(
    events_csv: str | Path, item_properties: list[str | Path] | None = None, gap_s: float = 1800.0
) -> RawDataset:
    """RetailRocket ``events.csv`` (ms timestamps); a visitor's events split into sessions by a ``gap_s``
    inactivity gap (30 min, as in the survey's protocol). ``item_properties_part*.csv`` give ``categoryid``."""
    events_csv = Path(events_csv)
    per_visitor: dict[str, list[tuple[float, int, str, str]]] = {}
    for number, row in _rows(events_csv, ",", ("timestamp", "visitorid", "event", "itemid")):
        t = _parse(events_csv, number, "timestamp", row["timestamp"], float, "milliseconds") / 1000.0
        if row["event"] not in _RR_EVENTS:
            raise DataFormatError(
                f"{events_csv}: line {number}: column 'event': expected one of {sorted(_RR_EVENTS)}, got {row['event']!r}"
            )
        per_visitor.setdefault(row["visitorid"], []).append(
            (t, number, row["itemid"], _RR_EVENTS[row["event"]])
        )
    flat = []
    for visitor, evs in per_visitor.items():
        evs.sort()
        part, last = 0, None
        for t, number, item, behaviour in evs:
            if last is not None and t - last > gap_s:
                part += 1
            flat.append((f"{visitor}_{part}", t, number, item, behaviour))
            last = t
    item_side: dict[str, dict[str, Any]] = {}
    for prop_path in item_properties or []:
        prop_path = Path(prop_path)
        for _, row in _rows(prop_path, ",", ("timestamp", "itemid", "property", "value")):
            if row["property"] == "categoryid":
                item_side.setdefault(row["itemid"], {})["category"] = row["value"]
    return RawDataset("retailrocket", _group(flat, "retailrocket"), item_side)


# ---------------------------------------------------------------------------------------- Amazon, MovieLens


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFormatError(
                        f"{path}: line {number}: column {err.colno}: not JSON ({err.msg})"
                    ) from None


def load_amazon(reviews: str | Path, meta: str | Path | None = None, gap_s: float = 86400.0) -> RawDataset:
    """Amazon reviews (``reviewerID, asin, unixReviewTime``) as sessions of one reviewer split by a one-day gap;
    metadata (``asin`` + ``categories`` (2014) or ``category`` (2018), ``brand``, ``price``, ``title``)."""
    reviews = Path(reviews)
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for number, row in _jsonl(reviews):
        for key in ("reviewerID", "asin", "unixReviewTime"):
            if key not in row:
                raise DataFormatError(f"{reviews}: line {number}: field {key!r} missing")
        t = _parse(reviews, number, "unixReviewTime", row["unixReviewTime"], float, "Unix seconds")
        per_user.setdefault(row["reviewerID"], []).append((t, number, row["asin"]))
    flat = []
    for user, evs in per_user.items():
        evs.sort()
        part, last = 0, None
        for t, number, item in evs:
            if last is not None and t - last > gap_s:
                part += 1
            flat.append((f"{user}_{part}", t, number, item, "buy"))
            last = t
    item_side: dict[str, dict[str, Any]] = {}
    if meta is not None:
        for number, row in _jsonl(Path(meta)):
            if "asin" not in row:
                raise DataFormatError(f"{meta}: line {number}: field 'asin' missing")
            side = item_side.setdefault(row["asin"], {})
            cats = row.get("category") or row.get("categories")
            if cats:
                leaf = cats[0] if isinstance(cats[0], list) else cats
                side["category"] = leaf[-1] if leaf else None
            if row.get("brand"):
                side["brand"] = row["brand"]
            price = str(row.get("price", "")).lstrip("$").replace(",", "")
            with contextlib.suppress(ValueError):
                side["price"] = float(price)
            if row.get("title"):
                side["text"] = row["title"]
    return RawDataset("amazon", _group(flat, "amazon"), item_side)


def load_movielens_atomic(folder: str | Path, gap_s: float = 3600.0) -> RawDataset:
    """MovieLens-100k from RecBole's atomic files: a user's ratings ordered by time, split into sessions by a
    ``gap_s`` inactivity gap; the first genre is the item category, the title its text."""
    folder = Path(folder)
    inter = folder / "ml-100k.inter"
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for number, row in _rows(inter, "\t", ("user_id:token", "item_id:token", "timestamp:float")):
        t = _parse(inter, number, "timestamp:float", row["timestamp:float"], float, "Unix seconds")
        per_user.setdefault(row["user_id:token"], []).append((t, number, row["item_id:token"]))
    flat = []
    session_side: dict[str, dict[str, Any]] = {}
    for user, evs in per_user.items():
        evs.sort()
        part, last = 0, None
        for t, number, item in evs:
            if last is not None and t - last > gap_s:
                part += 1
            sid = f"{user}_{part}"
            session_side.setdefault(sid, {"user": user})
            flat.append((sid, t, number, item, "view"))
            last = t
    item_side: dict[str, dict[str, Any]] = {}
    items = folder / "ml-100k.item"
    for _, row in _rows(items, "\t", ("item_id:token", "movie_title:token_seq", "class:token_seq")):
        genres = row["class:token_seq"].split()
        item_side[row["item_id:token"]] = {
            "category": genres[0] if genres else None,
            "text": row["movie_title:token_seq"],
        }
    return RawDataset("movielens-100k", _group(flat, "movielens-100k"), item_side, session_side)


# ---------------------------------------------------------------------------------------- GCE-GNN pickles


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only lists, tuples, ints (and the containers' own opcodes): any global (a class, a function) is
    refused, so a crafted file cannot run code. The GCE-GNN ``*.txt`` files are pickles of lists of ints."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed (only lists, tuples and ints)")


def _check_ints(obj: Any, path: Path, where: str) -> None:
    stack = [(obj, where)]
    while stack:
        x, at = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(x))
        elif not isinstance(x, int) or isinstance(x, bool):
            raise DataFormatError(
                f"{path}: {at}: expected only lists, tuples and ints, found {type(x).__name__}"
            )


def restricted_load(path: str | Path) -> Any:
    """Unpickle ``path`` allowing lists, tuples and ints only; anything else is a :class:`DataFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataFormatError(f"{path}: refused by the restricted unpickler: {err}") from None
    _check_ints(obj, path, "root")
    return obj


def prefix_augment(sessions: list[list[int]]) -> Cases:
    """SR-GNN's augmentation: a session ``[v1..vn]`` gives ``([v1..v(n-1)], vn), ..., ([v1], v2)``."""
    seqs, labels = [], []
    for s in sessions:
        for cut in range(len(s) - 1, 0, -1):
            seqs.append(list(s[:cut]))
            labels.append(s[cut])
    return Cases(seqs, labels)


def load_gce_gnn(folder: str | Path, valid_portion: float = 0.1, seed: int = 0) -> Prepared:
    """A GCE-GNN preprocessed set (``all_train_seq.txt``, ``test.txt``): training cases rebuilt by prefix
    augmentation (= SR-GNN's ``train.txt``), test cases as shipped, a random ``valid_portion`` of the training
    cases held out for early stopping (SR-GNN's ``split_validation``)."""
    import random

    folder = Path(folder)
    train_sessions = restricted_load(folder / "all_train_seq.txt")
    test = restricted_load(folder / "test.txt")
    if not isinstance(train_sessions, list):
        raise DataFormatError(f"{folder / 'all_train_seq.txt'}: expected a list of sessions")
    if not (isinstance(test, (tuple, list)) and len(test) == 2 and len(test[0]) == len(test[1])):
        raise DataFormatError(f"{folder / 'test.txt'}: expected a pair (sequences, labels) of equal length")
    cases = prefix_augment(train_sessions)
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_valid = round(len(order) * valid_portion)
    valid, train = cases.subset(sorted(order[:n_valid])), cases.subset(sorted(order[n_valid:]))
    n_items = 1 + max(max(max(s) for s in train_sessions), max(test[1]), max(max(s) for s in test[0] if s))
    return Prepared(
        name=folder.name,
        train=train,
        valid=valid,
        test=Cases([list(s) for s in test[0]], list(test[1])),
        n_items=n_items,
        stats={"train_sessions": len(train_sessions), "train_cases": len(cases), "test_cases": len(test[1])},
    )
