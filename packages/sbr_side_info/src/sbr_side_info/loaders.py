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

Every malformed line stops the load with a :class:`DataFormatError` naming the file, the line number and the column;
a missing file is a :class:`paperlab.io.MissingFileError`. The GCE-GNN preprocessed pickles (already in the SR-GNN
protocol) load through :func:`load_gce_gnn` (:mod:`sbr_side_info.gce_gnn`) with a restricted unpickler.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paperlab.io import DataError, MissingFileError, existing_file, iter_jsonl
from sbr_side_info.gce_gnn import RestrictedUnpickler, load_gce_gnn, prefix_augment, restricted_load
from sbr_side_info.schema import DataFormatError, RawDataset, Session

__all__ = [
    "RestrictedUnpickler",
    "load_amazon",
    "load_diginetica",
    "load_gce_gnn",
    "load_movielens_atomic",
    "load_retailrocket",
    "load_session_rec",
    "load_tmall",
    "load_yoochoose",
    "prefix_augment",
    "restricted_load",
]

# ---------------------------------------------------------------------------------------- delimited files


def _rows(
    path: Path, delimiter: str, columns: tuple[str, ...], header: bool = True
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for a delimited UTF-8 file (a leading byte-order mark is dropped); checks the header
    (when there is one) and the column count. Another encoding, a NUL byte or an over-long field is refused with
    the line it is on."""
    path = existing_file(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            yield from _checked(path, reader, delimiter, columns, header)
        except UnicodeDecodeError as err:
            raise DataFormatError(
                f"{path}: line {reader.line_num + 1}: not UTF-8 text ({err.reason}); save the file as UTF-8"
            ) from None
        except csv.Error as err:
            raise DataFormatError(
                f"{path}: line {max(reader.line_num, 1)}: not a {delimiter!r}-separated row ({err})"
            ) from None


def _checked(
    path: Path, reader: Any, delimiter: str, columns: tuple[str, ...], header: bool
) -> Iterator[tuple[int, dict[str, str]]]:
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
            raise DataFormatError(f"{path}: line 1: missing column(s) {missing}; header is {first[:20]}")
        duplicated = sorted({c for c in first if first.count(c) > 1})
        if duplicated:
            raise DataFormatError(f"{path}: line 1: column(s) {duplicated} appear more than once")
        names = first
    for row in reader:
        number = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
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
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(
            f"{path}: line {number}: column {column!r}: expected {expected}, got {value!r}"
        ) from None


def _finite(text: Any) -> float:
    """A finite number (``nan``, ``inf`` and ``1e309`` are refused: a time or a price must be a real value)."""
    if isinstance(text, bool):
        raise TypeError("a boolean")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not finite: {value}")
    return value


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
            price = _parse(
                products, number, "pricelog2", row["pricelog2"], lambda v: _finite(2.0 ** _finite(v)),
                "a number (log2 price)",
            )  # fmt: skip
            side = item_side.setdefault(row["itemId"], {})
            side["price"] = price
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


def load_yoochoose(
    clicks: str | Path, buys: str | Path | None = None, buy_events: bool = False
) -> RawDataset:
    """RecSys Challenge 2015 ``yoochoose-clicks.dat`` (no header) and optional ``yoochoose-buys.dat``.

    Sessions are built from the clicks only, as SR-GNN's ``preprocess.py`` (which reads ``yoochoose-clicks.dat``
    alone) and every published YooChoose 1/64 / 1/4 number; ``buys`` then gives item prices (side information)
    only. ``buy_events=True`` also adds each buy as a ``"buy"`` event of its session (MKM-SR-style behaviours; not
    the SR-GNN protocol).

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
            price = _parse(buys, number, "price", row["price"], _finite, "a number")
            if buy_events:
                events.append((row["session"], t, 10**9 + number, row["item"], "buy"))
            if price > 0:
                item_side.setdefault(row["item"], {})["price"] = price
    return RawDataset("yoochoose", _group(events, "yoochoose"), item_side)


def load_session_rec(path: str | Path, name: str = "rsc15") -> RawDataset:
    """session-rec's prepared format: tab-separated ``SessionId ItemId Time`` (Unix seconds) with a header."""
    path = Path(path)
    events = []
    for number, row in _rows(path, "\t", ("SessionId", "ItemId", "Time")):
        t = _parse(path, number, "Time", row["Time"], _finite, "Unix seconds")
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
        t = _parse(events_csv, number, "timestamp", row["timestamp"], _finite, "milliseconds") / 1000.0
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
    """``(line number, object)`` of a JSONL file (paperlab's reader: lines split at ``\\n`` only, UTF-8)."""
    try:
        yield from iter_jsonl(path)
    except MissingFileError:
        raise
    except DataError as err:
        raise DataFormatError(str(err)) from None


def _text_field(path: Path, number: int, row: dict[str, Any], key: str) -> str:
    """``row[key]`` as an id: a string or an integer (read as its decimal string)."""
    if key not in row:
        raise DataFormatError(f"{path}: line {number}: field {key!r} missing")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFormatError(
            f"{path}: line {number}: field {key!r}: expected a string id, got {type(value).__name__}"
        )
    return str(value)


def _category(path: Path, number: int, cats: Any) -> str | None:
    """The leaf of Amazon's ``categories`` (2014: a list of category paths) or ``category`` (2018: one path)."""
    leaf = cats[0] if isinstance(cats, list) and cats and isinstance(cats[0], list) else cats
    if not isinstance(leaf, list) or not all(isinstance(c, str) for c in leaf):
        raise DataFormatError(
            f"{path}: line {number}: field 'categories'/'category': expected a list of category names "
            f"(or a list of such lists), got {json.dumps(cats)[:80]}"
        )
    return leaf[-1] if leaf else None


def load_amazon(reviews: str | Path, meta: str | Path | None = None, gap_s: float = 86400.0) -> RawDataset:
    """Amazon reviews (``reviewerID, asin, unixReviewTime``) as sessions of one reviewer split by a one-day gap;
    metadata (``asin`` + ``categories`` (2014) or ``category`` (2018), ``brand``, ``price``, ``title``)."""
    reviews = Path(reviews)
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for number, row in _jsonl(reviews):
        user, asin = (_text_field(reviews, number, row, key) for key in ("reviewerID", "asin"))
        if "unixReviewTime" not in row:
            raise DataFormatError(f"{reviews}: line {number}: field 'unixReviewTime' missing")
        t = _parse(reviews, number, "unixReviewTime", row["unixReviewTime"], _finite, "Unix seconds")
        per_user.setdefault(user, []).append((t, number, asin))
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
        meta = Path(meta)
        for number, row in _jsonl(meta):
            side = item_side.setdefault(_text_field(meta, number, row, "asin"), {})
            cats = row.get("category") or row.get("categories")
            if cats:
                side["category"] = _category(meta, number, cats)
            if row.get("brand") and isinstance(row["brand"], str):
                side["brand"] = row["brand"]
            price = str(row.get("price", "")).lstrip("$").replace(",", "")
            with contextlib.suppress(ValueError):
                side["price"] = _finite(price)  # "" or "$1.00 - $3.00": no price
            if row.get("title") and isinstance(row["title"], str):
                side["text"] = row["title"]
    return RawDataset("amazon", _group(flat, "amazon"), item_side)


def load_movielens_atomic(folder: str | Path, gap_s: float = 3600.0) -> RawDataset:
    """MovieLens-100k from RecBole's atomic files: a user's ratings ordered by time, split into sessions by a
    ``gap_s`` inactivity gap; the first genre is the item category, the title its text."""
    folder = Path(folder)
    inter = folder / "ml-100k.inter"
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for number, row in _rows(inter, "\t", ("user_id:token", "item_id:token", "timestamp:float")):
        t = _parse(inter, number, "timestamp:float", row["timestamp:float"], _finite, "Unix seconds")
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
