"""Every package's command line keeps paperlab's error contract (paperlab.config.hydra_entry, issue 28): a missing
input file, a malformed one, an unknown config key and a wrong type each print one line ``<package>: error: ...``
naming the file or the key, without a traceback, and exit 2.

Each package says how to reach its input in ``packages/<name>/tests/cli_errors.json``:

    {"args": ["experiment=eval", "out_dir={tmp}/out"],   # the run; {tmp} is a fresh folder
     "input": "data.path={file}",                       # the override that names the input file
     "suffix": ".jsonl", "malformed": "{not json\\n",     # the malformed file's name ending and content
     "unknown_key": "eval.no_such_key=1",               # a key the config does not have
     "wrong_type": "eval.batch_size=abc"}               # a known key given the wrong type

The cases of one package run in one process (tests/scripts/cli_cases.py), the package imported once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layout import PACKAGES

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).parent / "scripts" / "cli_cases.py"


def _cases(package: str, tmp: Path) -> tuple[dict, list[tuple[str, list[str], str]]]:
    spec_file = ROOT / "packages" / package / "tests" / "cli_errors.json"
    assert spec_file.is_file(), (
        f"{spec_file}: missing (how to reach {package}'s input, see this test's docstring)"
    )
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    args = [a.replace("{tmp}", str(tmp)) for a in spec["args"]]
    bad = tmp / f"malformed{spec['suffix']}"
    bad.write_text(spec["malformed"], encoding="utf-8")
    missing = tmp / f"absent{spec['suffix']}"
    unknown_key = spec["unknown_key"].split("=", 1)[0].lstrip("+")
    wrong_key = spec["wrong_type"].split("=", 1)[0]
    return spec, [
        ("missing file", [*args, spec["input"].replace("{file}", str(missing))], missing.name),
        ("malformed file", [*args, spec["input"].replace("{file}", str(bad))], bad.name),
        ("unknown key", [*args, spec["unknown_key"]], unknown_key.rsplit(".", 1)[-1]),
        ("wrong type", [*args, spec["wrong_type"]], wrong_key),
    ]


@pytest.mark.slow  # one process per package: its import plus four failing starts
@pytest.mark.parametrize("package", PACKAGES)
def test_bad_input_is_one_line_and_exit_2(package, tmp_path):
    _, cases = _cases(package, tmp_path)
    proc = subprocess.run(
        [sys.executable, str(DRIVER), package, json.dumps([c[1] for c in cases])],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), proc.stdout[-3000:] + proc.stderr[-3000:]
    for (what, args, named), got in zip(cases, results):
        lines = [line for line in got["stderr"].splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(f"{package}: error: ")]
        where = f"{package} {what} ({' '.join(args)}):\n{got['stderr'][-3000:]}"
        assert got["code"] == 2, where
        assert "Traceback" not in got["stderr"], where
        assert len(errors) == 1 and errors[0] == lines[-1], where
        assert named in errors[0], f"{where}\nthe error line does not name {named!r}"
