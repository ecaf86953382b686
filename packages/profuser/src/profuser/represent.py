"""Source representations (FuseLLM Sec. 3.2-3.3, whose pipeline ProFuser reuses): each source's top-k next-token distributions on
a response under teacher forcing, carried onto the target's tokens, stored sparsely on disk.

For a sample (prompt, response), every model reads its own prompt text (its chat template at paper scale) followed by
the response and its EOS. Only the response is aligned (:func:`profuser.align.align_tokens`), so the two models'
prompt formats may differ.

**Off-by-one.** Row ``i`` of a stored sample is the distribution *over* target response token ``i`` -- i.e. the
source's logits at the position before the source token that starts the same text (:func:`source_rows`). The loss
(:mod:`profuser.losses`) scores it against the student's logits one position earlier, exactly as the label.
Target tokens without a source token starting with them (the target split a source token) get no row (-1 ids) and
fall back to the ground-truth label, as in FuseLLM.

Storage (:class:`RepresentationStore`): ``manifest.json`` plus ``shard-NNNNN.npz`` files of ``shard_size`` samples,
each written atomically, so an interrupted build resumes at the first missing shard. Per sample: the target ids of
prompt + response (int32), the prompt length, ``k`` target ids and log-probabilities per response token (int32,
float16) and the source's mean cross entropy on the response (training-mode advantage, FuseLLM's ``metric_ce``).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from paperlab.io import DataError, atomic_write_bytes, atomic_write_json, derived_key, read_json
from paperlab.scale import is_main_process, map_sharded, world_size
from profuser.align import Tokenized, VocabMapping, align_tokens, one_to_one_sources, tokenize
from profuser.generate import encode_prompt
from profuser.ranks import barrier, main_decides


class RepresentationError(DataError):
    """Stored representations that do not fit together, or samples that cannot be represented (names the folders
    and the samples): a :class:`paperlab.io.DataError` (one line, exit 2 from the command line)."""


@dataclass
class Sample:
    """A prompt and the response the target learns (the ground truth, or a source's answer in inference mode)."""

    uid: str
    prompt: str
    response: str


@dataclass
class SampleRep:
    """One sample seen by one source, in target positions.

    ``target_ids`` (n,) prompt + response + EOS in the target tokenizer; ``n_prompt`` how many of them are prompt;
    ``topk_ids`` / ``topk_logp`` (n - n_prompt, k): the source's distribution over each response token (target ids,
    -1 = none); ``ce`` the source's mean next-token cross entropy on the response (incl. EOS)."""

    uid: str
    target_ids: np.ndarray
    n_prompt: int
    topk_ids: np.ndarray
    topk_logp: np.ndarray
    ce: float


@dataclass
class ModelSide:
    """A model with its tokenizer and whether prompts go through its chat template; ``fingerprint`` says what the
    model is (its settings and files, :func:`paperlab.io.derived_key`), so that stores of another model under the
    same name are not reused."""

    name: str
    model: object
    tokenizer: object
    chat: bool = False
    fingerprint: str = ""

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.fingerprint}" if self.fingerprint else self.name


def _encode(side: ModelSide, sample: Sample) -> tuple[list[int], Tokenized]:
    """Prompt ids (with the model's own template) and the response tokenisation with spans relative to the
    response text; EOS is appended to the response with an empty span at its end."""
    tok = side.tokenizer
    prompt_ids = encode_prompt(tok, sample.prompt, side.chat)
    resp = tokenize(tok, sample.response)
    end = len(sample.response)
    eos = tok.eos_token_id
    spans = None if resp.spans is None else np.vstack([resp.spans, [[end, end]]])
    return list(prompt_ids), Tokenized([*resp.ids, eos], [*resp.texts, tok.eos_token], spans)


def source_rows(aligned_first: np.ndarray, n_src_prompt: int) -> np.ndarray:
    """Position in the source's full sequence whose logits predict the source token standing for each target
    response token: the token at ``n_src_prompt + j`` is predicted at ``n_src_prompt + j - 1``; -1 stays -1."""
    return np.where(aligned_first >= 0, n_src_prompt + aligned_first - 1, -1)


@torch.no_grad()
def represent_batch(
    source: ModelSide, target: ModelSide, mapping: VocabMapping, samples: Sequence[Sample], k: int
) -> list[SampleRep]:
    """Teacher-forced forward of ``source`` on a batch of samples; top-k, alignment and mapping per sample."""
    enc_src = [_encode(source, s) for s in samples]
    enc_tgt = [_encode(target, s) for s in samples]
    for sample, (prompt_ids, _), (tgt_prompt, _) in zip(samples, enc_src, enc_tgt, strict=True):
        if not prompt_ids or not tgt_prompt:
            raise RepresentationError(
                f"sample {sample.uid!r}: the prompt is empty after tokenisation; the first "
                "response token would have no position predicting it"
            )
    rows = [p + r.ids for p, r in enc_src]
    width = max(len(r) for r in rows)
    pad = source.tokenizer.pad_token_id if source.tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    device = next(source.model.parameters()).device
    logits = source.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    top_logp, top_ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
    top_logp, top_ids = top_logp.cpu().numpy(), top_ids.cpu().numpy()
    logp = logp.cpu()
    out = []
    for b, sample in enumerate(samples):
        src_prompt, src_resp = enc_src[b]
        tgt_prompt, tgt_resp = enc_tgt[b]
        n_sp = len(src_prompt)
        resp_positions = torch.arange(n_sp - 1, n_sp - 1 + len(src_resp.ids))
        token_logp = logp[b, resp_positions, torch.tensor(src_resp.ids)]
        ce = float(-token_logp.mean())
        first = one_to_one_sources(align_tokens(src_resp, tgt_resp))
        rows_b = source_rows(first, n_sp)
        have = rows_b >= 0
        t_ids = np.full((len(tgt_resp.ids), top_ids.shape[-1]), -1, dtype=np.int32)
        t_logp = np.zeros((len(tgt_resp.ids), top_ids.shape[-1]), dtype=np.float16)
        t_ids[have] = mapping(top_ids[b, rows_b[have]])
        t_logp[have] = top_logp[b, rows_b[have]]
        out.append(
            SampleRep(
                sample.uid,
                np.asarray(tgt_prompt + tgt_resp.ids, dtype=np.int32),
                len(tgt_prompt),
                t_ids,
                t_logp,
                ce,
            )
        )
    return out


def _pack(reps: Sequence[SampleRep]) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        uids=np.asarray([r.uid for r in reps]),
        target_ids=np.concatenate([r.target_ids for r in reps]),
        target_len=np.asarray([len(r.target_ids) for r in reps], dtype=np.int64),
        n_prompt=np.asarray([r.n_prompt for r in reps], dtype=np.int64),
        topk_ids=np.concatenate([r.topk_ids for r in reps]),
        topk_logp=np.concatenate([r.topk_logp for r in reps]),
        ce=np.asarray([r.ce for r in reps], dtype=np.float64),
    )
    return buf.getvalue()


def _unpack(path: Path) -> list[SampleRep]:
    try:
        data = np.load(path)
        lens, n_prompt = data["target_len"], data["n_prompt"]
        ids_at = np.concatenate([[0], np.cumsum(lens)])
        rows_at = np.concatenate([[0], np.cumsum(lens - n_prompt)])
        return [
            SampleRep(
                str(u),
                data["target_ids"][ids_at[i] : ids_at[i + 1]],
                int(n_prompt[i]),
                data["topk_ids"][rows_at[i] : rows_at[i + 1]],
                data["topk_logp"][rows_at[i] : rows_at[i + 1]],
                float(data["ce"][i]),
            )
            for i, u in enumerate(data["uids"])
        ]
    except (KeyError, ValueError, OSError) as err:
        raise RepresentationError(f"{path}: not a representation shard ({err})") from err


class RepresentationStore:
    """One source's representations of one sample list, in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise RepresentationError(f"{self.folder}: no manifest.json (build the representations first)")
        return read_json(self.manifest_path)

    @staticmethod
    def key(source: str, target: str, samples: Sequence[Sample], k: int, shard_size: int = 256) -> str:
        """What a store is derived from (:func:`paperlab.io.derived_key`): the two models (their
        :attr:`ModelSide.ident`: name and fingerprint), k, the shard size and every sample's uid, prompt and
        response."""
        return derived_key(
            {
                "source": source,
                "target": target,
                "k": k,
                "shard_size": shard_size,
                "samples": [[s.uid, s.prompt, s.response] for s in samples],
            },
            length=16,
        )

    def is_complete(self, key: str) -> bool:
        """A finished build of the samples behind ``key`` is on disk (the models are then not needed)."""
        if not self.manifest_path.exists():
            return False
        info = self.manifest()
        done = info.get("key") == key and info.get("complete", False)
        return done and all((self.folder / name).exists() for name in info["shards"])

    def build(
        self,
        source: ModelSide,
        target: ModelSide,
        samples: Sequence[Sample],
        *,
        k: int = 10,
        shard_size: int = 256,
        batch_size: int = 16,
        mapping: VocabMapping | None = None,
        progress: bool = True,
        work: Counter | None = None,
    ) -> RepresentationStore:
        """Build (or finish building) the store; shards already on disk for the same samples are kept.

        Under a launch of several processes every rank calls it: each shard's samples are split over the ranks
        (:func:`paperlab.scale.map_sharded`) and the main process writes the shard and the manifest; what is on disk
        is read by the main process and broadcast, and the call returns once the store is complete for all ranks.
        ``work`` (a ``Counter``) counts this rank's represented samples."""
        uids = [s.uid for s in samples]
        if len(set(uids)) != len(uids):
            raise RepresentationError(f"{self.folder}: sample uids are not unique")
        key = self.key(source.ident, target.ident, samples, k, shard_size)
        n_shards = (len(samples) + shard_size - 1) // shard_size
        info = {
            "key": key,
            "source": source.name,
            "target": target.name,
            "k": k,
            "n_samples": len(samples),
            "shards": [f"shard-{i:05d}.npz" for i in range(n_shards)],
            "complete": False,
        }
        todo = main_decides(self._start(info) if is_main_process() else None)
        if todo is None:  # complete already
            return self
        if todo:
            mapping = mapping or VocabMapping.between(
                source.tokenizer, target.tokenizer, source_name=source.name
            )
        main = is_main_process()
        bar = tqdm(
            total=sum(min(shard_size, len(samples) - i * shard_size) for i in todo),
            desc=f"represent {source.name}",
            disable=not (progress and main),
            leave=False,
        )

        def represent(part: list[Sample]) -> list[SampleRep]:
            reps: list[SampleRep] = []
            for start in range(0, len(part), batch_size):
                reps += represent_batch(source, target, mapping, part[start : start + batch_size], k)
                bar.update(len(part[start : start + batch_size]) * world_size())
            if work is not None:
                work["represented"] += len(part)
            return reps

        for i in todo:
            reps = map_sharded(represent, list(samples[i * shard_size : (i + 1) * shard_size]))
            if main:
                atomic_write_bytes(self.folder / info["shards"][i], _pack(reps))
        bar.close()
        if main:
            atomic_write_json(self.manifest_path, {**info, "complete": True})
        barrier()
        return self

    def _start(self, info: dict) -> list[int] | None:
        """Main process: ``None`` when the store is complete, else write the manifest (clearing the shards of
        another build) and return the shards still to build."""
        if self.is_complete(info["key"]):
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists() and self.manifest().get("key") != info["key"]:
            for old in self.folder.glob("shard-*.npz"):
                old.unlink()
        atomic_write_json(self.manifest_path, info)
        return [i for i, name in enumerate(info["shards"]) if not (self.folder / name).exists()]

    def load(self) -> dict[str, SampleRep]:
        info = self.manifest()
        if not info.get("complete"):
            raise RepresentationError(f"{self.folder}: build did not finish (run it again to resume)")
        out: dict[str, SampleRep] = {}
        for name in info["shards"]:
            for rep in _unpack(self.folder / name):
                out[rep.uid] = rep
        if len(out) != info["n_samples"]:
            raise RepresentationError(
                f"{self.folder}: {len(out)} samples on disk, manifest says {info['n_samples']}"
            )
        return out


def check_same_samples(stores: dict[str, dict[str, SampleRep]]) -> list[str]:
    """The common uids (in the first store's order) of several sources' representations; any difference in the
    sample sets or in the target ids of a sample raises :class:`RepresentationError` naming both sources."""
    names = list(stores)
    if not names:
        raise RepresentationError("no stored representations given")
    first = stores[names[0]]
    for name in names[1:]:
        other = stores[name]
        missing, extra = sorted(set(first) - set(other)), sorted(set(other) - set(first))
        if missing or extra:
            raise RepresentationError(
                f"sample ids differ between {names[0]!r} and {name!r}: {len(missing)} only in {names[0]!r} "
                f"(e.g. {missing[:3]}), {len(extra)} only in {name!r} (e.g. {extra[:3]}); build both from one "
                f"sample list"
            )
        for uid, rep in first.items():
            if not np.array_equal(rep.target_ids, other[uid].target_ids):
                raise RepresentationError(
                    f"sample {uid!r}: target token ids differ between {names[0]!r} and {name!r}; both must be built "
                    f"with the same target tokenizer and the same response"
                )
    return list(first)
