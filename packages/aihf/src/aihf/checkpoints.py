"""Trainer options checked before anything is built, and resuming a Trainer pass from its last complete checkpoint.

The ``train`` block of a config is passed through to TRL's config class (``AIHFConfig``); :func:`check_trainer_options`
refuses an unknown field or a value of the wrong type as a :class:`paperlab.config.ConfigError` naming it, before any
data is read or model built (TRL would fail later, with a traceback, once the model is loaded).

With ``train.save_strategy: steps`` and ``train.save_steps: N`` the Trainer writes ``checkpoint-<step>/`` folders
(model, optimizer, scheduler, RNG, ``trainer_state.json`` last); :func:`last_checkpoint` is the newest one whose
``trainer_state.json`` reads back (a checkpoint cut by an interruption is skipped), which
``trainer.train(resume_from_checkpoint=...)`` continues from.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any

from paperlab.config import ConfigError, _convert


def check_trainer_options(cls: type, options: dict[str, Any], where: str) -> None:
    """Every key of ``options`` is a field of the dataclass ``cls`` and its value has the field's type."""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {unknown} for {cls.__name__} (TRL / transformers training arguments)"
        )
    hints = typing.get_type_hints(cls)
    for key, value in options.items():
        _convert(hints.get(key, Any), value, f"{where}.{key}")


def last_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete ``checkpoint-<step>`` folder in ``folder`` (None when there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # cut by an interruption before the Trainer finished writing it
        return path
    return None


def logged_loss(trainer: Any, fallback: float) -> float:
    """The mean of the losses the Trainer logged (kept in its checkpoints, so the same after a resume, when
    ``save_steps`` is a multiple of ``logging_steps``); ``fallback`` when nothing was logged."""
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return sum(losses) / len(losses) if losses else float(fallback)


def check_model_path(value: str, field: str) -> None:
    """A model named by a local path (absolute, ``./``, ``../`` or ``~``) must be a folder; a hub name is left to
    the hub."""
    if value.startswith(("/", "./", "../", "~")) and not Path(value).expanduser().is_dir():
        raise ConfigError(
            f"{field}={value!r}: no such folder; expected 'tiny', a hub name or a local model folder"
        )
