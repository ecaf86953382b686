"""Property-based tests of the loaders that read a user's files (``hypothesis``, a dev dependency).

:func:`fuzz_loader` feeds a loader structurally mutated versions of one valid input (truncated, emptied, a field
dropped / renamed / retyped, another delimiter, another encoding, odd unicode, a huge line, flipped bytes) and
asserts the loader's contract: each version is either parsed or refused with the package's data error (a
:class:`paperlab.io.DataError`) whose message names the file; anything else escaping is a bug and fails the test
with the smallest input hypothesis finds.

The number of examples per loader is :data:`EXAMPLES_ENV` (``PAPERLAB_FUZZ_EXAMPLES``; 40 in ``make test``) and
the run is derandomized there, so it is the same run on every machine; ``make fuzz`` sets many more examples and a
seed, and appends one JSON line per loader (examples, parsed, refused) to ``PAPERLAB_FUZZ_REPORT``.

A loader that reads a folder (several files) takes ``valid`` as ``{relative name: bytes}``; one file is mutated
per example and the error must name that file or the folder.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from paperlab.io import DataError

EXAMPLES_ENV = "PAPERLAB_FUZZ_EXAMPLES"
SEED_ENV = "PAPERLAB_FUZZ_SEED"
REPORT_ENV = "PAPERLAB_FUZZ_REPORT"
DEFAULT_EXAMPLES = 40

#: Characters that break naive line splitting or decoding: NEL, LINE/PARAGRAPH SEPARATOR, form feed, vertical
#: tab, NUL, a BOM, a lone CR, CRLF, a right-to-left override, an emoji, a combining mark.
ODD_TEXT = [
    "\u0085",
    "\u2028",
    "\u2029",
    "\x0c",
    "\x0b",
    "\x00",
    "\ufeff",
    "\r",
    "\r\n",
    "\u202e",
    "\U0001f600",
    "e\u0301",
]
#: Values a field may be retyped to.
WRONG_VALUES: list[Any] = [None, 0, -1, 2**63, 1.5, "", "x", "a\u2028b\x85c", [], {}, True, [[]], {"": None}]

KINDS = ("json", "jsonl", "csv", "tsv", "text", "pickle")


def _strategies():  # hypothesis is a dev dependency: imported only when a fuzz test runs
    from hypothesis import strategies as st

    return st


def _tree_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys / indices) to a node of a JSON-like tree, the root included."""
    paths = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            paths += _tree_paths(v, (*prefix, k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            paths += _tree_paths(v, (*prefix, i))
    return paths


def _get(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _replace(obj: Any, path: tuple, new: Any) -> Any:
    """A copy of ``obj`` with the node at ``path`` replaced by ``new`` (``_DROP`` removes it)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        child = _replace(obj[head], rest, new)
        if child is _DROP:
            del out[head]
        else:
            out[head] = child
        return out
    items = list(obj)
    child = _replace(items[head], rest, new)
    if child is _DROP:
        del items[head]
    else:
        items[head] = child
    return tuple(items) if isinstance(obj, tuple) else items


_DROP = object()


def _mutate_tree(draw: Any, obj: Any) -> Any:
    """Drop, rename or retype one node of a parsed document, or empty a container."""
    st = _strategies()
    paths = _tree_paths(obj)
    path = draw(st.sampled_from(paths))
    node = _get(obj, path)
    ops = ["retype"]
    if path:
        ops.append("drop")
        if isinstance(_get(obj, path[:-1]), dict):
            ops.append("rename")
    if isinstance(node, dict | list | tuple) and node:
        ops.append("empty")
    if isinstance(node, list) and node:
        ops.append("duplicate")
    op = draw(st.sampled_from(ops))
    if op == "retype":
        return _replace(obj, path, draw(st.sampled_from(WRONG_VALUES)))
    if op == "drop":
        return _replace(obj, path, _DROP)
    if op == "empty":
        return _replace(obj, path, type(node)())
    if op == "duplicate":
        return _replace(obj, path, [*node, node[0]])
    parent = _get(obj, path[:-1])
    key = path[-1]
    renamed = draw(st.sampled_from([f"{key}_", str(key).upper(), f" {key}", ""]))
    new_parent = {(renamed if k == key else k): v for k, v in parent.items()}
    return _replace(obj, path[:-1], new_parent)


def _text_mutations(draw: Any, data: bytes, kind: str) -> bytes:
    st = _strategies()
    text = data.decode("utf-8", errors="replace")
    op = draw(
        st.sampled_from(
            [
                "truncate",
                "empty",
                "blank",
                "encoding",
                "odd_unicode",
                "huge_line",
                "delimiter",
                "flip",
                "lines",
            ]
        )
    )
    if op == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if op == "empty":
        return b""
    if op == "blank":
        return draw(st.sampled_from([b"\n", b"\n\n \n", b"\t\r\n", b"\xef\xbb\xbf"]))
    if op == "encoding":
        codec = draw(st.sampled_from(["latin-1", "utf-16", "cp1252", "utf-32"]))
        prefixed = text + draw(st.sampled_from(["", "\u00e9\u00e8", "\u00ff"]))
        return prefixed.encode(codec, errors="replace")
    if op == "odd_unicode":
        at = draw(st.integers(0, len(text)))
        return (text[:at] + draw(st.sampled_from(ODD_TEXT)) + text[at:]).encode("utf-8")
    if op == "huge_line":
        size = draw(st.sampled_from([10_000, 200_000]))
        at = draw(st.sampled_from([0, len(text) // 2, len(text)]))
        return (text[:at] + "\n" + "x" * size + "\n" + text[at:]).encode("utf-8")
    if op == "delimiter":
        pairs = {
            "csv": [(",", ";"), (",", "\t"), (",", "|"), ("\n", "\r\n"), ("\n", "\r")],
            "tsv": [("\t", ","), ("\t", " "), ("\t", "  "), ("\n", "\r\n"), ("\n", "\r")],
            "jsonl": [("\n", "\r\n"), ("\n", "\n\n"), ("\n", ","), ("\n", "\u2028")],
        }.get(kind, [("\n", "\r\n"), ("\n", "\r"), (" ", "\t")])
        old, new = draw(st.sampled_from(pairs))
        return text.replace(old, new).encode("utf-8")
    if op == "flip":
        if not data:
            return b"\x00"
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    lines = text.split("\n")  # "lines": drop, duplicate or cut a column off one line
    i = draw(st.integers(0, max(len(lines) - 1, 0)))
    how = draw(st.sampled_from(["drop", "duplicate", "cut"]))
    if how == "drop":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    else:
        sep = {"csv": ",", "tsv": "\t"}.get(kind, " ")
        cells = lines[i].split(sep)
        lines[i] = sep.join(cells[: draw(st.integers(0, max(len(cells) - 1, 0)))])
    return "\n".join(lines).encode("utf-8")


def _structural(draw: Any, data: bytes, kind: str) -> bytes | None:
    """A mutation of the parsed content (dropped / renamed / retyped field); None when the input does not parse."""
    st = _strategies()
    try:
        if kind == "json":
            return json.dumps(_mutate_tree(draw, json.loads(data)), ensure_ascii=draw(st.booleans())).encode()
        if kind == "jsonl":
            lines = data.decode("utf-8").split("\n")
            rows = [i for i, line in enumerate(lines) if line.strip()]
            if not rows:
                return None
            i = draw(st.sampled_from(rows))
            lines[i] = json.dumps(_mutate_tree(draw, json.loads(lines[i])), ensure_ascii=False)
            return "\n".join(lines).encode("utf-8")
        if kind == "pickle":
            return pickle.dumps(_mutate_tree(draw, pickle.loads(data)))  # our own valid input, not a user's
        if kind in ("csv", "tsv"):
            sep = "," if kind == "csv" else "\t"
            lines = data.decode("utf-8").split("\n")
            grid = [line.split(sep) for line in lines]
            i = draw(st.integers(0, len(grid) - 1))
            if not grid[i]:
                return None
            j = draw(st.integers(0, len(grid[i]) - 1))
            grid[i][j] = draw(st.sampled_from(["", "abc", "-1", "1e309", "nan", "\u2028", '"', "0.5"]))
            return "\n".join(sep.join(row) for row in grid).encode("utf-8")
    except (ValueError, UnicodeDecodeError, pickle.UnpicklingError):
        return None
    return None


def mutated(valid: bytes, kind: str):
    """A hypothesis strategy of byte strings: ``valid`` mutated once, structurally or as text / bytes."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    st = _strategies()

    @st.composite
    def one(draw: Any) -> bytes:
        if kind == "pickle":
            op = draw(st.sampled_from(["structural", "structural", "truncate", "flip", "empty"]))
            if op == "truncate":
                return valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
            if op == "empty":
                return b""
            if op == "flip":
                raw = bytearray(valid)
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
                return bytes(raw)
        elif kind != "text" and draw(st.booleans()):
            pass  # structural below
        else:
            return _text_mutations(draw, valid, kind)
        out = _structural(draw, valid, kind)
        return out if out is not None else _text_mutations(draw, valid, kind)

    return one()


def _examples(examples: int | None) -> int:
    if examples is not None:
        return examples
    return int(os.environ.get(EXAMPLES_ENV, DEFAULT_EXAMPLES))


def fuzz_loader(
    load: Callable[[Path], Any],
    valid: bytes | Mapping[str, bytes],
    *,
    kind: str | Mapping[str, str],
    name: str,
    error: type[BaseException] | tuple[type[BaseException], ...] = DataError,
    suffix: str = "",
    examples: int | None = None,
) -> Counter:
    """Run ``load`` on mutated versions of ``valid``; returns ``Counter(parsed=..., refused=...)``.

    ``load`` gets the path of the mutated file (one ``valid`` bytes, written as ``input<suffix>``) or of the folder
    (``valid`` a mapping of relative names to bytes; ``kind`` then a mapping too, or one kind for all). It must
    return or raise ``error`` with a message that names the file (or folder); anything else fails the test.
    ``name`` labels the loader in the ``make fuzz`` report."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    folder_mode = isinstance(valid, Mapping)
    files: dict[str, bytes] = dict(valid) if folder_mode else {f"input{suffix}": valid}  # type: ignore[arg-type]
    kinds = dict(kind) if isinstance(kind, Mapping) else dict.fromkeys(files, kind)
    names = sorted(files)
    counts: Counter = Counter()
    work = Path(tempfile.mkdtemp(prefix="paperlab-fuzz-"))
    seed = os.environ.get(SEED_ENV)

    @st.composite
    def case(draw: Any) -> tuple[str, bytes]:
        target = draw(st.sampled_from(names))
        return target, draw(mutated(files[target], kinds[target]))

    @settings(
        max_examples=_examples(examples),
        derandomize=seed is None,
        database=None,
        deadline=None,
        print_blob=True,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(case())
    def check(mutation: tuple[str, bytes]) -> None:
        target, data = mutation
        root = work / "case"
        shutil.rmtree(root, ignore_errors=True)
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data if rel == target else content)
        path = root if folder_mode else root / target
        try:
            load(path)
        except error as exc:
            message = str(exc)
            named = str(path) in message or (root / target).name in message or str(root) in message
            assert named, f"{name}: {type(exc).__name__} does not name the file {root / target}: {message!r}"
            counts["refused"] += 1
        else:
            counts["parsed"] += 1

    try:
        if seed is not None:
            from hypothesis import seed as hseed

            hseed(int(seed))(check)()
        else:
            check()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = os.environ.get(REPORT_ENV)
    if report:
        total = counts["parsed"] + counts["refused"]
        line = {"loader": name, "examples": total, **counts, "escapes": 0, "seed": seed}
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    return counts


def summarize(report: Path, out: Path) -> str:
    """The ``make fuzz`` table: one row per loader (examples, parsed, refused, escapes) from the JSONL report."""
    from paperlab.io import atomic_write_text, read_jsonl
    from paperlab.report import markdown_table

    rows = sorted(read_jsonl(report), key=lambda r: r["loader"])
    for row in rows:
        row.setdefault("parsed", 0)
        row.setdefault("refused", 0)
    total = sum(r["examples"] for r in rows)
    text = (
        f"# make fuzz: {len(rows)} loaders, {total} examples, seed {rows[0]['seed'] if rows else '-'}\n\n"
        + markdown_table(rows, ["loader", "examples", "parsed", "refused", "escapes"])
        + "\nAn escape (an error other than the loader's data error, or one not naming the file) fails the run.\n"
    )
    atomic_write_text(out, text)
    return text


if __name__ == "__main__":
    import sys

    print(summarize(Path(sys.argv[1]), Path(sys.argv[2])))
