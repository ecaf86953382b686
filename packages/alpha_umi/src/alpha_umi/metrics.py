"""The paper's static evaluation (Sec. 4.2, Table 1; official ``GLPFT/inference_utils/toolbench/evaluate-*.py``).

Every test step is a (reference, prediction) pair of texts in the agent's output format:

* a call step: ``assistant: <rationale> Next: caller.</s>caller: Action: <name>\\nAction Input: <json></s>``
* a conclusion step: ``assistant: <rationale> Next: conclusion.</s>conclusion: <answer></s>``
* a give-up step: ``<rationale> Next: give up.``

Metrics: **Plan ACC** (the plan kind -- call / finish / give up -- matches), **Action EM** (tool name exact, over the
reference's call steps), **Hallucination** (share of all steps whose predicted tool is not in the step's tool list),
**Argument F1** (over call steps; 0 when the tool differs; a reference argument present in the prediction counts 1 if
its value is equal and 0.5 otherwise -- the official "half match" -- giving recall over the reference's arguments and
precision over the prediction's; ``easy`` = steps whose reference takes no arguments, ``hard`` = the others), and
**R-L** (ROUGE-L F of the answer on the reference's conclusion steps, with the ``rouge`` package as the official
script: sentences split at ``.``, case-sensitive, summary-level LCS -- not ``rouge-score``, whose numbers differ and
are not comparable to Table 1).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

GIVE_UP, FINISH, CALL = "give up", "finish", "call"


def parse_output(text: str) -> tuple[str, str | None, str | None, str | None]:
    """(plan, action, action input, answer) of one step's text (the official ``parse_output``'s rules)."""
    if "Next: give up" in text:
        return GIVE_UP, None, None, None
    if "Next: conclusion" in text:
        answer = text[text.rindex("conclusion: ") + len("conclusion: ") :] if "conclusion:" in text else text
        return FINISH, None, None, answer.replace("</s>", "")
    parts = text.split("</s>")
    call = parts[1] if len(parts) > 1 else ""  # the caller's part; a planner-only text has no call
    action_input = (
        call[call.rindex("Action Input:") + len("Action Input:") :].strip()
        if "Action Input:" in call
        else "{}"
    )
    if "Action:" in call:
        action = call[call.rindex("Action:") + len("Action:") :].strip()
        if "Action Input:" in action:
            action = action[: action.index("Action Input:")].strip()
    else:
        action = "none"
    return CALL, action, action_input, None


def argument_f1(reference: str, prediction: str) -> tuple[float, bool] | None:
    """(F1, reference takes no arguments) for one call with the right tool; None when the reference's input is not
    JSON (the official script skips such steps)."""
    try:
        ref = json.loads(reference)
    except (json.JSONDecodeError, TypeError):
        return None
    try:
        cand = json.loads(prediction)
    except (json.JSONDecodeError, TypeError):
        return 0.0, ref == {}
    if ref == {}:
        return (1.0 if cand == {} else 0.0), True
    if not isinstance(ref, dict) or not isinstance(cand, dict):  # the official loop fails on these: scored 0
        return 0.0, False
    full = sum(1 for k, v in ref.items() if k in cand and cand[k] == v)
    half = sum(1 for k, v in ref.items() if k in cand and cand[k] != v)
    matched = full + 0.5 * half
    recall, precision = matched / len(ref), matched / len(cand) if cand else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return f1, False


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F (0-1) of each prediction against its reference with the ``rouge`` package (official
    ``evaluate_rougel``: ``Rouge().get_scores(hyps, refs, avg=True)["rouge-l"]["f"]``). A pair the package cannot
    score (an empty hypothesis or reference, where the official script stops with ``ValueError``) scores 0."""
    from rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not references:
        return 0.0
    scorer = Rouge(metrics=["rouge-l"])
    total = 0.0
    for pred, ref in zip(predictions, references, strict=True):
        with contextlib.suppress(ValueError):  # "Hypothesis is empty." / "Reference is empty."
            total += scorer.get_scores(pred, ref)[0]["rouge-l"]["f"]
    return total / len(references)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def static_metrics(steps: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Plan ACC, Action EM, Hallucination, Argument F1 (easy / hard / all) and R-L, in percent, over ``steps``:
    dicts with ``reference``, ``prediction`` and ``tools`` (the step's available tools, ``{"Name": ...}``)."""
    plan_hits, action_hits, easy, hard, f1s = [], [], [], [], []
    hallucinated = 0
    answers_pred, answers_ref = [], []
    for step in steps:
        r_plan, r_action, r_input, r_answer = parse_output(step["reference"])
        p_plan, p_action, p_input, p_answer = parse_output(step["prediction"])
        names = {t["Name"] for t in step["tools"]}
        if p_action is not None and p_action != "none" and p_action not in names:
            hallucinated += 1
        plan_hits.append(float(r_plan == p_plan))
        if r_plan == FINISH:
            answers_ref.append(r_answer or "")
            answers_pred.append(p_answer if p_answer is not None else "none")
        elif r_plan == CALL:
            p_action = p_action if p_action is not None else "none"
            action_hits.append(float(p_action == r_action))
            if p_action != r_action:
                easy.append(0.0)
                hard.append(0.0)
                f1s.append(0.0)
                continue
            scored = argument_f1(r_input or "{}", p_input if p_input is not None else "{}")
            if scored is None:
                continue
            f1, no_args = scored
            (easy if no_args else hard).append(f1)
            f1s.append(f1)
    return {
        "plan_acc": 100 * _mean(plan_hits),
        "action_em": 100 * _mean(action_hits),
        "hallucination": 100 * hallucinated / len(steps) if steps else 0.0,
        "arg_f1_easy": 100 * _mean(easy),
        "arg_f1_hard": 100 * _mean(hard),
        "arg_f1": 100 * _mean(f1s),
        "rouge_l": 100 * rouge_l(answers_pred, answers_ref) if answers_ref else 0.0,
        "steps": float(len(steps)),
    }
