"""Holding SIGINT / SIGTERM back over a short section that an exception must not cut in two.

paperlab's entry point turns SIGTERM into ``Interrupted`` raised wherever the main thread is. Some places cannot
take it: every atomic write of :mod:`paperlab.io` (it holds them back itself: ``torch.save`` interrupted inside its
zip writer fails with its own RuntimeError, which hides the interrupt, exit 1 instead of 143), and pycocoevalcap's
METEOR (it holds a lock while talking to its Java process; interrupted there, its ``__del__`` and the interpreter's
exit hang for ever). Inside :func:`signals_deferred` the signals wait and are delivered as soon as the section ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held in the ``with`` body and raised again on leaving it (main thread only).

    The Python-level handlers are swapped for one that notes the signal (a thread mask would not do: the kernel
    gives a process-wide signal to any thread that does not block it, and Python then runs the handler in the main
    thread wherever it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])
