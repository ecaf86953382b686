"""Rank coordination for work that every process of a launch shares: the main process's view broadcast, a barrier,
and per-rank counts of what each did (shown in the results, checked by the two-process test)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from paperlab.scale import distributed_state, world_size

T = TypeVar("T")
R = TypeVar("R")


def main_decides(value: T) -> T:
    """The main process's ``value`` on every rank (``broadcast_object_list``); ``value`` itself on one process."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def barrier() -> None:
    if world_size() > 1:
        distributed_state().wait_for_everyone()


def ranks_work(work: Counter) -> list[dict[str, int]]:
    """Every rank's counts of items processed (gathered; one process: ``[work]``)."""
    if world_size() == 1:
        return [dict(work)]
    from accelerate.utils import gather_object

    return gather_object([dict(work)])


def counted(fn: Callable[[list[T]], list[R]], work: Counter, what: str) -> Callable[[list[T]], list[R]]:
    def run(items: list[T]) -> list[R]:
        work[what] += len(items)
        return fn(items)

    return run
