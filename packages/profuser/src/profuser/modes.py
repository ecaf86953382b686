"""The two modes' training items (ProFuser Sec. 1), built one source at a time and sharded over the ranks of a launch.

For each source: its representation of the ground truth (training mode), its greedy answers, their reward and its
representation of its own answers (inference mode). Then MinCE picks the training-mode source per sample and the
highest reward (ties by the lowest cross entropy on the own answer) the inference-mode one.

Under ``accelerate launch`` every rank loads the source (teachers through :func:`paperlab.scale.load_for_inference`)
and does its share of every step (:func:`paperlab.scale.map_sharded`: the teacher-forced forwards shard by shard,
the answers chunk by chunk, the rewards); the main process alone writes the caches (``generations.jsonl``, the
representation stores), so an interrupted build resumes where it stopped. What the main process finds on disk is
broadcast (:func:`main_decides`), so every rank takes the same path through the collectives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab.io import JsonlCache, derived_key
from paperlab.models import load_tokenizer
from paperlab.scale import distributed_state, is_main_process, load_for_inference, map_sharded, world_size
from profuser.advantage import fuse, inference_mode_choice, training_mode_choice
from profuser.chat import ensure_chat_template
from profuser.config import ExperimentConfig, SourceConfig
from profuser.generate import greedy_responses, server_responses
from profuser.ranks import counted, main_decides, ranks_work
from profuser.represent import ModelSide, RepresentationStore, Sample, check_same_samples
from profuser.sources import TinySourceSpec, source_key, tiny_source
from profuser.trainer import to_item


def source_fingerprint(cfg: ExperimentConfig, s: SourceConfig, world) -> str:
    """What a source model is, known before loading it (:func:`paperlab.io.derived_key`): a tiny specialist's
    :func:`profuser.sources.source_key` (spec, training settings, training pairs); a hub model's settings, and
    its files when it is a local folder. Caches of a source (its stores, its answers) are keyed by it."""
    if s.model == "tiny":
        return source_key(_spec(s), world.source_data[s.skill], cfg.source_train)
    local = [s.model] if Path(s.model).expanduser().exists() else []
    return derived_key({"model": s.model, "chat": s.chat, "chat_template": s.chat_template}, local)


def _spec(s: SourceConfig) -> TinySourceSpec:
    return TinySourceSpec(s.skill, s.vocab_size, s.family)


def load_source(cfg: ExperimentConfig, s: SourceConfig, world, out: Path) -> ModelSide:
    """A tiny specialist (trained once by the main process, then reloaded from the results folder) or a hub
    checkpoint, frozen on this rank's device with its native transformers class (no ``trust_remote_code``: MPT
    is native), its tokenizer given ``chat_template`` where it has none."""
    fingerprint = source_fingerprint(cfg, s, world)
    with distributed_state().main_process_first():
        if s.model == "tiny":
            model, tok = tiny_source(
                _spec(s),
                world.source_data[s.skill],
                cfg.source_train,
                out / "sources" / s.name,
                progress=cfg.progress,
            )
            return ModelSide(s.name, model, tok, chat=False, fingerprint=fingerprint)
        tokenizer = load_tokenizer(s.model)
        if s.chat:
            ensure_chat_template(tokenizer, s.chat_template, s.name)
        return ModelSide(s.name, load_for_inference(s.model), tokenizer, chat=s.chat, fingerprint=fingerprint)


@dataclass
class Modes:
    """Both modes' items and choices: ``training_items`` (ground truth, MinCE source), ``inference_items`` (the
    reward-chosen answer with its source's distributions); ``ce`` and ``rewards`` are (sources, samples);
    ``work``: per rank, the items it represented, answered and scored."""

    training_items: list[dict]
    inference_items: list[dict]
    training_choice: np.ndarray
    inference_choice: np.ndarray
    ce: np.ndarray
    rewards: np.ndarray
    work: list[dict[str, int]] = field(default_factory=list)


def answer_key(cfg: ExperimentConfig, s_cfg: SourceConfig) -> str:
    """The generation settings an answer depends on (the prompt is in the sample): greedy, ``max_new_tokens``,
    and the server when one answers."""
    return derived_key({"max_new_tokens": cfg.fusion.max_new_tokens, "server": s_cfg.server}, length=8)


def _answer_id(prefix: str, sample: Sample) -> str:
    """A cached answer's key: the source and settings (``prefix``), the sample and its prompt."""
    return f"{prefix}{sample.uid}/{derived_key(sample.prompt, length=8)}"


def _answers(
    cfg: ExperimentConfig, s_cfg: SourceConfig, src: ModelSide, todo: Sequence[Sample], cache: JsonlCache | None,
    work: Counter, prefix: str,
) -> dict[str, str]:  # fmt: skip
    """The source's greedy answers to ``todo``, chunk by chunk over the ranks; the main process appends each chunk
    to the cache. Chunks are whole generation batches, so one process batches exactly as without chunks."""
    f = cfg.fusion
    batch = s_cfg.generation_batch or f.generation_batch

    def answer(part: list[Sample]) -> list[str]:
        prompts = [s.prompt for s in part]
        if (
            s_cfg.server
        ):  # a failed request answers None: counted, left out of the cache, asked again next run
            texts = server_responses(
                s_cfg.server, s_cfg.model, prompts, max_new_tokens=f.max_new_tokens, chat=s_cfg.chat
            )
            work["failed_requests"] += sum(t is None for t in texts)
            return texts
        return greedy_responses(
            src.model, src.tokenizer, prompts, max_new_tokens=f.max_new_tokens, batch_size=batch,
            chat=src.chat, progress=cfg.progress and is_main_process(), desc=f"answers of {src.name}",
        )  # fmt: skip

    chunk = batch * world_size() * 8
    got: dict[str, str] = {}
    for start in range(0, len(todo), chunk):
        part = list(todo[start : start + chunk])
        texts = map_sharded(counted(answer, work, "answered"), part)
        if cache is not None:
            answered = [(s, t) for s, t in zip(part, texts, strict=True) if t is not None]
            cache.extend({"key": _answer_id(prefix, s), "text": t} for s, t in answered)
        got.update({s.uid: "" if t is None else t for s, t in zip(part, texts, strict=True)})
    return got


def build_modes(
    cfg: ExperimentConfig, world, target: ModelSide, samples: list[Sample], reward, out: Path
) -> Modes:
    """Both modes' items (module docstring). A source whose stores and answers are all on disk is not loaded."""
    cache = JsonlCache(out / "generations.jsonl") if is_main_process() else None
    gt_stores, own_reps, rewards, own_ce = {}, [], [], []
    k, work = cfg.fusion.k, Counter()
    build = {"k": k, "progress": cfg.progress, "batch_size": cfg.fusion.represent_batch, "work": work}
    for s_cfg in cfg.sources:
        name = s_cfg.name
        fingerprint = source_fingerprint(cfg, s_cfg, world)
        ident = ModelSide(name, None, None, fingerprint=fingerprint).ident
        gt_store = RepresentationStore(out / "reps" / "training" / name)
        own_store = RepresentationStore(out / "reps" / "inference" / name)
        prefix = f"{ident}/{answer_key(cfg, s_cfg)}/"  # answers of this model, with these generation settings
        known = main_decides(
            {
                s.uid: cache.get(_answer_id(prefix, s))["text"]
                for s in samples
                if _answer_id(prefix, s) in cache
            }
            if cache is not None
            else None
        )
        todo = [s for s in samples if s.uid not in known]
        own = None if todo else [Sample(s.uid, s.prompt, known[s.uid]) for s in samples]
        cached = main_decides(
            own is not None
            and gt_store.is_complete(RepresentationStore.key(ident, target.ident, samples, k))
            and own_store.is_complete(RepresentationStore.key(ident, target.ident, own, k))
        )
        # a finished source is not loaded again (at paper scale: 7B weights, on every rank of a launch)
        src = (
            ModelSide(name, None, None, fingerprint=fingerprint)
            if cached
            else load_source(cfg, s_cfg, world, out)
        )
        gt_stores[name] = gt_store.build(src, target, samples, **build).load()
        if todo:
            known.update(_answers(cfg, s_cfg, src, todo, cache, work, prefix))
            own = [Sample(s.uid, s.prompt, known[s.uid]) for s in samples]
        loaded = own_store.build(src, target, own, **build).load()
        own_reps.append([loaded[s.uid] for s in samples])
        own_ce.append([loaded[s.uid].ce for s in samples])
        pairs = [(s.prompt, o.response) for s, o in zip(samples, own, strict=True)]
        score = counted(lambda part: reward.score([p for p, _ in part], [r for _, r in part]), work, "scored")
        rewards.append(map_sharded(score, pairs))
        del src
    uids = check_same_samples(gt_stores)
    names = [s.name for s in cfg.sources]
    ce = np.array([[gt_stores[n][u].ce for u in uids] for n in names])
    t_choice = training_mode_choice(ce)
    training_items = [
        to_item(fuse([gt_stores[n][u] for n in names], int(c))) for u, c in zip(uids, t_choice, strict=True)
    ]
    rewards_arr = np.array(rewards)
    i_choice = inference_mode_choice(rewards_arr, tie_break=np.array(own_ce))
    inference_items = [to_item(own_reps[int(c)][i]) for i, c in enumerate(i_choice)]
    return Modes(training_items, inference_items, t_choice, i_choice, ce, rewards_arr, ranks_work(work))
