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
#: change of working directory, logs to stdout.
_QUIET_HYDRA = (
    "hydra.output_subdir=null",
    "hydra.run.dir=.",
    "hydra/job_logging=stdout",
    "hydra/hydra_logging=none",
)


class ConfigError(ValueError):
    """A config value is missing, unknown, or not what was expected; the message names the field."""


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


def hydra_entry(package: str, run: Callable[[Any], Any], config_name: str = "config") -> Callable[[], None]:
    """A ``main()`` for ``python -m <package>`` and the ``<package>-run`` console script.

    It runs Hydra on ``<package>/conf/<config_name>.yaml`` (command-line overrides as usual,
    ``experiment=<exp>``), without output folders or a change of directory, and calls ``run(cfg)``. A
    :class:`ConfigError` ends the program with its message and exit code 2 instead of a traceback.
    """

    def main() -> None:
        import hydra

        user = sys.argv[1:]
        for setting in _QUIET_HYDRA:
            key = setting.split("=", 1)[0]
            if not any(arg.split("=", 1)[0].lstrip("+~") == key for arg in user):
                sys.argv.append(setting)

        @hydra.main(
            config_path=f"pkg://{package}.conf", config_name=config_name, version_base=HYDRA_VERSION_BASE
        )
        def _main(cfg: Any) -> None:
            try:
                run(cfg)
            except ConfigError as err:
                print(f"{package}: config error: {err}", file=sys.stderr)
                sys.exit(2)

        _main()

    return main
