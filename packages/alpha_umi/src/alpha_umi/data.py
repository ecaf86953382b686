"""ToolBench-format trajectories and their split into the role datasets of alpha-UMi (Sec. 3.2 and 3.3 of the paper;
the official ``GLPFT/process_data/toolbench/prepro_{planner,caller,summarizer,backbone}.py``).

A trajectory is ``{"tools": [{"Name", "function", "input", ...}], "instruction": str, "conversations": [{"from",
"value"}]}`` where ``from`` is one of ``user``, ``assistant`` (the planner's rationale ending with ``Next: caller.`` /
``Next: conclusion.`` / ``Next: give up.``), ``caller`` (``Action: <name>\\nAction Input: <json>``), ``observation``
(the tool's reply) and ``conclusion`` (the final answer).

Every role sample is ``{"input", "target"}``: the role's prompt template filled with the tool documents (one JSON line
per tool), the tool names and the serialised history, followed by the role's turn tag; the target is the turn.
History serialisation (as the official code): ``<from>: <value></s>`` for every turn except observations, which are
``observation: <value>`` with no end tag. Training prepends ``system: `` to the input and appends the end-of-sequence
token to the target (official ``train.py``); the loss is on the target only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlab.io import DataError, existing_file, iter_jsonl

ROLES = ("planner", "caller", "summarizer")
SPEAKERS = ("user", "assistant", "caller", "observation", "conclusion")
END = "</s>"
NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP = "Next: caller.", "Next: conclusion.", "Next: give up."
HALLUCINATION_MARK = (
    "invalid_hallucination_function_name"  # ToolBench's observation for a call to an unknown tool
)

# The role prompts define the input format the released alpha-UMi checkpoints were trained on (official
# GLPFT/utils/prompt_lib.py, "toolbench_*"), so they are kept verbatim, typos included.
PROMPTS: dict[str, str] = {
    "backbone": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "You should answer the action of next step in the following format:\nThe thought to solve the question,\n"
        "Action: the name of api that should be called in this step, should be exactly in [{tool_names}],\n"
        "Action Input: the api call request.\nOnce you think the question is finished, output conclusion: the final "
        "answer of the question or give up if you think you cannot answer this question.\n"
    ),
    "planner": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "You are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
        "Answer with a following format:\nThe thought of the next step, followed by Next: caller or conclusion or "
        "give up."
    ),
    "caller": (
        "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
        "The thought of this step is:\n{thought}\nBase on the thought make an api call in the following format:\n"
        "Action: the name of api that should be called in this step, should be exactly in [{tool_names}],\n"
        "Action Input: the api call request."
    ),
    "summarizer": "Make a conclusion based on the conversation history:\n{history}",
}
TURN_TAG = {
    "planner": " assistant: ",
    "backbone": " assistant: ",
    "caller": " caller: ",
    "summarizer": " conclusion: ",
}


@dataclass(frozen=True)
class Trajectory:
    tools: list[dict[str, Any]]
    instruction: str
    conversations: list[dict[str, str]]

    @property
    def tool_names(self) -> list[str]:
        return [t["Name"] for t in self.tools]


def check_trajectory(row: Any, where: str) -> Trajectory:
    """A :class:`Trajectory` from one JSON object, or :class:`DataError` naming ``where`` and the field."""
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected an object with tools, instruction, conversations; got {type(row).__name__}"
        )
    convs = row.get("conversations")
    if convs is None and "chains" in row:
        raise DataError(
            f"{where}: has 'chains' (ToolBench stage-1 raw data); expected 'conversations' (the stage-2 format with "
            "assistant / caller / observation / conclusion turns, as raw_data_stage_2.json); convert raw ToolBench with "
            "`python -m alpha_umi.toolbench <data dir> <out.json>`"
        )
    tools = row.get("tools")
    if not isinstance(tools, list):
        raise DataError(
            f"{where}: field 'tools' is {'missing' if tools is None else type(tools).__name__}; expected a list"
        )
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("Name"), str):
            raise DataError(f"{where}: tools[{j}] has no string 'Name'")
    if not isinstance(row.get("instruction"), str):
        raise DataError(f"{where}: field 'instruction' is missing or not a string")
    if not isinstance(convs, list) or not convs:
        raise DataError(
            f"{where}: field 'conversations' is missing or empty; expected a list of {{from, value}}"
        )
    for j, turn in enumerate(convs):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in SPEAKERS
            or not isinstance(turn.get("value"), str)
        ):
            raise DataError(
                f"{where}: conversations[{j}] is {str(turn)[:80]!r}; expected {{from: one of {', '.join(SPEAKERS)}, "
                "value: string}"
            )
    return Trajectory(tools=tools, instruction=row["instruction"], conversations=convs)


def load_trajectories(path: str | Path, field: str = "") -> list[Trajectory]:
    """Trajectories from a JSON list (ToolBench / alpha-UMi files) or JSONL, every row checked: a missing, empty or
    non-UTF-8 file, a top-level object instead of a list, a file without trajectories or a bad row is a
    :class:`DataError` naming the file and the item (JSON list, from 1) or line (JSONL) and the field; ``field``
    names the config field of a missing file."""
    path = existing_file(path, field)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte {raw[err.start]:#x}); save the file as UTF-8"
        ) from None
    expected = (
        "expected a JSON list of trajectories {tools, instruction, conversations} or JSONL (one per line)"
    )
    if not text.strip():
        raise DataError(f"{path}: empty file; {expected}")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        trajs = [check_trajectory(r, f"{path}: item {i}") for i, r in enumerate(rows, start=1)]
    else:
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict) and not ({"tools", "conversations", "chains"} & set(whole)):
            raise DataError(f"{path}: a JSON object with keys {sorted(whole)[:5]}; {expected}")
        if isinstance(whole, dict) and "\n" in text.strip():
            raise DataError(f"{path}: one JSON object over several lines; {expected}")
        trajs = [check_trajectory(r, f"{path}:{n}") for n, r in iter_jsonl(path)]
    if not trajs:
        raise DataError(f"{path}: no trajectories; {expected}")
    return trajs


def tool_docs(tools: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(t) + "\n" for t in tools)


def fill(role: str, traj: Trajectory, history: str, thought: str = "") -> str:
    """The role's prompt for this history (the official string replacement order: doc, tool_names, then the rest)."""
    text = (
        PROMPTS[role]
        .replace("{doc}", tool_docs(traj.tools))
        .replace("{tool_names}", ", ".join(traj.tool_names))
    )
    text = text.replace("{history}", history)
    if role == "caller":
        text = text.replace("{thought}", thought)
    return text + TURN_TAG[role]


def serialise(turn: dict[str, str]) -> str:
    """One history entry: observations carry no end tag (as the official code)."""
    if turn["from"] == "observation":
        return "observation: " + turn["value"]
    return f"{turn['from']}: {turn['value']}{END}"


def _sample(traj: Trajectory, i: int, input_: str, target: str) -> dict[str, Any]:
    return {"input": input_, "target": target, "history": traj.conversations[:i], "tools": traj.tools}


def planner_samples(traj: Trajectory) -> list[dict[str, Any]]:
    """One sample per planner turn followed by a call or the conclusion, or ending in give-up; turns whose call
    hit a hallucinated tool name are not learnt."""
    out, history, c = [], "", traj.conversations
    for i, turn in enumerate(c):
        if turn["from"] == "assistant":
            nxt = c[i + 1]["from"] if i + 1 < len(c) else None
            learnt = NEXT_GIVE_UP in turn["value"] or nxt in ("conclusion", "caller")
            if learnt and not (nxt == "caller" and HALLUCINATION_MARK in c[i + 1]["value"]):
                out.append(_sample(traj, i, fill("planner", traj, history), turn["value"]))
        history += serialise(turn)
    return out


def caller_samples(traj: Trajectory) -> list[dict[str, Any]]:
    """One sample per call (not hallucinated); the thought is the preceding planner turn. A hallucinated call is
    left out of the later history too (as the official code)."""
    out, history, c = [], "", traj.conversations
    for i, turn in enumerate(c):
        if turn["from"] == "caller":
            if HALLUCINATION_MARK in turn["value"]:
                continue
            out.append(
                _sample(traj, i, fill("caller", traj, history, thought=c[i - 1]["value"]), turn["value"])
            )
        history += serialise(turn)
    return out


def summarizer_samples(traj: Trajectory) -> list[dict[str, Any]]:
    """One sample per conclusion turn (not the placeholder ``none`` of give-up trajectories)."""
    out, history = [], ""
    for i, turn in enumerate(traj.conversations):
        if turn["from"] == "conclusion" and turn["value"] != "none":
            out.append(_sample(traj, i, fill("summarizer", traj, history), turn["value"]))
        history += serialise(turn)
    return out


def backbone_samples(traj: Trajectory) -> list[dict[str, Any]]:
    """The single-LLM (multi-task) data of GLPFT stage 1 and of the baseline: one sample per planner turn whose
    target is the rationale followed by the call (``...\\nAction: ...``), by ``conclusion: <answer>`` or by
    ``conclusion: give up.``; the history holds these merged turns (callers and conclusions are not repeated).
    Deviation: for a give-up turn the official script reuses the previous turn's prompt (a stale variable); here the
    prompt is built from the current history like every other turn."""
    out, history, c = [], "", traj.conversations
    for i, turn in enumerate(c):
        if turn["from"] == "assistant":
            value, nxt = turn["value"], (c[i + 1] if i + 1 < len(c) else None)
            span = value
            if NEXT_GIVE_UP in value:
                span = value.replace(NEXT_GIVE_UP, "").strip() + "\nconclusion: give up."
            elif nxt is not None and nxt["from"] == "caller":
                span = value.replace(NEXT_CALLER, "").strip() + "\n" + nxt["value"]
            elif nxt is not None and nxt["from"] == "conclusion":
                span = value.replace(NEXT_CONCLUSION, "").strip() + "\nconclusion: " + nxt["value"]
            if span is not value:
                out.append(_sample(traj, i, fill("backbone", traj, history), span))
            history += f"assistant: {span}{END}"
        elif turn["from"] in ("user", "observation"):
            history += serialise(turn)
    return out


SPLITTERS = {
    "planner": planner_samples,
    "caller": caller_samples,
    "summarizer": summarizer_samples,
    "backbone": backbone_samples,
}


def role_datasets(trajs: Iterable[Trajectory]) -> dict[str, list[dict[str, Any]]]:
    """``{"planner", "caller", "summarizer", "backbone"}`` -> samples, over all trajectories."""
    trajs = list(trajs)
    return {role: [s for t in trajs for s in split(t)] for role, split in SPLITTERS.items()}


def prompt_text(input_: str) -> str:
    """What the model is given: ``system: `` + the role input (official ``train.py``), without the turn tag's
    trailing space -- that space starts the completion instead, so that a BPE tokenizer splits prompt + completion
    at training exactly as it splits the prompt alone at inference (TRL tokenizes the two together)."""
    return "system: " + input_.rstrip(" ")


def training_text(sample: dict[str, Any], eos: str) -> dict[str, str]:
    """The prompt/completion pair one SFT step sees (official ``train.py``: ``system: `` + input; target + EOS)."""
    return {"prompt": prompt_text(sample["input"]), "completion": " " + sample["target"] + eos}


def eval_steps(traj: Trajectory) -> list[dict[str, Any]]:
    """The static-evaluation steps of one test trajectory (official ``infer_pipeline.build_infer_samples``): one per
    planner turn that hands over (caller / conclusion / give up), with the serialised ``history`` before it and the
    ``reference`` text ``assistant: <plan></s><caller|conclusion>: <turn></s>`` (the plan alone for give-up)."""
    out, history, c = [], "", traj.conversations
    for i, turn in enumerate(c):
        if turn["from"] == "assistant" and any(
            m in turn["value"] for m in (NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP)
        ):
            if NEXT_GIVE_UP not in turn["value"] and i + 1 < len(c):
                reference = f"assistant: {turn['value']}{END}{c[i + 1]['from']}: {c[i + 1]['value']}{END}"
            else:
                reference = turn["value"]
            out.append(
                {"tools": traj.tools, "history": history, "reference": reference, "traj": traj, "index": i}
            )
        history += serialise(turn)
    return out
