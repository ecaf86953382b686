"""Run one package's command line on several argument lists in one process (the package imported once) and
print, as one JSON line per case, its exit code and what it wrote to stderr. Used by tests/test_cli_errors.py;
``python tests/scripts/cli_cases.py <package> '<json list of argument lists>'``."""

import contextlib
import io
import json
import runpy
import sys
import traceback

package, cases = sys.argv[1], json.loads(sys.argv[2])
for args in cases:
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    sys.argv = [package, *args]
    err = io.StringIO()
    code: object = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(f"{package}.__main__", run_name="__main__", alter_sys=False)
        except SystemExit as done:
            code = done.code if done.code is not None else 0
        except BaseException:  # a crash: what the interpreter would print, and its exit code
            traceback.print_exc(file=err)
            code = 1
    print(json.dumps({"args": args, "code": code, "stderr": err.getvalue()}), flush=True)
