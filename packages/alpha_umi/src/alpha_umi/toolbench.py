"""Raw ToolBench to the package's training format (the official ``prepro_raw_stage_1.py`` and
``prepro_raw_stage_2.py`` of X-PLUG/Multi-LLM-Agent, re-implemented).

ToolBench's released answers are one JSON file per query, ``<data_dir>/answer/G{1,2,3}_answer/<query id>_*.json``,
whose ``answer_generation`` holds the query, the ``function`` list (OpenAI function schemas) and ``train_messages``
(the DFS answer tree flattened into message lists; the last one is the chain that reached the answer). Queries
listed in ``<data_dir>/test_query_ids/*.json`` are left out.

Stage 1 (:func:`stage1_row`): ``{tools, instruction, chains}`` -- the tools as ToolBench documents (``Name`` the
last 64 characters of the function name, ``function`` its first 256 characters of description, ``input`` = ``{arg:
"type, <last 256 characters of the description>"}``; the ``Finish`` function dropped) and the last message list.

Stage 2 (:func:`stage2_row`): ``{tools, instruction, conversations}`` with the speakers of alpha-UMi. From the
third message on (after the system prompt and the query, which becomes the first ``user`` turn): an assistant
message calling a tool becomes ``assistant: <content>\\n Next: caller.`` followed by ``caller: Action: <name>\\nAction
Input: <arguments>``; one calling ``Finish`` becomes ``... Next: conclusion.`` + ``conclusion: <final_answer>``
(``none`` when it has none), or ``... Next: give up.`` for ``give_up_and_restart``; a function message becomes an
``observation`` holding the reply's ``response`` field; a user message stays ``user``. An assistant message
without a function call is dropped (as the official script). The result is what :func:`alpha_umi.data.
load_trajectories` reads (``raw_data_stage_2.json``), checked row by row.

    python -m alpha_umi.toolbench <toolbench data dir> <out>/raw_data_stage_2.json
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alpha_umi.data import NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP, check_trajectory
from paperlab.config import UserError
from paperlab.io import DataError, atomic_write_json

log = logging.getLogger(__name__)

GROUPS = ("G1_answer", "G2_answer", "G3_answer")


def _read_json(path: Path) -> Any:
    """A ToolBench JSON file; unreadable text or JSON is a :class:`DataError` naming it."""
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {raw[err.start]:#x} at offset {err.start})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None


def _text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: {field} is {type(value).__name__}; expected a string")
    return value


def tool_docs(functions: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """ToolBench documents of the OpenAI function schemas (``Finish`` left out)."""
    if not isinstance(functions, list):
        raise DataError(f"{where}: answer_generation.function is {type(functions).__name__}; expected a list")
    docs = []
    for j, fn in enumerate(functions):
        at = f"answer_generation.function[{j}]"
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise DataError(f"{where}: {at} has no string 'name'")
        if fn["name"] == "Finish":
            continue
        params = fn.get("parameters") or {}
        props = params.get("properties", {}) if isinstance(params, dict) else None
        if not isinstance(props, dict):
            raise DataError(f"{where}: {at}.parameters is not an object with 'properties' {{name: schema}}")
        inputs = {}
        for arg, spec in props.items():
            if not isinstance(spec, dict):
                raise DataError(
                    f"{where}: {at}.parameters.properties.{arg} is {type(spec).__name__}; expected an object"
                )
            kind = _text(spec.get("type", "string"), where, f"{at}.parameters.properties.{arg}.type")
            if "description" in spec:
                desc = _text(spec["description"], where, f"{at}.parameters.properties.{arg}.description")
                inputs[arg] = f"{kind}, {desc[-256:]}"
            else:
                inputs[arg] = kind
        description = _text(fn.get("description") or "", where, f"{at}.description")
        docs.append({"Name": fn["name"][-64:], "function": description[:256], "input": inputs})
    return docs


def stage1_row(answer: dict[str, Any], where: str) -> dict[str, Any] | None:
    """``{tools, instruction, chains}`` of one answer file, or None when it has no ``train_messages``."""
    gen = answer.get("answer_generation") if isinstance(answer, dict) else None
    if not isinstance(gen, dict) or not gen.get("train_messages"):
        return None
    for key in ("query", "function"):
        if key not in gen:
            raise DataError(f"{where}: answer_generation has no {key!r}")
    messages = gen["train_messages"]
    if not isinstance(messages, list) or not isinstance(messages[-1], list):
        raise DataError(f"{where}: answer_generation.train_messages is not a list of message lists")
    return {
        "tools": tool_docs(gen["function"], where),
        "instruction": _text(gen["query"], where, "answer_generation.query"),
        "chains": messages[-1],
    }


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None


def _finish(content: str | None, raw: Any) -> tuple[bool, str]:
    """(gave up, final answer) of a ``Finish`` call, whose arguments may be a dict, JSON, or broken JSON."""
    args = _arguments(raw)
    if isinstance(args, dict):
        if args.get("return_type") == "give_up_and_restart":
            return True, ""
        return False, str(args.get("final_answer", "none"))
    text = str(raw)
    if "give_up_and_restart" in text:
        return True, ""
    mark = '"final_answer": '
    if mark in text:
        return False, text[text.index(mark) + len(mark) :].strip().strip("}").strip('"')
    return False, content if content is not None else "none"


def _observation(content: Any) -> str:
    """The ``response`` field of a function message (a string; other JSON values serialised)."""
    reply = _arguments(content)
    if isinstance(reply, dict) and "response" in reply:
        response = reply["response"]
    else:
        text = str(content)
        mark = '"response":'
        response = text[text.index(mark) + len(mark) :] if mark in text else ""
    return response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)


def stage2_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    """The alpha-UMi conversation of one stage-1 row (see the module docstring), checked."""
    chains = row.get("chains")
    if not isinstance(chains, list):
        raise DataError(f"{where}: 'chains' is {type(chains).__name__}; expected a list of messages")
    conv = [{"from": "user", "value": row["instruction"]}]
    for j, msg in enumerate(chains[2:], start=2):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "assistant":
            call = msg.get("function_call")
            if not call:
                continue
            if not isinstance(call, dict):
                raise DataError(
                    f"{where}: chains[{j}].function_call is {type(call).__name__}; expected an object"
                )
            content = msg.get("content")
            if content is not None and not isinstance(content, str):
                raise DataError(
                    f"{where}: chains[{j}].content is {type(content).__name__}; expected a string"
                )
            span = (content + "\n") if content is not None else ""
            if call.get("name") == "Finish":
                gave_up, answer = _finish(msg.get("content"), call.get("arguments"))
                if gave_up:
                    conv.append({"from": "assistant", "value": f"{span} {NEXT_GIVE_UP}"})
                else:
                    conv.append({"from": "assistant", "value": f"{span} {NEXT_CONCLUSION}"})
                    conv.append({"from": "conclusion", "value": answer})
            else:
                arguments = call.get("arguments", "{}")
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                conv.append({"from": "assistant", "value": f"{span} {NEXT_CALLER}"})
                conv.append(
                    {"from": "caller", "value": f"Action: {call.get('name')}\nAction Input: {arguments}"}
                )
        elif role == "user":
            conv.append({"from": "user", "value": str(msg.get("content", ""))})
        elif role == "function":
            conv.append({"from": "observation", "value": _observation(msg.get("content"))})
        else:
            raise DataError(f"{where}: chains[{j}] has role {role!r}; expected assistant, user or function")
    out = {"tools": row["tools"], "instruction": row["instruction"], "conversations": conv}
    check_trajectory(out, where)
    return out


def held_out_ids(data_dir: Path) -> set[str]:
    """The test query ids of ``test_query_ids/*.json`` (each a JSON list of ids or an object keyed by them)."""
    ids: set[str] = set()
    for path in sorted((data_dir / "test_query_ids").glob("*.json")):
        listed = _read_json(path)
        if not isinstance(listed, list | dict):
            raise DataError(
                f"{path}: a JSON {type(listed).__name__}; expected a list of query ids or an object"
            )
        ids |= {str(i) for i in listed}
    return ids


def convert(data_dir: str | Path, groups: Sequence[str] = GROUPS) -> list[dict[str, Any]]:
    """Every training answer of ``data_dir`` (test queries left out) in the stage-2 format, in file order."""
    data_dir = Path(data_dir)
    if not (data_dir / "answer").is_dir():
        raise DataError(
            f"{data_dir}: no answer/ folder (expected ToolBench's data/ with answer/G1_answer/...)"
        )
    held_out = held_out_ids(data_dir)
    rows, skipped = [], 0
    for group in groups:
        for path in sorted((data_dir / "answer" / group).glob("*.json")):
            if path.name.split("_")[0] in held_out:
                continue
            row = stage1_row(_read_json(path), str(path))
            if row is None:
                skipped += 1
                continue
            rows.append(stage2_row(row, str(path)))
    if not rows:
        raise DataError(
            f"{data_dir}: no answer with train_messages in answer/{{{','.join(groups)}}}/*.json ({skipped} without); "
            "expected ToolBench's data/ folder"
        )
    log.info("%s: %d trajectories (%d answers without train_messages)", data_dir, len(rows), skipped)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("usage: python -m alpha_umi.toolbench <toolbench data dir> <out.json>", file=sys.stderr)
        return 2
    try:
        rows = convert(argv[0])
    except UserError as err:  # the user's data: one line, exit 2 (paperlab's contract)
        print(f"alpha_umi.toolbench: error: {err}", file=sys.stderr)
        return 2
    atomic_write_json(argv[1], rows)
    print(f"{len(rows)} trajectories -> {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
