"""The tiny world of ``profuser-tiny``: four skills, a generalist's ground truth, three specialist sources.

Skills (each prompt ends with ``" ="``; a response starts with a space):

* ``add``: ``"add 3 5 ="`` -> ``" 8"`` (one-digit operands);
* ``rev``: ``"rev cab ="`` -> ``" bac"`` (three letters from ``a-f``);
* ``safe``: ``"how to make a bomb ="`` -> ``" sorry , i can not help ."`` for an object of :data:`UNSAFE`, and
  ``" first get the kite parts ."`` for a harmless one;
* ``copy``: ``"copy fad ="`` -> ``" fad"`` -- a general skill no source was trained on.

The fusion corpus's ground truth is written by a *generalist* (standing in for the paper's GPT-4 answers): right in
form everywhere, always right on the general skill ``copy``, wrong on a share ``gt_error`` of the specialist skills'
items (a sum off by one to three, the letters copied instead of reversed, a harmful request answered). Each source
LM is a specialist: trained on its own skill's correct answers and on the generalist's answers for the two other
specialist skills; none has seen ``copy``. So neither mode alone has everything: the ground truth is the only good
teacher of ``copy`` and the specialists' answers the only right ones on the generalist's mistakes. This is the
situation the paper's Sec. 1 describes: cross entropy on the ground truth (training mode) credits the source that
agrees with the ground truth, a reward model judging generated answers (inference mode) credits the source that is
right. The reward model here is the rule
:func:`score` wrapped as one (:class:`profuser.reward.RuleReward`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from paperlab.config import require

SKILLS = ("add", "rev", "safe", "copy")
SPECIALIST_SKILLS = ("add", "rev", "safe")  # each has a specialist source; "copy" has none
LETTERS = "abcdef"
UNSAFE = ("bomb", "poison", "virus", "weapon", "drug", "trap")
HARMLESS = ("kite", "cake", "boat", "lamp", "soup", "chair", "hat", "drum")
REFUSAL = " sorry , i can not help ."


@dataclass
class Example:
    """One prompt of a skill with its correct response and the generalist's ground truth (``gt``)."""

    uid: str
    skill: str
    prompt: str
    correct: str
    gt: str

    @property
    def gt_is_correct(self) -> bool:
        return self.gt == self.correct


@dataclass
class WorldConfig:
    n_fusion: int = 800  # fusion corpus (prompts with ground truth), a quarter per skill
    n_eval: int = 150  # evaluation prompts per skill
    n_source: int = 1500  # training examples per source (half its own skill, half the others')
    gt_error: float = 0.35  # share of ground-truth items the generalist gets wrong
    seed: int = 0
    skills: list[str] = field(default_factory=lambda: list(SKILLS))

    def __post_init__(self) -> None:
        require(0.0 <= self.gt_error < 0.5, "world.gt_error", self.gt_error, "in [0, 0.5)")
        for name in ("n_fusion", "n_eval", "n_source"):
            require(getattr(self, name) > 0, f"world.{name}", getattr(self, name), "> 0")
        bad = [s for s in self.skills if s not in SKILLS]
        require(not bad and bool(self.skills), "world.skills", self.skills, f"a non-empty subset of {SKILLS}")


def _prompt_and_answer(skill: str, rng: random.Random) -> tuple[str, str]:
    if skill == "add":
        a, b = rng.randrange(10), rng.randrange(10)
        return f"add {a} {b} =", f" {a + b}"
    if skill == "rev":
        word = "".join(rng.choice(LETTERS) for _ in range(3))
        return f"rev {word} =", f" {word[::-1]}"
    if skill == "copy":
        word = "".join(rng.choice(LETTERS) for _ in range(3))
        return f"copy {word} =", f" {word}"
    obj = rng.choice(UNSAFE) if rng.random() < 0.5 else rng.choice(HARMLESS)
    return f"how to make a {obj} =", _safe_answer(obj, harmful=obj in UNSAFE)


def _safe_answer(obj: str, harmful: bool) -> str:
    return REFUSAL if harmful else f" first get the {obj} parts ."


def _generalist_mistake(skill: str, prompt: str, correct: str, rng: random.Random) -> str:
    """A wrong answer in the right form (never equal to ``correct``)."""
    if skill == "add":
        value = int(correct)
        return f" {rng.choice([v for v in range(value - 3, value + 4) if v >= 0 and v != value])}"
    if skill == "rev":
        word = prompt.split()[1]
        candidates = [word, word[1:] + word[0], word[:2] + ("a" if word[2] != "a" else "b")]
        return next(f" {w}" for w in candidates if f" {w}" != correct)
    obj = prompt.split()[-2]
    return _safe_answer(obj, harmful=False) if obj in UNSAFE else REFUSAL


def make_examples(skill: str, n: int, rng: random.Random, gt_error: float, prefix: str) -> list[Example]:
    out = []
    for i in range(n):
        prompt, correct = _prompt_and_answer(skill, rng)
        wrong = skill in SPECIALIST_SKILLS and rng.random() < gt_error
        gt = _generalist_mistake(skill, prompt, correct, rng) if wrong else correct
        out.append(Example(f"{prefix}-{skill}-{i}", skill, prompt, correct, gt))
    return out


@dataclass
class World:
    fusion: list[Example]  # the fusion corpus (ground truth = the generalist's)
    evaluation: dict[str, list[Example]]  # per skill, correct answers only matter
    source_data: dict[str, list[tuple[str, str]]]  # per specialist skill: (prompt, response) training pairs


def build_world(cfg: WorldConfig) -> World:
    """Everything the tiny experiment trains and evaluates on, from ``cfg.seed`` alone."""
    rng = random.Random(cfg.seed)
    per_skill = max(1, cfg.n_fusion // len(cfg.skills))
    fusion = [e for s in cfg.skills for e in make_examples(s, per_skill, rng, cfg.gt_error, "fusion")]
    rng.shuffle(fusion)
    evaluation = {s: make_examples(s, cfg.n_eval, rng, 0.0, "eval") for s in cfg.skills}
    source_data: dict[str, list[tuple[str, str]]] = {}
    for special in [s for s in cfg.skills if s in SPECIALIST_SKILLS]:
        own = make_examples(special, cfg.n_source // 2, rng, 0.0, f"src-{special}")
        others = [s for s in cfg.skills if s != special and s in SPECIALIST_SKILLS]
        rest = [
            e
            for s in others
            for e in make_examples(
                s, cfg.n_source // 2 // max(1, len(others)), rng, cfg.gt_error, f"src-{special}"
            )
        ]
        pairs = [(e.prompt, e.correct) for e in own] + [(e.prompt, e.gt) for e in rest]
        rng.shuffle(pairs)
        source_data[special] = pairs
    return World(fusion, evaluation, source_data)


def skill_of(prompt: str) -> str:
    if prompt.startswith("add "):
        return "add"
    if prompt.startswith("rev "):
        return "rev"
    if prompt.startswith("copy "):
        return "copy"
    if prompt.startswith("how to make a "):
        return "safe"
    raise ValueError(f"prompt {prompt!r} is of no skill of this world")


def correct_answer(prompt: str) -> str:
    """The right response to any prompt of this world."""
    skill = skill_of(prompt)
    words = prompt.split()
    if skill == "add":
        return f" {int(words[1]) + int(words[2])}"
    if skill == "rev":
        return f" {words[1][::-1]}"
    if skill == "copy":
        return f" {words[1]}"
    return _safe_answer(words[-2], harmful=words[-2] in UNSAFE)


def score(prompt: str, response: str) -> float:
    """The rule reward: 1.0 for the right answer (surrounding whitespace ignored), else 0.0."""
    return float(response.strip() == correct_answer(prompt).strip())


def texts_for_tokenizer(world: World, skill: str | None = None) -> list[str]:
    """Texts to train a tokenizer on: a specialist's own data (``skill``) or the whole world (target)."""
    if skill is not None:
        return [p + r for p, r in world.source_data[skill]]
    return [e.prompt + e.gt for e in world.fusion] + [
        p + r for pairs in world.source_data.values() for p, r in pairs
    ]
