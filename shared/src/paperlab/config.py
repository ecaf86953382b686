"""Hydra glue and config validation.

Each package ships ``src/<name>/conf/config.yaml`` (+ ``conf/experiment/<exp>.yaml``) and gets
``python -m <name> experiment=<exp>`` and a console script ``<name>-run`` from :func:`hydra_entry`. Tests load
the same configs without running anything through :func:`compose`. Configs become validated dataclasses with
:func:`from_config`: an unknown or missing field, or a value of the wrong type, fails with the field's path.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

HYDRA_VERSION_BASE = "1.3"

#: Hydra settings injected by :func:`hydra_entry` unless the user gives their own: no output folders, no
#: change of working directory, no logging config (Hydra's ``dictConfig`` shuts down every handler in the
#: process, and absl's closes its stream); each entry point calls :func:`setup_logging` (stderr) instead.
_QUIET_HYDRA = (
    "hydra.output_subdir=null",
    "hydra.run.dir=.",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
)


class UserError(ValueError):
    """A mistake in what the user gave (a config value, a data file): the message says where and what was
    expected. An entry point made by :func:`hydra_entry` prints it as one line and exits 2, without a traceback."""


class ConfigError(UserError):
    """A config value is missing, unknown, or not what was expected; the message names the field."""


class Interrupted(BaseException):
    """SIGTERM, turned by :func:`hydra_entry` into an exception so that ``finally`` blocks and context managers
    run as they do for Ctrl-C (``KeyboardInterrupt``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _interrupt_behind(err: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` an exception was raised from (``__cause__`` / ``__context__`` chain), if any: a C
    extension's init (matplotlib's ft2font) or torch's zip writer may turn the interrupt into its own error."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, Interrupted):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def require(condition: bool, field: str, value: Any, expected: str) -> None:
    """Raise :class:`ConfigError` ``"<field>=<value>: expected <expected>"`` unless ``condition``.

    Use in ``__post_init__``: ``require(self.beta > 0, "beta", self.beta, "a positive float")``.
    """
    if not condition:
        raise ConfigError(f"{field}={value!r}: expected {expected}")


def _plain(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, DictConfig | ListConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return cfg


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}={value!r}: no matching type in {tp}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_config(tp, value, where)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}={value!r}: expected a list")
        inner = args[0] if args else Any
        items = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}={value!r}: expected a mapping")
        inner = args[1] if len(args) == 2 else Any
        return {k: _convert(inner, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r}: expected one of {list(args)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}={value!r}: expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}={value!r}: expected an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r}: expected a string")
        return value
    return value


def from_config(cls: type[T], cfg: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping or DictConfig, recursively for nested dataclass fields.

    Unknown keys, missing required fields and type mismatches raise :class:`ConfigError` naming the dotted
    field path and the valid fields; the dataclass's own ``__post_init__`` then checks values.
    """
    data = _plain(cfg)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return data  # type: ignore[return-value]
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where or cls.__name__}: expected a mapping for {cls.__name__}, got {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown field(s) {unknown} for {cls.__name__}; valid fields: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: required field of {cls.__name__} is missing")
            continue
        kwargs[name] = _convert(hints.get(name, Any), data[name], path)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if where:
            raise ConfigError(f"{where}: {err}") from err
        raise


def compose(package: str, overrides: Sequence[str] = (), config_name: str = "config") -> Any:
    """Load ``<package>/conf/<config_name>.yaml`` with Hydra overrides (``["experiment=tiny"]``) and return the
    DictConfig, without running anything (for tests and notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=f"{package}.conf", version_base=HYDRA_VERSION_BASE):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def setup_logging(level: int | str = logging.INFO) -> None:
    """Plain ``logging`` to stderr with time, level and logger name; safe to call twice."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
        )
    root.setLevel(level)


def _one_line(err: BaseException) -> str:
    """An exception and its causes as one line (Hydra's and OmegaConf's messages span several)."""
    parts: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(parts) < 3:
        text = " ".join(line.strip() for line in str(seen).splitlines() if line.strip())
        text = text.split(" Config search path:")[0]
        if text and not any(text in p for p in parts):
            parts.append(text.rstrip("."))
        seen = seen.__cause__ or seen.__context__
    return "; ".join(parts) or type(err).__name__


def _composition_problem(package: str, user: Sequence[str], config_name: str) -> str | None:
    """Compose the config as :func:`hydra_entry` will, before Hydra runs, to report a bad override (unknown key,
    missing experiment, bad syntax) as one line; None when it composes, or when Hydra's own flags or ``hydra.*``
    overrides are given (Hydra checks those itself)."""
    if any(arg.startswith("-") or arg.lstrip("+~").startswith("hydra") for arg in user):
        return None
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        compose(package, user, config_name)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        return f"{_one_line(err)} (overrides: {' '.join(user)})"
    finally:
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
    return None


def hydra_entry(package: str, run: Callable[[Any], Any], config_name: str = "config") -> Callable[[], None]:
    """A ``main()`` for ``python -m <package>`` and the ``<package>-run`` console script.

    It runs Hydra on ``<package>/conf/<config_name>.yaml`` (command-line overrides as usual,
    ``experiment=<exp>``), without output folders or a change of directory, and calls ``run(cfg)``.

    The exit contract: a :class:`UserError` (config or data) prints one line and exits 2, as does a config Hydra
    cannot compose (an unknown key, a bad override: Hydra prints its own message); Ctrl-C exits 130 and SIGTERM 143,
    each after one line saying that what was written is kept and the same command resumes; anything else is a bug
    and keeps its traceback (exit 1).
    """

    def main() -> None:
        import signal

        import hydra

        user = sys.argv[1:]
        # our settings go first: Hydra's flags (--cfg job, --help, --info) may follow the user's overrides, and
        # argparse refuses an override after a flag
        quiet = [
            s
            for s in _QUIET_HYDRA
            if not any(arg.split("=", 1)[0].lstrip("+~") == s.split("=", 1)[0] for arg in user)
        ]
        sys.argv[1:1] = quiet
        started = finished = False
        problem = _composition_problem(package, user, config_name)
        if problem:
            print(f"{package}: error: {problem}", file=sys.stderr)
            sys.exit(2)

        def on_term(signum: int, frame: Any) -> None:
            if (
                not finished
            ):  # once run() has returned, every result is written: a late SIGTERM changes nothing
                raise Interrupted(signum)

        @hydra.main(
            config_path=f"pkg://{package}.conf", config_name=config_name, version_base=HYDRA_VERSION_BASE
        )
        def _main(cfg: Any) -> None:
            nonlocal started, finished
            started = True
            try:
                run(cfg)
                finished = True
            except UserError as err:
                print(f"{package}: error: {err}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"{package}: interrupted; what was written is kept, rerun the same command to resume",
                      file=sys.stderr)  # fmt: skip
                sys.exit(130)
            except Interrupted as sig:
                print(f"{package}: stopped by signal {sig.signum}; what was written is kept, rerun the same "
                      "command to resume", file=sys.stderr)  # fmt: skip
                sys.exit(128 + sig.signum)
            except Exception as err:
                sig = _interrupt_behind(err)  # a library that wrapped our interrupt in its own error
                if sig is None:
                    raise
                print(f"{package}: stopped by signal {sig.signum}; what was written is kept, rerun the same "
                      "command to resume", file=sys.stderr)  # fmt: skip
                sys.exit(128 + sig.signum)

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            _main()
        except SystemExit as done:
            if not started and done.code == 1:  # Hydra could not compose the config: the user's mistake
                sys.exit(2)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)

    return main
