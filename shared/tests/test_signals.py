"""paperlab.signals.signals_deferred, and the atomic writes it guards: a SIGTERM (turned into an exception, as
hydra_entry does) inside the section or inside ``torch.save`` is raised only after it, with the file whole."""

import os
import signal

import pytest
import torch

from paperlab.io import atomic_torch_save
from paperlab.signals import signals_deferred


class Stop(BaseException):
    pass


@pytest.fixture
def sigterm_raises():
    def stop(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGTERM, stop)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_inside_a_deferred_section_is_raised_after_it(sigterm_raises):
    finished = False
    with pytest.raises(Stop), signals_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler would run here, between bytecodes
            pass
        finished = True
    assert finished


class KillsWhilePickled:
    """Sends SIGTERM to its own process while torch.save is pickling it (inside the zip writer)."""

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        return (KillsWhilePickled, (self.payload,))


def test_a_sigterm_inside_torch_save_leaves_a_whole_checkpoint_then_stops(sigterm_raises, tmp_path):
    path = tmp_path / "ckpt.pt"
    with pytest.raises(Stop):  # not torch's RuntimeError from the zip writer cut in two
        atomic_torch_save({"w": torch.arange(4.0), "obj": KillsWhilePickled(7)}, path)
    state = torch.load(path, weights_only=False)
    assert state["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and state["obj"].payload == 7
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left
