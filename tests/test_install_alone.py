"""The promise of the README: one method installs on its own into a fresh virtual environment.

Uses uv's pip interface when uv is on PATH (fast: wheels come from uv's cache, which `make setup` filled),
else plain venv + pip.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = os.environ.get("PAPERLAB_INSTALL_CHECK", "adore")


@pytest.mark.slow
def test_one_package_installs_alone_and_imports(tmp_path):
    venv = tmp_path / "venv"
    uv = shutil.which("uv") or os.environ.get("PAPERLAB_UV")
    if uv:
        subprocess.run(
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300
        )
        python = venv / "bin" / "python"
        install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        python = venv / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--quiet"]
    result = subprocess.run(
        [*install, str(ROOT / "shared"), str(ROOT / "packages" / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = (
        f"import {PACKAGE}, paperlab, sys\n"
        f"assert '{ROOT}' not in {PACKAGE}.__file__, {PACKAGE}.__file__  # installed copy, not the checkout\n"
        "others = {'profuser','adore','aihf','irl_sft','roleinteract','semmim','sbr_side_info','unify','alpha_umi','paperowl'}\n"
        f"others.discard('{PACKAGE}')\n"
        "import importlib.util\n"
        "missing = [o for o in others if importlib.util.find_spec(o) is None]\n"
        "assert len(missing) == len(others), 'a sibling was installed too'\n"
        "print('ok', getattr(" + PACKAGE + ", '__all__', []))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok")
