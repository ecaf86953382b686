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


class Generator:
    """``gen(prompts) -> completions``: greedy, stops at EOS, prompts longer than ``max_length - max_new_tokens``
    tokens keep their end (the official training truncates from the left)."""

    def __init__(
        self, model_dir: str | Path, max_new_tokens: int = 64, max_length: int = 4096, batch_size: int = 16
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.budget = max_length - max_new_tokens

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> list[str]:
        tok, out = self.tok, []
        side, tok.padding_side = tok.padding_side, "left"
        try:
            for s in range(0, len(prompts), self.batch_size):
                ids = [
                    tok(prompt_text(p), add_special_tokens=False)["input_ids"][-self.budget :]
                    for p in prompts[s : s + self.batch_size]
                ]
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
    """The same interface on an OpenAI-compatible completions server (vLLM, TGI, ...): ``POST <base_url>/completions``
    with the prompt text, greedy (temperature 0), stopping at ``stop``. Serve each trained role model under a name
    and give that name as ``model``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        max_new_tokens: int = 64,
        stop: Sequence[str] = (END,),
        timeout: float = 600.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.max_new_tokens, self.stop, self.timeout = model, max_new_tokens, list(stop), timeout

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        import json
        import urllib.request

        if not prompts:
            return []
        body = {
            "model": self.model,
            "prompt": [prompt_text(p) for p in prompts],
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
            "stop": self.stop,
        }
        req = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            choices = json.loads(r.read().decode())["choices"]
        if len(choices) != len(prompts):
            raise RuntimeError(f"{self.url}: {len(choices)} completions for {len(prompts)} prompts")
        return [c["text"].strip() for c in sorted(choices, key=lambda c: c.get("index", 0))]

    def one(self, prompt: str) -> str:
        return self([prompt])[0]


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
