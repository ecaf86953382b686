"""GCE-GNN's preprocessed pickles (``all_train_seq.txt``: a list of sessions; ``test.txt``: a pair (sequences,
labels)), already in the SR-GNN protocol, read through a restricted unpickler that admits lists, tuples and ints
only, so a crafted file cannot run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from paperlab.io import existing_file
from sbr_side_info.schema import Cases, DataFormatError, Prepared


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
    path = existing_file(path)
    try:
        obj = RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as err:  # a corrupt pickle can fail in many ways (bad opcode, memo, truncation, ...)
        raise DataFormatError(
            f"{path}: refused by the restricted unpickler: {type(err).__name__}: {err}"
        ) from None
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


def _sequences(obj: Any, path: Path, what: str) -> list[list[int]]:
    """``obj`` as a list of non-empty lists of item ids >= 1 (ints: :func:`restricted_load` checked the types)."""
    if not isinstance(obj, (list, tuple)):
        raise DataFormatError(
            f"{path}: expected a list of {what}s (lists of item ids), got {type(obj).__name__}"
        )
    for i, seq in enumerate(obj, start=1):
        if not isinstance(seq, (list, tuple)) or not seq:
            got = type(seq).__name__ if not isinstance(seq, (list, tuple)) else "an empty list"
            raise DataFormatError(f"{path}: {what} {i}: expected a non-empty list of item ids, got {got}")
        for j, item in enumerate(seq, start=1):
            if not isinstance(item, int) or item < 1:
                raise DataFormatError(f"{path}: {what} {i}: item {j}: expected item ids >= 1, got {item!r}")
    return [list(seq) for seq in obj]


def load_gce_gnn(folder: str | Path, valid_portion: float = 0.1, seed: int = 0) -> Prepared:
    """A GCE-GNN preprocessed set (``all_train_seq.txt``, ``test.txt``): training cases rebuilt by prefix
    augmentation (= SR-GNN's ``train.txt``), test cases as shipped, a random ``valid_portion`` of the training
    cases held out for early stopping (SR-GNN's ``split_validation``).

    ``all_train_seq.txt`` must be a list of sessions and ``test.txt`` a pair (sequences, labels) of equal length,
    every sequence non-empty and every item id >= 1 (0 is padding); anything else is a :class:`DataFormatError`
    naming the file and the session or label."""
    import random

    folder = Path(folder)
    train_path, test_path = folder / "all_train_seq.txt", folder / "test.txt"
    test = restricted_load(test_path)
    train_sessions = _sequences(restricted_load(train_path), train_path, "session")
    pair = isinstance(test, (tuple, list)) and len(test) == 2
    if not (pair and all(isinstance(x, (tuple, list)) for x in test)):
        kinds = ", ".join(type(x).__name__ for x in test) if isinstance(test, (tuple, list)) else ""
        got = f"({kinds})" if isinstance(test, (tuple, list)) else type(test).__name__
        raise DataFormatError(f"{test_path}: expected a pair (sequences, labels) of two lists, got {got}")
    seqs = _sequences(test[0], test_path, "sequence")
    labels = list(test[1])
    for i, label in enumerate(labels, start=1):
        if not isinstance(label, int) or label < 1:
            raise DataFormatError(f"{test_path}: label {i}: expected item ids >= 1, got {label!r}")
    if len(seqs) != len(labels):
        raise DataFormatError(
            f"{test_path}: expected as many labels as sequences, got {len(labels)} labels for {len(seqs)} sequences"
        )
    cases = prefix_augment(train_sessions)
    if not len(cases):
        raise DataFormatError(
            f"{train_path}: expected at least one session of 2 or more items (no training case)"
        )
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_valid = round(len(order) * valid_portion)
    valid, train = cases.subset(sorted(order[:n_valid])), cases.subset(sorted(order[n_valid:]))
    n_items = 1 + max(
        max(max(s) for s in train_sessions), max(labels, default=0), max((max(s) for s in seqs), default=0)
    )
    return Prepared(
        name=folder.name,
        train=train,
        valid=valid,
        test=Cases(seqs, labels),
        n_items=n_items,
        stats={"train_sessions": len(train_sessions), "train_cases": len(cases), "test_cases": len(labels)},
    )
