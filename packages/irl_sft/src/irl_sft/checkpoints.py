"""Trainer options checked before anything is built, and resuming a Trainer pass from its last complete checkpoint.

The ``train`` block of a config is passed through to TRL's config class (``IRFTConfig``); :func:`check_trainer_options`
refuses an unknown field or a value of the wrong type as a :class:`paperlab.config.ConfigError` naming it, before any
data is read or model built (TRL would fail later, with a traceback, once the model is loaded).

With ``train.save_strategy: steps`` and ``train.save_steps: N`` the Trainer writes ``checkpoint-<step>/`` folders
(model, optimizer, scheduler, RNG, ``trainer_state.json`` last); :func:`last_checkpoint` is the newest one whose
``trainer_state.json`` reads back (a checkpoint cut by an interruption is skipped), which
``trainer.train(resume_from_checkpoint=...)`` continues from.

What a run keeps in its results folder is resumed only under the same :func:`run_key` (settings and input files):
:func:`claim_folder` moves another key's files aside.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from irl_sft.data import source_file
from paperlab.config import ConfigError, _convert
from paperlab.io import atomic_write_json, derived_key, read_json

log = logging.getLogger(__name__)


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


#: ``train`` fields that only say when to checkpoint or log: they do not change the trained weights
_NOT_IN_KEY = (
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "report_to",
    "disable_tqdm",
)
#: what a run derives in its results folder (resumed from there when ``run.json`` holds the same key)
_DERIVED = ("stage-*", "heldout_generations.jsonl")


def run_key(cfg: Any) -> str:
    """The key of everything a run derives (stage models, generations, Trainer checkpoints, ``done.json``): every
    setting but ``name`` (and ``stages`` when ``prompts_per_stage`` is set), and the path, size and modification
    time of its local files (data, models) (:func:`paperlab.io.derived_key`)."""
    settings = asdict(cfg)
    settings["train"] = {k: v for k, v in cfg.train.items() if k not in _NOT_IN_KEY}
    data = cfg.data
    files = [source_file(s) for s in (data.demos, data.heldout, data.eval_prefs)]
    models = (cfg.model, cfg.eval_reward_model, cfg.rft.reward_model)
    local = [Path(m) for m in models if m not in ("", "tiny") and Path(m).exists()]
    # with a fixed prompts_per_stage, stage t does not depend on how many stages follow: more can be added later
    drop = ("name", "stages") if cfg.prompts_per_stage else ("name",)
    return derived_key(settings, [f for f in files if f is not None] + local, drop=drop)


def claim_folder(out: Path, key: str, state: Any) -> None:
    """Make ``out`` hold only this key's derived files: those of another key (another setting or input file, or an
    unkeyed older run) are moved to ``out/previous-<their key>/`` rather than resumed; ``run.json`` names the key."""
    marker = out / "run.json"
    if state.is_main_process:
        found = read_json(marker) if marker.is_file() else None
        old = found.get("key") if isinstance(found, dict) else None
        if old != key:
            stale = [p for pattern in _DERIVED for p in out.glob(pattern)]
            if stale:
                aside = out / f"previous-{old or 'unkeyed'}"
                aside.mkdir(parents=True, exist_ok=True)
                log.warning("%s: results of other settings or inputs moved to %s", out, aside)
                for path in stale:
                    path.replace(aside / path.name)
            atomic_write_json(marker, {"key": key})
    state.wait_for_everyone()


def check_model_path(value: str, field: str) -> None:
    """A model named by a local path (absolute, ``./``, ``../`` or ``~``) must be a folder; a hub name is left to
    the hub."""
    if value.startswith(("/", "./", "../", "~")) and not Path(value).expanduser().is_dir():
        raise ConfigError(
            f"{field}={value!r}: no such folder; expected 'tiny', a hub name or a local model folder"
        )
