"""Greedy generation from a fine-tuned role model (the prompt as in training: ``system: <input>``), and the static
evaluation of a system on test trajectories (official ``infer_pipeline.py``: the planner predicts every step, then
the caller or the summarizer continues the steps it handed to them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from alpha_umi.data import END, Trajectory, backbone_samples, eval_steps, fill, prompt_text, serialise
from alpha_umi.runtime import backbone_to_agent_text, cut_plan

Batch = Callable[[Sequence[str]], list[str]]

__all__ = ["Batch", "Generator", "ServerGenerator", "Sharded", "predict_multi", "predict_single"]


class Generator:
    """``gen(prompts) -> completions``: greedy, stops at EOS, on this rank's own device
    (:func:`paperlab.scale.load_for_inference`: bf16 on CUDA, fp32 on CPU); prompts are encoded as at training
    (:func:`alpha_umi.tokens.encode_prompt`, BOS included) and longer than ``max_length - max_new_tokens`` tokens
    keep their end (the official training truncates from the left). The model loads at its first use and
    :meth:`release` frees it, so the static evaluation holds one role model at a time."""

    def __init__(
        self,
        model_dir: str | Path,
        max_new_tokens: int = 64,
        max_length: int = 4096,
        batch_size: int = 16,
        dtype: str = "auto",
    ) -> None:
        from alpha_umi.tokens import load_tokenizer

        self.tok = load_tokenizer(model_dir)
        self.model_dir, self.dtype, self._model = model_dir, dtype, None
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.budget = max_length - max_new_tokens

    @property
    def model(self) -> Any:
        if self._model is None:
            from paperlab.scale import load_for_inference

            self._model = load_for_inference(self.model_dir, dtype=self.dtype)
        return self._model

    def release(self) -> None:
        """Free the model (it loads again when next needed)."""
        import gc

        self._model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """The ids the model reads for each role input."""
        from alpha_umi.tokens import encode_prompt

        return [encode_prompt(self.tok, p)[-self.budget :] for p in prompts]

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> list[str]:
        tok, out = self.tok, []
        side, tok.padding_side = tok.padding_side, "left"
        try:
            for s in range(0, len(prompts), self.batch_size):
                ids = self.encode(prompts[s : s + self.batch_size])
                enc = tok.pad({"input_ids": ids}, return_tensors="pt").to(self.model.device)
                gen = self.model.generate(
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                )
                out += tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        finally:
            tok.padding_side = side
        return [o.strip() for o in out]

    def one(self, prompt: str) -> str:
        return self([prompt])[0]


class ServerGenerator:
    """The same interface on an OpenAI-compatible completions server (vLLM, TGI, ...) through
    :class:`paperlab.serving.OpenAIServer`: one request per prompt in the trained format (``system: <input>``),
    greedy, stopping at ``stop``, at most ``concurrency`` in flight, ``timeout_s`` each, retried with backoff, and
    cached in the JSONL ``cache_path`` so a restarted evaluation asks only for what is missing. Serve each trained
    role model under a name and give that name as ``model``. A prompt that still fails (or that the server
    refuses) answers "" -- the step it stands for is then wrong -- and is counted in :attr:`failures` (its error
    text in :attr:`errors`); the evaluation goes on and reports the count."""

    def __init__(
        self,
        base_url: str,
        model: str,
        max_new_tokens: int = 64,
        stop: Sequence[str] = (END,),
        *,
        timeout_s: float = 120.0,
        concurrency: int = 8,
        retries: int = 4,
        backoff_s: float = 1.0,
        cache_path: str | Path | None = None,
    ) -> None:
        from paperlab.serving import OpenAIServer, ServerConfig

        self.server = OpenAIServer(
            ServerConfig(
                base_url=base_url,
                model=model,
                max_tokens=max_new_tokens,
                stop=list(stop),
                timeout_s=timeout_s,
                concurrency=concurrency,
                retries=retries,
                backoff_s=backoff_s,
                cache_path=str(cache_path) if cache_path is not None else None,
            )
        )

        self.errors: list[str] = []

    @property
    def requests(self) -> int:
        """Requests sent so far (retries included)."""
        return self.server.requests_sent

    @property
    def failures(self) -> int:
        """Prompts that ended failed so far (cached failures included)."""
        return self.server.failures

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        done = self.server.complete([prompt_text(p) for p in prompts])
        self.errors += [c.error for c in done if c.error]
        return [c.text.strip() for c in done]

    def one(self, prompt: str) -> str:
        return self([prompt])[0]


class Sharded:
    """A batch generator whose prompts are split over the ranks (:func:`paperlab.scale.map_sharded`): every rank
    gets every completion, in order; ``local`` counts the prompts this rank generated. With ``release`` the
    generator's model is freed after each call (the static evaluation calls each role once)."""

    def __init__(self, gen: Batch, release: bool = False) -> None:
        self.gen, self.local, self.release = gen, 0, release

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        from paperlab.scale import map_sharded

        def mine(shard: list[str]) -> list[str]:
            self.local += len(shard)
            return self.gen(shard)

        out = map_sharded(mine, list(prompts))
        if self.release and hasattr(self.gen, "release"):
            self.gen.release()
        return out


def predict_multi(
    trajs: Sequence[Trajectory], planner: Batch, caller: Batch, summarizer: Batch, progress: bool = True
) -> list[dict[str, Any]]:
    """Static predictions of the three-role system for every evaluation step of ``trajs``."""
    steps = [s for t in trajs for s in eval_steps(t)]
    plans = [
        cut_plan(p)
        for p in planner(
            [
                fill("planner", s["traj"], s["history"])
                for s in tqdm(steps, desc="planner", disable=not progress)
            ]
        )
    ]
    to_call = [i for i, (k, _) in enumerate(plans) if k == "caller"]
    to_sum = [i for i, (k, _) in enumerate(plans) if k == "conclusion"]

    def after(i: int) -> str:  # the history the caller / summarizer see: the planner's turn appended
        return steps[i]["history"] + f"assistant: {plans[i][1]}{END}"

    calls = caller([fill("caller", steps[i]["traj"], after(i), thought=plans[i][1]) for i in to_call])
    sums = summarizer([fill("summarizer", steps[i]["traj"], after(i)) for i in to_sum])
    preds = [plan for _, plan in plans]  # give-up: the plan alone
    for i, c in zip(to_call, calls, strict=True):
        preds[i] = f"assistant: {plans[i][1]}{END}caller: {c}"
    for i, a in zip(to_sum, sums, strict=True):
        preds[i] = f"assistant: {plans[i][1]}{END}conclusion: {a}"
    return [
        {"tools": s["tools"], "reference": s["reference"], "prediction": p}
        for s, p in zip(steps, preds, strict=True)
    ]


def predict_single(trajs: Sequence[Trajectory], backbone: Batch) -> list[dict[str, Any]]:
    """Static predictions of the single-LLM baseline on the same steps (its prompts carry the merged history of the
    single-LLM data), converted to the multi-agent step format so that both are scored alike."""
    steps, prompts = [], []
    for t in trajs:
        by_len = {len(b["history"]): b["input"] for b in backbone_samples(t)}
        for s in eval_steps(t):
            steps.append(s)
            prompts.append(
                by_len.get(s["index"])
                or fill("backbone", t, "".join(serialise(x) for x in t.conversations[: s["index"]]))
            )
    outs = backbone(prompts)
    return [
        {"tools": s["tools"], "reference": s["reference"], "prediction": backbone_to_agent_text(o)}
        for s, o in zip(steps, outs, strict=True)
    ]
