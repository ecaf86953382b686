"""Files that survive interruption: atomic writes (temp file + rename), an append-only JSONL cache that
resumes by key, and checkpoints that bundle model, optimizer, step and RNG state; and reading a user's JSONL data
with errors that name the file and line (:func:`read_jsonl`, :class:`DataError`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from paperlab.config import UserError
from paperlab.seed import get_rng_state, set_rng_state
from paperlab.signals import signals_deferred


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with signals_deferred():  # an interrupt waits for the rename (or the clean-up): never half a write
        return _atomic_now(path, write, mode)


def _atomic_now(path: Path, write: Callable[[Any], None], mode: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would create it (mkstemp makes it 0600)
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _log_write(path)
    return path


#: When set, every atomic write appends ``<rank>\t<path>`` to this file: the two-process harness
#: (:mod:`paperlab.testing`) reads it to check that each result is written once, by the main process.
WRITE_LOG_ENV = "PAPERLAB_WRITE_LOG"


def _log_write(path: Path) -> None:
    log_path = os.environ.get(WRITE_LOG_ENV)
    if log_path:
        rank = os.environ.get("RANK", "0")
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{rank}\t{path.resolve()}\n")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    return _atomic(Path(path), lambda h: h.write(data), "wb")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """JSON version of :func:`atomic_write_bytes` (UTF-8, non-ASCII kept, keys in insertion order)."""
    return atomic_write_text(
        path, json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default) + "\n"
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through a temp file and a rename."""
    import torch

    return _atomic(Path(path), lambda h: torch.save(obj, h), "wb")


class DataError(UserError):
    """A data file or row that cannot be used; the message names the file, the line or row, and the field."""


class MissingFileError(DataError, FileNotFoundError):
    """A file the user named does not exist: a :class:`DataError` (one line, exit 2 from an entry point) that
    ``except FileNotFoundError`` still catches."""


def existing_file(path: str | Path, field: str = "") -> Path:
    """``path`` if it is a file; else :class:`MissingFileError` naming it (and the config ``field`` it came from)."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = f"{field}: " if field else ""
        what = "is a folder, expected a file" if path.is_dir() else "no such file"
        raise MissingFileError(f"{where}{path}: {what}")
    return path


def scan_jsonl(path: str | Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(line number, byte offset, row)`` for each JSON object of a JSONL file, one line in memory at a time (a
    lazy dataset keeps the offsets and seeks back to a row); blank lines are skipped, so that errors about a row can
    name its line. A missing file, a line that is not UTF-8 or not a JSON object is a :class:`DataError` naming the
    file and line."""
    path = existing_file(path)
    with path.open("rb") as f:
        offset = 0
        # binary lines end at b"\n" only: str.splitlines() would also break at U+0085, U+2028, form feed ...,
        # which JSON strings may hold unescaped
        for number, raw in enumerate(f, start=1):
            start, offset = offset, offset + len(raw)
            try:
                line = raw.decode(
                    "utf-8-sig" if number == 1 else "utf-8"
                )  # a leading byte-order mark is dropped
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{number}: not UTF-8 text (byte {raw[err.start]:#x}); save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                hint = ""
                if number == 1 and line.lstrip().startswith("["):
                    hint = "; the file looks like a JSON array, JSONL holds one object per line"
                raise DataError(
                    f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}){hint}"
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, start, row


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each JSON object of a JSONL file, streamed (:func:`scan_jsonl` without the
    offsets)."""
    for number, _, row in scan_jsonl(path):
        yield number, row


def _read_text(path: Path) -> str:
    """A user's text file as UTF-8; another encoding is a :class:`DataError` naming the file and line, a missing
    file a :class:`MissingFileError`."""
    data = existing_file(path).read_bytes()
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#x}); save the file as UTF-8"
        ) from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (:func:`iter_jsonl` without the line numbers)."""
    return [row for _, row in iter_jsonl(path)]


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a parse error names the file, line and column."""
    path = Path(path)
    try:
        text = _read_text(path)
        if not text.strip():
            raise DataError(f"{path}: empty file, expected JSON")
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err


class JsonlCache:
    """An append-only JSONL file of records keyed by ``record[key_field]``.

    Each :meth:`append` writes one line and flushes it to disk, so a killed run loses at most the record being
    written; a torn last line is ignored on reload. Re-opening the same path resumes: :meth:`__contains__`
    says what is done, so a loop can skip it.

    >>> cache = JsonlCache(path)                      # doctest: +SKIP
    >>> for item in items:                            # doctest: +SKIP
    ...     if item.id in cache: continue
    ...     cache.append({"key": item.id, "answer": ask(item)})
    """

    def __init__(self, path: str | Path, key_field: str = "key") -> None:
        self.path = Path(path)
        self.key_field = key_field
        self._records: dict[str, dict[str, Any]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        lines = _read_text(self.path).split("\n")
        while lines and not lines[-1]:
            lines.pop()
        good: list[str] = []
        fix = "delete the file to start the cache over"
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):  # a torn last line from an interrupted write
                    break
                raise DataError(f"{self.path}: line {number} is not valid JSON ({err.msg}); {fix}") from err
            if not isinstance(record, dict) or self.key_field not in record:
                raise DataError(
                    f"{self.path}: line {number}: expected an object with a {self.key_field!r} field, got "
                    f"{type(record).__name__}; {fix}"
                )
            self._records[str(record[self.key_field])] = record
            good.append(line)
        if len(good) != sum(1 for line in lines if line.strip()):
            atomic_write_text(self.path, "".join(g + "\n" for g in good))

    def __contains__(self, key: object) -> bool:
        return str(key) in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def get(self, key: object, default: Any = None) -> Any:
        return self._records.get(str(key), default)

    def keys(self) -> list[str]:
        return list(self._records)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (must carry the key field) and flush it to disk."""
        if self.key_field not in record:
            raise KeyError(f"record for {self.path} has no {self.key_field!r} field: {sorted(record)}")
        line = json.dumps(record, ensure_ascii=False, default=_json_default)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._records[str(record[self.key_field])] = record

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.append(record)


def save_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically save model/optimizer/scheduler state, the step, every RNG state and ``extra``.

    Resuming from it with :func:`load_checkpoint` continues the same random stream, so an interrupted run and
    an uninterrupted one end in the same place.
    """
    state: dict[str, Any] = {"step": int(step), "rng": get_rng_state(), "extra": extra or {}}
    if model is not None:
        state["model"] = model.state_dict()
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    return atomic_torch_save(state, path)


def load_checkpoint(
    path: str | Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load what :func:`save_checkpoint` wrote into the given objects; returns the whole state dict
    (``state["step"]``, ``state["extra"]``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    for name, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if name not in state:
                raise KeyError(f"{path}: checkpoint has no {name!r} state")
            obj.load_state_dict(state[name])
    if restore_rng:
        set_rng_state(state["rng"])
    return state


def derived_key(
    settings: Any, inputs: Iterable[str | Path] = (), *, drop: Iterable[str] = (), length: int = 12
) -> str:
    """The key of a derived file (a cache, a prepared split, trained tiny weights): a digest of every setting that
    changes it and of the files it was derived from, so that a change of either can never reuse a stale result.

    ``settings``: a dataclass, mapping or any JSON-able value (``drop``: top-level fields that do not change the
    result, e.g. ``name``, ``progress``). ``inputs``: files (or folders, walked) named by their resolved path, size
    and modification time; a missing one counts as absent, so that creating it changes the key."""
    import dataclasses
    import hashlib

    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    dropped = set(drop)
    if isinstance(settings, dict) and dropped:
        settings = {k: v for k, v in settings.items() if k not in dropped}
    stamps = []
    for item in inputs:
        path = Path(item).expanduser().resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat() if f.exists() else None
            stamps.append([str(f), st.st_size if st else None, st.st_mtime_ns if st else None])
    payload = json.dumps([settings, stamps], sort_keys=True, default=_json_default)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
