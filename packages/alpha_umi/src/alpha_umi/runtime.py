"""The alpha-UMi agent at run time (Sec. 3.1, Fig. 2 of the paper): the planner writes a rationale ending in
``Next: caller.`` / ``Next: conclusion.`` / ``Next: give up.``; on ``caller`` the caller writes ``Action`` and
``Action Input`` and the tool runs, its reply joining the history as an observation; on ``conclusion`` the summarizer
writes the final answer. The single-LLM baseline (the backbone) writes the rationale and the call (or
``conclusion: ...``) in one turn and runs in the same loop.

Tools live in a :class:`ToolRegistry`: Python functions with a JSON-schema ``parameters`` object, or RapidAPI-style
HTTP endpoints (:class:`ToolServer` serves a registry on 127.0.0.1; :meth:`ToolRegistry.add_http` registers a remote
tool). Every call returns a ToolBench-style observation ``{"error": ..., "response": ...}``; a malformed
``Action Input``, a missing or ill-typed argument, an unknown tool (a hallucinated name) or an exception in the tool
all become an observation with an error, never a crash. The loop ends at the conclusion, at give-up or at
``max_steps`` planner turns; the whole trace is written as JSON.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alpha_umi.data import END, NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP, Trajectory, fill, serialise
from paperlab.io import atomic_write_json

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema {"type": "object", "properties": {...}, "required": [...]}
    fn: Callable[..., Any]

    def doc(self) -> dict[str, Any]:
        """The ToolBench document of the tool (``Name``, ``function``, ``input`` = ``{arg: "type, description"}``)."""
        props = self.parameters.get("properties", {})
        return {
            "Name": self.name,
            "function": self.description,
            "input": {
                k: f"{p.get('type', 'string')}, {p.get('description', '')}".strip(", ")
                for k, p in props.items()
            },
        }

    def check(self, args: Any) -> str | None:
        """None if ``args`` fit the schema, else what is wrong."""
        if not isinstance(args, dict):
            return f"Action Input must be a JSON object, got {type(args).__name__}"
        props = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in args]
        if missing:
            return f"missing required argument(s) {missing} for {self.name}"
        unknown = [k for k in args if k not in props]
        if unknown:
            return f"unknown argument(s) {unknown} for {self.name}; expected {sorted(props)}"
        for k, v in args.items():
            kind = props[k].get("type")
            ok = JSON_TYPES.get(kind, (object,))
            if not isinstance(v, ok) or (kind in ("number", "integer") and isinstance(v, bool)):
                return f"argument {k!r} of {self.name} must be {kind}, got {type(v).__name__} {v!r}"
        return None


def observation(response: Any = "", error: str = "") -> str:
    return json.dumps({"error": error, "response": response})


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None) -> None:
        self.tools: dict[str, Tool] = {}
        for t in tools or []:
            self.add(t)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        if tool.parameters.get("type", "object") != "object":
            raise ValueError(f"tool {tool.name!r}: parameters must be a JSON schema of type object")
        self.tools[tool.name] = tool

    def add_http(
        self, name: str, description: str, parameters: dict[str, Any], url: str, timeout: float = 10.0
    ) -> None:
        """A RapidAPI-style remote tool: the arguments are POSTed as JSON to ``url``; the reply's JSON is the
        response (or its ``error``)."""

        def call(**kwargs: Any) -> Any:
            req = urllib.request.Request(
                url,
                data=json.dumps(kwargs).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = json.loads(r.read().decode())
            if body.get("error"):
                raise RuntimeError(body["error"])
            return body.get("response")

        self.add(Tool(name, description, parameters, call))

    def docs(self) -> list[dict[str, Any]]:
        return [t.doc() for t in self.tools.values()]

    def call(self, name: str, action_input: str) -> tuple[str, str]:
        """(observation, status) where status is ``ok``, ``hallucination``, ``bad_input`` or ``tool_error``."""
        tool = self.tools.get(name)
        if tool is None:
            return observation(error=f"No such function name: {name}"), "hallucination"
        try:
            args = json.loads(action_input) if action_input.strip() else {}
        except json.JSONDecodeError as e:
            return observation(error=f"Action Input is not valid JSON ({e.msg} at char {e.pos})"), "bad_input"
        problem = tool.check(args)
        if problem:
            return observation(error=problem), "bad_input"
        try:
            return observation(response=tool.fn(**args)), "ok"
        except Exception as e:  # the tool's own failure is the agent's observation
            return observation(error=f"{type(e).__name__}: {e}"), "tool_error"


class ToolServer:
    """Serve a registry over HTTP on 127.0.0.1 (``POST /tools/<name>`` with the JSON arguments -> ``{"error",
    "response"}``; ``GET /tools`` -> the tool documents). Use as a context manager; ``url(name)`` is a tool's
    endpoint."""

    def __init__(self, registry: ToolRegistry, port: int = 0) -> None:
        registry_ = registry

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/tools":
                    self._send(200, registry_.docs())
                else:
                    self._send(404, {"error": f"unknown path {self.path}", "response": ""})

            def do_POST(self) -> None:
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                obs, _ = registry_.call(name, raw or "{}")
                self._send(200, json.loads(obs))

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/tools/{name}"

    def __enter__(self) -> ToolServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_call(text: str) -> tuple[str, str]:
    """(tool name, action input) of a caller turn, by the official evaluation's rules (the last ``Action:`` and
    ``Action Input:``); ``("none", "{}")`` when there is none."""
    action_input = (
        text[text.rindex("Action Input:") + len("Action Input:") :].strip()
        if "Action Input:" in text
        else "{}"
    )
    if "Action:" not in text:
        return "none", action_input
    action = text[text.rindex("Action:") + len("Action:") :]
    if "Action Input:" in action:
        action = action[: action.index("Action Input:")]
    return action.strip(), action_input


def cut_plan(text: str) -> tuple[str, str]:
    """(plan kind, planner text cut after its first ``Next:`` marker); no marker means a call (official inference
    appends ``Next: caller.``)."""
    found = [(text.index(m), m) for m in (NEXT_GIVE_UP, NEXT_CONCLUSION, NEXT_CALLER) if m in text]
    if not found:
        return "caller", text.rstrip() + " " + NEXT_CALLER
    pos, marker = min(found)
    kind = {NEXT_GIVE_UP: "give up", NEXT_CONCLUSION: "conclusion", NEXT_CALLER: "caller"}[marker]
    return kind, text[: pos + len(marker)]


def backbone_to_agent_text(text: str) -> str:
    """A single-LLM turn (``<thought>\\nAction: ...`` / ``\\nconclusion: <answer>`` / ``conclusion: give up.``) in the
    multi-agent step format that :func:`alpha_umi.metrics.parse_output` reads."""
    if "conclusion: give up" in text:
        return text[: text.index("conclusion: give up")].strip() + " " + NEXT_GIVE_UP
    if "conclusion: " in text:
        i = text.rindex("conclusion: ")
        return f"assistant: {text[:i].strip()} {NEXT_CONCLUSION}{END}conclusion: {text[i + len('conclusion: ') :]}{END}"
    i = text.find("Action:")
    thought, call = (text[:i].strip(), text[i:]) if i >= 0 else (text.strip(), "")
    return f"assistant: {thought} {NEXT_CALLER}{END}caller: {call}{END}"


Generate = Callable[[str], str]  # prompt -> generated text


@dataclass
class Trace:
    instruction: str
    tools: list[dict[str, Any]]
    conversations: list[dict[str, str]] = field(default_factory=list)
    status: str = "running"  # finished | gave_up | step_limit
    answer: str = ""
    calls: int = 0
    hallucinations: int = 0
    bad_inputs: int = 0
    tool_errors: int = 0

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, asdict(self))


class Agent:
    """The planner / caller / summarizer loop; ``backbone`` instead of the three runs the single-LLM baseline."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        planner: Generate | None = None,
        caller: Generate | None = None,
        summarizer: Generate | None = None,
        backbone: Generate | None = None,
        max_steps: int = 8,
    ) -> None:
        if backbone is None and None in (planner, caller, summarizer):
            raise ValueError("Agent needs planner, caller and summarizer, or backbone")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.registry, self.max_steps = registry, max_steps
        self.planner, self.caller, self.summarizer, self.backbone = planner, caller, summarizer, backbone

    def _traj(self, trace: Trace) -> Trajectory:
        return Trajectory(tools=trace.tools, instruction=trace.instruction, conversations=trace.conversations)

    def _history(self, trace: Trace) -> str:
        return "".join(serialise(t) for t in trace.conversations)

    def _act(self, trace: Trace, call_text: str) -> None:
        trace.conversations.append({"from": "caller", "value": call_text})
        self._execute(trace, call_text)

    def _execute(self, trace: Trace, call_text: str) -> None:
        """Run the call in ``call_text``; the observation (or its error) joins the conversation."""
        name, action_input = parse_call(call_text)
        obs, status = self.registry.call(name, action_input)
        trace.calls += 1
        trace.hallucinations += status == "hallucination"
        trace.bad_inputs += status == "bad_input"
        trace.tool_errors += status == "tool_error"
        trace.conversations.append({"from": "observation", "value": obs})

    def run(self, instruction: str, tools: list[dict[str, Any]] | None = None) -> Trace:
        trace = Trace(instruction=instruction, tools=tools if tools is not None else self.registry.docs())
        trace.conversations.append({"from": "user", "value": instruction})
        for _ in range(self.max_steps):
            if self.backbone is not None:
                if self._backbone_step(trace):
                    return trace
                continue
            plan_text = self.planner(fill("planner", self._traj(trace), self._history(trace)))
            kind, plan = cut_plan(plan_text)
            trace.conversations.append({"from": "assistant", "value": plan})
            if kind == "give up":
                trace.status = "gave_up"
                return trace
            if kind == "conclusion":
                answer = self.summarizer(fill("summarizer", self._traj(trace), self._history(trace))).strip()
                trace.conversations.append({"from": "conclusion", "value": answer})
                trace.status, trace.answer = "finished", answer
                return trace
            history = self._history(trace)
            self._act(trace, self.caller(fill("caller", self._traj(trace), history, thought=plan)).strip())
        trace.status = "step_limit"
        return trace

    def _backbone_step(self, trace: Trace) -> bool:
        """One single-LLM turn; True when the loop ends. The history holds the merged turns (as the backbone data)."""
        hist = ""
        for t in trace.conversations:
            hist += serialise(t) if t["from"] in ("user", "observation") else ""
            if t["from"] == "assistant":
                hist += f"assistant: {t['value']}{END}"
        out = self.backbone(fill("backbone", self._traj(trace), hist)).strip()
        trace.conversations.append({"from": "assistant", "value": out})
        if "conclusion: give up" in out:
            trace.status = "gave_up"
            return True
        if "conclusion: " in out:
            trace.status, trace.answer = (
                "finished",
                out[out.rindex("conclusion: ") + len("conclusion: ") :].strip(),
            )
            return True
        self._execute(trace, out)
        return False
