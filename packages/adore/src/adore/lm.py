"""``adore-lm``: perplexity on real English text vs cache budget, for every policy.

The corpus is built offline from the long descriptions (READMEs) of the Python distributions installed beside this
package (``importlib.metadata``): real English prose with code, names repeated across paragraphs and tables, so
some tokens are predictable only from far back. Documents are split into train/eval by a hash of the distribution
name; a byte-level BPE tokenizer and a tiny Llama are trained on the train part (cached), the controller on oracle
top-K labels of training windows; each policy then decodes held-out windows token by token after a short prefill
and we report perplexity on the tokens after the prefill (PG19-style LM evaluation at small scale).

``corpus: python`` (``make adore-lm-code``, issue 30 item 4): the same on the installed distributions' Python
sources (one document per distribution, split by distribution), where identifiers recur far from their definition;
the trained LM's induction behaviour is checked (loss on a repeated random sequence) and reported.

Scale-out (``make adore-paper``, a GPU): ``model`` names a hub or local Llama/Qwen2/Mistral checkpoint (used frozen,
eager attention, no training) and ``text_files`` points at real text (e.g. PG19 books as ``.txt``, a file or a
folder per entry); everything else is the same code path.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from adore.controller import ControllerConfig, controller_checkpoint, train_controller
from adore.decode import full_attention_map, run_sequence
from adore.registry import POLICIES, budget_tokens, check_names, manual
from adore.tasks import checkpoint_finished, fit_lm, fixed_threads, single_process
from paperlab.config import require
from paperlab.data import cache_root
from paperlab.io import DataError, MissingFileError, atomic_write_text, derived_key, load_checkpoint
from paperlab.report import plot_lines, results_dir, write_results
from paperlab.scale import ScaleConfig
from paperlab.seed import seed_everything

log = logging.getLogger(__name__)
LM_POLICIES = (
    "full",
    "window",
    "streaming_llm",
    "h2o",
    "tova",
    "random",
    "adore",
    "adore+rebuild",
)  # the default


def docs_corpus(min_chars: int = 2000) -> tuple[list[str], list[str], str]:
    """``(train_docs, eval_docs, digest)`` from installed distributions' long descriptions (sorted by name; every
    fifth document by name hash goes to eval). ``digest`` identifies the corpus (it depends on the environment)."""
    import importlib.metadata as md

    docs: dict[str, str] = {}
    for dist in md.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if name and len(text) >= min_chars and name not in docs:
            docs[name] = text.replace("\r\n", "\n")
    if len(docs) < 5:
        raise RuntimeError(
            f"only {len(docs)} installed distributions have a long description of >= {min_chars} characters; "
            "adore-lm needs at least 5 (install the workspace with `make setup`)"
        )
    train, held = [], []
    for name in sorted(docs):
        (held if int(hashlib.sha256(name.encode()).hexdigest(), 16) % 5 == 0 else train).append(docs[name])
    digest = hashlib.sha256("\0".join(docs[n] for n in sorted(docs)).encode()).hexdigest()[:12]
    return train, held, digest


def python_corpus(max_chars: int = 60_000) -> tuple[list[str], list[str], str]:
    """``(train_docs, eval_docs, digest)`` from the Python source files of the installed distributions: one
    document per distribution (its ``.py`` files in path order, at most ``max_chars`` characters), every fifth
    distribution by name hash held out. Code repeats identifiers defined far back (imports, names, signatures), so
    some tokens are predictable only from long range: the text the issue asks the budgets to be tested on."""
    import importlib.metadata as md

    docs: dict[str, str] = {}
    for dist in md.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if not name or name in docs:
            continue
        parts, size = [], 0
        for f in sorted((f for f in dist.files or [] if str(f).endswith(".py")), key=str):
            try:
                text = Path(dist.locate_file(f)).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            parts.append(text)
            size += len(text)
            if size >= max_chars:
                break
        if parts:
            docs[name] = "\n".join(parts)[:max_chars]
    if len(docs) < 5:
        raise RuntimeError(f"only {len(docs)} installed distributions ship Python files; need at least 5")
    train, held = [], []
    for name in sorted(docs):
        (held if int(hashlib.sha256(name.encode()).hexdigest(), 16) % 5 == 0 else train).append(docs[name])
    digest = hashlib.sha256("\0".join(docs[n] for n in sorted(docs)).encode()).hexdigest()[:12]
    return train, held, digest


@torch.no_grad()
def induction_losses(
    model: Any, vocab: int, length: int = 48, n: int = 16, seed: int = 0
) -> tuple[float, float]:
    """Mean next-token loss on ``n`` random sequences of ``length`` distinct tokens, repeated once: ``(first copy,
    second copy)``. A model with induction behaviour (it copies what followed the previous occurrence of the current
    token) predicts the second copy far better than the first, which is random (about log vocab)."""
    if vocab - 3 < length:
        raise ValueError(f"induction check: a vocabulary of {vocab} has fewer than {length} ordinary tokens")
    g = torch.Generator().manual_seed(seed)  # distinct tokens per sequence (ids >= 3: not BOS / EOS / PAD)
    first = torch.stack([torch.randperm(vocab - 3, generator=g)[:length] + 3 for _ in range(n)])
    ids = torch.cat([first, first], dim=1)
    device = next(model.parameters()).device
    logits = model(ids.to(device)).logits[:, :-1].float().cpu()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    loss = loss.view(n, -1)
    return float(loss[:, : length - 1].mean()), float(loss[:, length:].mean())


@dataclass
class LMExperimentConfig:
    name: str = "lm"
    model: str = ""  # "" = train a tiny Llama here; else a hub id or local path (used frozen)
    text_files: list[str] = field(default_factory=list)  # [] = the corpus below; else .txt files/folders
    corpus: str = "docs"  # with no text_files: "docs" (installed READMEs) or "python" (installed .py sources)
    dtype: str = "auto"
    device: str = "auto"
    vocab_size: int = 2048
    window: int = 256  # tokens per training / evaluation window
    layers: int = 4
    hidden: int = 128
    heads: int = 4
    steps: int = 1500
    batch: int = 16
    lr: float = 3e-3
    checkpoint_every: int = (
        100  # LM training steps between checkpoints of its training state (0: only at the end)
    )
    controller: ControllerConfig = field(default_factory=lambda: ControllerConfig(sequences=16, epochs=2))
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])
    prefill: int = 32
    rebuild: int = 2
    rebuild_context: int = 1
    eval_windows: int = 12
    policies: list[str] = field(default_factory=lambda: list(LM_POLICIES))
    seed: int = 0
    threads: int = 1  # torch threads, pinned: the trained weights and the table depend on it
    progress: bool = True
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # the GPU the config is meant for (dry run)

    def __post_init__(self) -> None:
        single_process(self.scale, "lm.scale")
        require(self.corpus in ("docs", "python"), "corpus", self.corpus, "'docs' or 'python'")
        require(self.threads >= 0, "threads", self.threads, ">= 0 (0: inherit the thread count)")
        require(self.window >= 16, "window", self.window, ">= 16")
        require(1 <= self.prefill < self.window, "prefill", self.prefill, f"in [1, window={self.window})")
        require(all(0 < b <= 1 for b in self.budgets), "budgets", self.budgets, "fractions in (0, 1]")
        check_names(self.policies)


def text_corpus(paths: list[str]) -> tuple[list[str], list[str], str]:
    """``(train_docs, eval_docs, digest)`` from ``.txt`` files (a folder contributes its ``*.txt``, sorted); every
    fifth document by file name hash is held out."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if path.is_dir():
            files += sorted(path.glob("*.txt"))
        elif path.is_file():
            files.append(path)
        else:
            raise MissingFileError(f"lm.text_files: {path} is neither a .txt file nor a folder")
    if len(files) < 2:
        raise DataError(
            f"lm.text_files: found {len(files)} text file(s) in {paths}; need at least 2 (train + eval)"
        )
    train, held = [], []
    digest = hashlib.sha256()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        digest.update(text.encode())
        (held if int(hashlib.sha256(path.name.encode()).hexdigest(), 16) % 5 == 0 else train).append(text)
    if not held:
        held.append(train.pop())
    if not train:
        train.append(held.pop())
    return train, held, digest.hexdigest()[:12]


LM_KEY_FIELDS = (
    "vocab_size",
    "window",
    "layers",
    "hidden",
    "heads",
    "steps",
    "batch",
    "lr",
    "seed",
    "threads",
)


def lm_cache_dir(cfg: LMExperimentConfig, digest: str) -> Path:
    """Cache folder of the tokenizer and the trained LM: keyed by the fields that shape them, the corpus digest and
    the text files (path, size, modification time: a renamed, replaced or touched file is a new corpus)."""
    settings = {**{k: getattr(cfg, k) for k in LM_KEY_FIELDS}, "corpus": digest}
    return cache_root() / "adore" / f"text-lm-{derived_key(settings, cfg.text_files)}"


def _windows(tokenizer: Any, docs: list[str], window: int) -> torch.Tensor:
    ids: list[int] = []
    for doc in docs:
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        ids += [*bos, *tokenizer(doc, add_special_tokens=False)["input_ids"]]
    n = len(ids) // window
    if n == 0:
        raise ValueError(f"the text gives {len(ids)} tokens, fewer than one window of {window}")
    return torch.tensor(ids[: n * window], dtype=torch.long).view(n, window)


def train_text_lm(cfg: LMExperimentConfig, train: torch.Tensor, vocab: int, checkpoint: Path) -> Any:
    """A tiny Llama (eager attention) trained on the training windows; ``checkpoint`` holds its training state
    (saved every ``cfg.checkpoint_every`` steps, resumed when unfinished, loaded when finished)."""
    from paperlab.models import tiny_causal_lm

    model = tiny_causal_lm(
        vocab_size=vocab,
        layers=cfg.layers,
        hidden=cfg.hidden,
        heads=cfg.heads,
        max_position=cfg.window + 8,
        seed=cfg.seed,
        attn_implementation="eager",
    )
    if checkpoint_finished(checkpoint, cfg.steps):
        load_checkpoint(checkpoint, model=model, restore_rng=False)
        return model.eval()
    g = torch.Generator().manual_seed(cfg.seed)

    def next_batch(step: int) -> tuple[torch.Tensor, None]:
        return train[torch.randint(len(train), (cfg.batch,), generator=g)], None

    fit_lm(
        model,
        next_batch,
        cfg.steps,
        cfg.lr,
        weight_decay=0.1,
        pct_start=0.05,
        desc="text LM",
        progress=cfg.progress,
        log_every=100,
        checkpoint=checkpoint,
        checkpoint_every=cfg.checkpoint_every,
        generators={"batches": g},
    )
    return model.eval()


def _local(model: str) -> list[str]:
    """``[model]`` when it names a local checkpoint folder (an input of what is derived from it), else ``[]``."""
    return [model] if model and Path(model).expanduser().exists() else []


def run_lm(cfg: LMExperimentConfig) -> dict[str, Any]:
    """Perplexity of every policy at every budget (``cfg.threads`` torch threads throughout)."""
    with fixed_threads(cfg.threads):
        return _run_lm(cfg)


def _run_lm(cfg: LMExperimentConfig) -> dict[str, Any]:
    from paperlab.models import train_tiny_tokenizer

    seed_everything(cfg.seed)
    if cfg.text_files:
        train_docs, eval_docs, digest = text_corpus(cfg.text_files)
    else:
        train_docs, eval_docs, digest = python_corpus() if cfg.corpus == "python" else docs_corpus()
    folder = lm_cache_dir(cfg, digest)
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.model:
        from paperlab.models import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
        tokenizer.model_max_length = 10**9
    elif (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    else:
        tokenizer = train_tiny_tokenizer(train_docs, vocab_size=cfg.vocab_size, model_max_length=1_000_000)
        tokenizer.save_pretrained(folder)
    train = _windows(tokenizer, train_docs, cfg.window)
    held = _windows(tokenizer, eval_docs, cfg.window)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    held = held[torch.randperm(len(held), generator=g)[: cfg.eval_windows]]
    log.info(
        "corpus %s: %d train windows, %d eval windows of %d tokens", digest, len(train), len(held), cfg.window
    )
    if cfg.model:
        from paperlab.models import load_causal_lm

        lm = load_causal_lm(cfg.model, dtype=cfg.dtype, device=cfg.device, attn_implementation="eager").eval()
    else:
        lm = train_text_lm(cfg, train, len(tokenizer), folder / "lm.pt")
    induction = induction_losses(lm, len(tokenizer), seed=cfg.seed)
    log.info("induction: loss %.2f on a random sequence, %.2f on its repeat", *induction)
    ctl_ids = train[torch.randperm(len(train), generator=g)[: cfg.controller.sequences]]
    origin = {
        "lm": folder.name,
        "model": cfg.model,
        "dtype": cfg.dtype,
        "device": cfg.device,
        "seed": cfg.seed,
    }
    checkpoint = controller_checkpoint(origin, cfg.controller, [*cfg.text_files, *_local(cfg.model)])
    controller = train_controller(lm, ctl_ids, cfg.controller, progress=cfg.progress, checkpoint=checkpoint)
    rows = []
    for fraction in cfg.budgets:
        budget = budget_tokens(fraction, cfg.window, cfg.rebuild)
        for name in cfg.policies:
            policy, dcfg, rebuild_controller = manual(
                name, budget, controller, cfg.rebuild, cfg.rebuild_context
            )
            dcfg.prefill = cfg.prefill
            nll, count = 0.0, 0
            for ids in tqdm(held, desc=f"{name} @ {budget}", disable=not cfg.progress, leave=False):
                future = full_attention_map(lm, ids) if POLICIES[name].needs_future else None
                out = run_sequence(lm, ids, policy, dcfg, controller=rebuild_controller, future=future)
                logits = out["logits"][cfg.prefill - 1 :]
                nll += float(F.cross_entropy(logits, ids[cfg.prefill :], reduction="sum"))
                count += logits.shape[0]
            rows.append(
                {
                    "budget": f"{round(100 * fraction)}% ({budget} tok)",
                    "fraction": fraction,
                    "policy": name,
                    "perplexity": math.exp(nll / count),
                }
            )
            log.info("%s", rows[-1])
    full = {r["fraction"]: r["perplexity"] for r in rows if r["policy"] == "full"}
    for r in rows:
        if r["fraction"] in full:
            r["vs full %"] = 100 * (r["perplexity"] / full[r["fraction"]] - 1)
    out_dir = results_dir("adore", cfg.name)
    source = (
        "the given text files"
        if cfg.text_files
        else "Python sources of the installed distributions"
        if cfg.corpus == "python"
        else "long descriptions of the installed distributions"
    )
    plot_lines(
        out_dir / "perplexity_vs_budget.png",
        [100 * b for b in cfg.budgets],
        {p: [r["perplexity"] for r in rows if r["policy"] == p] for p in cfg.policies},
        xlabel="cache budget (% of the window)",
        ylabel="perplexity",
        title=f"{source}: perplexity under a KV budget",
    )
    metrics = {
        "rows": rows,
        "corpus": digest,
        "train_windows": len(train),
        "window": cfg.window,
        "induction_loss_first_copy": induction[0],
        "induction_loss_repeat": induction[1],
    }
    write_results(
        out_dir,
        metrics,
        rows=rows,
        columns=["budget", "policy", "perplexity", "vs full %"],
        title=f"ADORE: perplexity vs budget ({source})",
        notes=(
            f"Corpus {digest} ({source}), {len(train)} training windows of {cfg.window} tokens; perplexity on "
            f"{len(held)} held-out windows after a {cfg.prefill}-token prefill. Induction check: next-token loss "
            f"{induction[0]:.2f} on random token sequences, {induction[1]:.2f} on their repeat."
        ),
    )
    atomic_write_text(out_dir / "corpus.txt", f"{digest}\n")
    print((out_dir / "results.md").read_text())
    return metrics
