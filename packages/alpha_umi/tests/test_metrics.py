"""Static metrics: gold predictions score 100, random ones chance, and the official half-match rule by hand."""

from __future__ import annotations

import random

import pytest

from alpha_umi.data import eval_steps, load_trajectories
from alpha_umi.metrics import argument_f1, parse_output, static_metrics

TOOLS = [{"Name": "get_price"}, {"Name": "convert_currency"}]


def call(plan: str, name: str, args: str) -> str:
    return f"assistant: {plan} Next: caller.</s>caller: Action: {name}\nAction Input: {args}</s>"


def test_argument_f1_half_match_by_hand() -> None:
    ref = '{"a": 1, "b": "x"}'
    assert argument_f1(ref, '{"a": 1, "b": "x"}') == (1.0, False)
    # a right, b present with a wrong value (half), c extra: recall (1 + .5)/2, precision 1.5/3
    f1, _ = argument_f1(ref, '{"a": 1, "b": "y", "c": 0}')
    r, p = 0.75, 0.5
    assert f1 == pytest.approx(2 * r * p / (r + p))
    assert argument_f1(ref, "{not json") == (0.0, False)
    assert argument_f1("{}", "{}") == (1.0, True) and argument_f1("{}", '{"a": 1}') == (0.0, True)
    assert argument_f1("not json", "{}") is None  # the official script skips such references


def test_plan_action_hallucination_and_give_up_by_hand() -> None:
    steps = [
        {
            "tools": TOOLS,
            "reference": call("p", "get_price", '{"item": "tea"}'),
            "prediction": call("q", "get_price", '{"item": "tea"}'),
        },
        {
            "tools": TOOLS,
            "reference": call("p", "get_price", '{"item": "tea"}'),
            "prediction": call("q", "get_prices", "{}"),
        },
        {"tools": TOOLS, "reference": "I cannot. Next: give up.", "prediction": "Hopeless. Next: give up."},
        {
            "tools": TOOLS,
            "reference": "assistant: done Next: conclusion.</s>conclusion: 3 tea cost 12 USD.</s>",
            "prediction": "no marker at all",  # parsed as a call with action 'none': wrong plan, not hallucinated
        },
    ]
    m = static_metrics(steps)
    assert m["plan_acc"] == pytest.approx(75.0)
    assert m["action_em"] == pytest.approx(50.0)  # over the 2 reference calls
    assert m["hallucination"] == pytest.approx(25.0)  # 'get_prices' is not in the tool list; over all 4 steps
    assert m["arg_f1"] == pytest.approx(50.0) and m["arg_f1_hard"] == pytest.approx(50.0)
    assert m["rouge_l"] == 0.0
    assert parse_output(steps[3]["reference"]) == ("finish", None, None, "3 tea cost 12 USD.")


def test_gold_scores_100_and_random_scores_chance(real_data) -> None:
    trajs = load_trajectories(real_data("alpha_umi", "test", "out_of_domain.json"))
    steps = [s for t in trajs for s in eval_steps(t)]
    gold = static_metrics([{**s, "prediction": s["reference"]} for s in steps])
    assert {k: gold[k] for k in ("plan_acc", "action_em", "arg_f1")} == {
        "plan_acc": 100.0,
        "action_em": 100.0,
        "arg_f1": 100.0,
    }
    assert gold["rouge_l"] == pytest.approx(100.0, abs=1e-5)  # the rouge package's F carries a 1e-8 epsilon
    assert gold["hallucination"] == 0.0
    # random agent: uniform plan kind, uniform tool from the list -> plan ACC ~ 1/3, action EM ~ E[1/|tools|]
    rng = random.Random(0)
    preds, chance = [], []
    for s in steps:
        kind = rng.choice(["call", "finish", "give up"])
        name = rng.choice(s["tools"])["Name"]
        if parse_output(s["reference"])[0] == "call":
            chance.append(1 / len(s["tools"]))
        preds.append(
            call("x", name, "{}")
            if kind == "call"
            else (
                "x Next: give up."
                if kind == "give up"
                else "assistant: x Next: conclusion.</s>conclusion: y</s>"
            )
        )
    rand = static_metrics([{**s, "prediction": p} for s, p in zip(steps, preds, strict=True)])
    assert rand["plan_acc"] == pytest.approx(100 / 3, abs=4)
    # action EM counts call steps whose prediction is a call (1/3) with the right tool
    assert rand["action_em"] == pytest.approx(100 * sum(chance) / len(chance) / 3, abs=3)
    assert rand["rouge_l"] < 10


def test_rouge_l_is_the_official_rouge_package_sentence_split_and_case_sensitive() -> None:
    """The official evaluate_rougel (``rouge`` package) on a hand example where rouge-score says 1.0: the package
    splits sentences at '.' (summary-level LCS over [The cat sat, On the mat] vs [the cat sat on the mat]) and
    keeps case ('The' != 'the', 'On' != 'on'): LCS 4 of 5 hypothesis / 6 reference tokens."""
    from alpha_umi.metrics import rouge_l

    pred, ref = "The cat sat. On the mat", "the cat sat on the mat."
    r, p = 4 / 6, 4 / 5
    assert rouge_l([pred], [ref]) == pytest.approx(2 * r * p / (r + p), abs=1e-6)  # 0.7273; rouge-score: 1.0
    steps = [
        {"tools": TOOLS, "reference": f"assistant: ok Next: conclusion.</s>conclusion: {ref}</s>",
         "prediction": f"assistant: ok Next: conclusion.</s>conclusion: {pred}</s>"},
        {"tools": TOOLS, "reference": "assistant: ok Next: conclusion.</s>conclusion: 5 USD</s>",
         "prediction": "assistant: ok Next: conclusion.</s>conclusion: </s>"},  # empty answer: 0, no crash
    ]  # fmt: skip
    assert static_metrics(steps)["rouge_l"] == pytest.approx(100 * 2 * r * p / (r + p) / 2, abs=1e-4)
