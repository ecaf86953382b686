"""The ``irl_sft-tiny`` task: a tiny Llama pretrained on one Markov language, demonstrations from another "style".

- Language A (pretraining): a Markov chain over ``vocab`` symbols with Dirichlet(0.5) transition rows.
- Style B (demonstrations): ``logits_B = log P_A + style * Z`` (Z standard normal): the same symbols, a preferred
  way of chaining them. Sequences of ``length`` symbols after a BOS symbol (id ``vocab``).
- Base model: a tiny Llama trained on A (cached under the paperlab cache); every method starts from it and uses it
  as the implicit reward's reference in the metrics.

Methods (same number of gradient steps, same demonstrations):

- ``SFT``: maximum likelihood of the demonstrations.
- ``SPIN``: IRFT with T = 1 (one stage, reference = the starting model, generations from it).
- ``IRFT-T``: T stages; stage t uses the t-th of T slices of the demonstrations, generations from the current model
  (one per demonstration, refreshed at the stage start), reference = the model at the stage start.
- ``RFT``: a reward model (bigram table r(y_{t-1}, y_t), summed) trained with Bradley-Terry to rank demonstrations
  above current generations, alternating with RLOO steps on r - beta KL(pi || pi_start).

Metrics (held-out): implicit-reward ranking accuracy of (demonstration, base-model generation) pairs with
r = log pi - log pi_base; demonstration log-likelihood per token; and the total-variation distance between the
bigram statistics of 2,000 generations and those of style B (lower = closer to the demonstrated distribution).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from paperlab.config import ConfigError


@dataclass
class TaskConfig:
    vocab: int = 8
    length: int = 10
    style: float = 1.5  # strength of style B's departure from language A
    n_demo: int = 256
    n_heldout: int = 256
    pretrain_steps: int = 400
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (
            ("vocab", 2),
            ("length", 2),
            ("n_demo", 1),
            ("n_heldout", 1),
            ("pretrain_steps", 1),
        ):
            if getattr(self, name) < low:
                raise ConfigError(f"task.{name}={getattr(self, name)}: expected >= {low}")
        if self.style < 0:
            raise ConfigError(f"task.style={self.style}: expected >= 0")


def markov_sample(logits: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    probs = torch.softmax(logits, -1)
    y = torch.empty(n, length, dtype=torch.long)
    prev = torch.full((n,), probs.shape[0] - 1, dtype=torch.long)
    for t in range(length):
        y[:, t] = torch.multinomial(probs[prev], 1, generator=g).squeeze(1)
        prev = y[:, t]
    return y


def bigram_counts(y: torch.Tensor, vocab: int) -> torch.Tensor:
    """Normalised counts of (previous symbol or BOS, symbol) pairs, ``(vocab + 1, vocab)``, summing to 1."""
    prev = torch.cat([torch.full_like(y[:, :1], vocab), y[:, :-1]], dim=1)
    counts = torch.zeros(vocab + 1, vocab)
    counts.index_put_((prev.flatten(), y.flatten()), torch.ones(y.numel()), accumulate=True)
    return counts / counts.sum()


class Policy(nn.Module):
    """A causal LM over the task's symbols: input ``[BOS, y]``, outputs restricted to the ``vocab`` symbols."""

    def __init__(self, model: nn.Module, vocab: int, length: int) -> None:
        super().__init__()
        self.model, self.vocab, self.length = model, vocab, length

    def _logprobs(self, y: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([torch.full((y.shape[0], 1), self.vocab, dtype=torch.long), y], dim=1)
        return torch.log_softmax(self.model(input_ids=ids).logits[:, :, : self.vocab].float(), dim=-1)

    def logp(self, y: torch.Tensor) -> torch.Tensor:
        """Summed log-prob of each sequence, ``(n,)``."""
        return self._logprobs(y)[:, :-1].gather(-1, y[:, :, None]).squeeze(-1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        y = torch.empty(n, 0, dtype=torch.long)
        for _ in range(self.length):
            y = torch.cat([y, torch.multinomial(self._logprobs(y)[:, -1].exp(), 1, generator=g)], dim=1)
        return y


@dataclass
class Task:
    cfg: TaskConfig
    logits_a: torch.Tensor
    logits_b: torch.Tensor
    demos: torch.Tensor
    heldout: torch.Tensor
    base: Policy

    def fresh(self) -> Policy:
        policy = copy.deepcopy(self.base)
        for p in policy.parameters():
            p.requires_grad_(True)
        return policy.train()


def make_task(cfg: TaskConfig, layers: int = 2, hidden: int = 32, cache: bool = True) -> Task:
    """Draw languages A and B, the demonstrations, and pretrain (or load) the base model on A."""
    from paperlab.data import cache_root
    from paperlab.io import derived_key
    from paperlab.models import tiny_causal_lm

    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        rows = torch.distributions.Dirichlet(torch.full((cfg.vocab,), 0.5)).sample((cfg.vocab + 1,))
    logits_a = rows.clamp_min(1e-6).log()
    logits_b = logits_a + cfg.style * torch.randn(cfg.vocab + 1, cfg.vocab, generator=g)
    demos = markov_sample(logits_b, cfg.n_demo, cfg.length, g)
    heldout = markov_sample(logits_b, cfg.n_heldout, cfg.length, g)
    model = tiny_causal_lm(
        cfg.vocab + 1, layers=layers, hidden=hidden, heads=2, max_position=cfg.length + 2, seed=cfg.seed
    )
    base = Policy(model, cfg.vocab, cfg.length)
    what = {
        k: getattr(cfg, k) for k in ("vocab", "length", "seed", "pretrain_steps")
    }  # language A, its steps
    key = derived_key({**what, "layers": layers, "hidden": hidden, "lr": 3e-3, "batch": 64})
    path = cache_root() / "irl_sft" / f"base-{key}.pt"
    if cache and path.is_file():
        base.load_state_dict(torch.load(path, weights_only=True))
    else:
        opt = torch.optim.Adam(base.parameters(), lr=3e-3)
        gp = torch.Generator().manual_seed(cfg.seed + 1)
        for _ in range(cfg.pretrain_steps):
            loss = -base.logp(markov_sample(logits_a, 64, cfg.length, gp)).mean() / cfg.length
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if cache:
            from paperlab.io import atomic_torch_save

            atomic_torch_save(base.state_dict(), path)
    for p in base.parameters():
        p.requires_grad_(False)
    return Task(cfg, logits_a, logits_b, demos, heldout, base.eval())
