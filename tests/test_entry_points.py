"""Every package's command line keeps paperlab's entry contract (paperlab.config.hydra_entry): Hydra's flags work
after an override, and a config key Hydra cannot compose is a user error (exit 2, the key named), not a crash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_layout import PACKAGES


def _run(package: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", package, *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow  # ~3 s per package and call
@pytest.mark.parametrize("package", PACKAGES)
def test_flags_after_an_override_and_unknown_keys(package):
    shown = _run(package, "+paperlab_probe=7", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "paperlab_probe: 7" in shown.stdout
    unknown = _run(package, "no_such_key=1")
    assert unknown.returncode == 2, unknown.stderr[-2000:]
    assert "no_such_key" in unknown.stderr
