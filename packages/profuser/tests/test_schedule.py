"""The progressive schedule: inference mode at step 0, training mode at the end, the mix in between."""

import pytest

from paperlab.config import ConfigError
from profuser.schedule import ProgressiveSampler, ScheduleConfig


def test_stages_switch_once_at_the_given_share():
    sampler = ProgressiveSampler(ScheduleConfig("stages", 0.3), n_inference=7, n_training=5, total=1000)
    modes = sampler.modes()
    assert modes[0] == "inference" and modes[-1] == "training"
    assert modes.count("inference") == 300 and modes[:300] == ["inference"] * 300
    indices = list(sampler)
    assert all(i < 7 for i in indices[:300]) and all(7 <= i < 12 for i in indices[300:])
    # each mode's items are visited once per pass before any repeats
    assert sorted(indices[:7]) == list(range(7)) and sorted(indices[300:305]) == list(range(7, 12))


def test_linear_hands_over_gradually():
    modes = ProgressiveSampler(ScheduleConfig("linear"), 10, 10, total=4000, seed=3).modes()
    assert modes[0] == "inference" and modes[-1] == "training"
    share = [sum(m == "training" for m in modes[i : i + 1000]) / 1000 for i in range(0, 4000, 1000)]
    for got, want in zip(share, [0.125, 0.375, 0.625, 0.875], strict=True):
        assert got == pytest.approx(want, abs=0.05)


def test_single_mode_schedules_and_determinism():
    assert set(ProgressiveSampler(ScheduleConfig("training"), 0, 4, 50).modes()) == {"training"}
    assert set(ProgressiveSampler(ScheduleConfig("inference"), 4, 0, 50).modes()) == {"inference"}
    a = list(ProgressiveSampler(ScheduleConfig("linear"), 5, 5, 200, seed=1))
    assert a == list(ProgressiveSampler(ScheduleConfig("linear"), 5, 5, 200, seed=1))
    assert a != list(ProgressiveSampler(ScheduleConfig("linear"), 5, 5, 200, seed=2))


def test_bad_schedules_are_refused():
    with pytest.raises(ConfigError, match=r"schedule\.kind"):
        ScheduleConfig("cosine")
    with pytest.raises(ConfigError, match=r"schedule\.switch"):
        ScheduleConfig("stages", 1.5)
    with pytest.raises(ConfigError, match="inference items"):
        ProgressiveSampler(ScheduleConfig("stages", 0.5), 0, 5, 10)
