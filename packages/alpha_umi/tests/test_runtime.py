"""The agent loop with scripted models: call -> observation -> conclusion, errors as observations, the step limit,
the single-LLM variant, and tools served over HTTP on 127.0.0.1 (the generation server: test_server_generator.py)."""

from __future__ import annotations

import json

from alpha_umi.metrics import parse_output
from alpha_umi.runtime import Agent, Tool, ToolRegistry, ToolServer, backbone_to_agent_text, cut_plan
from alpha_umi.world import registry


def scripted(*outputs: str):
    """A fake model: returns the outputs in order and records the prompts it saw."""
    seen: list[str] = []
    it = iter(outputs)

    def generate(prompt: str) -> str:
        seen.append(prompt)
        return next(it)

    generate.seen = seen
    return generate


def test_planner_caller_summarizer_loop_runs_real_tools(tmp_path) -> None:
    planner = scripted(
        "I need the price. Next: caller. (ignored tail)",
        "Convert it. Next: caller.",
        "Done. Next: conclusion.",
    )
    caller = scripted(
        'Action: get_price\nAction Input: {"item": "tea"}',
        'Action: convert_currency\nAction Input: {"amount": 4, "from_currency": "USD", "to_currency": "EUR"}',
    )
    summarizer = scripted("1 tea cost 3.64 EUR.")
    trace = Agent(registry(), planner=planner, caller=caller, summarizer=summarizer).run(
        "How much do 1 tea cost in EUR?"
    )
    assert trace.status == "finished" and trace.answer == "1 tea cost 3.64 EUR."
    assert [t["from"] for t in trace.conversations] == [
        "user", "assistant", "caller", "observation", "assistant", "caller", "observation", "assistant", "conclusion"
    ]  # fmt: skip
    assert trace.conversations[1]["value"] == "I need the price. Next: caller."  # cut after the marker
    assert json.loads(trace.conversations[3]["value"]) == {
        "error": "",
        "response": {"item": "tea", "price": 4, "currency": "USD"},
    }
    assert json.loads(trace.conversations[6]["value"])["response"] == {"amount": 3.64, "currency": "EUR"}
    # the caller saw the plan as its thought and the first observation in its history
    assert "The thought of this step is:\nConvert it. Next: caller." in caller.seen[1]
    assert '"price": 4' in caller.seen[1] and caller.seen[1].endswith(" caller: ")
    assert summarizer.seen[0].startswith(
        "Make a conclusion based on the conversation history:\nuser: How much"
    )
    saved = json.loads(trace.save(tmp_path / "trace.json").read_text())
    assert saved["status"] == "finished" and len(saved["conversations"]) == 9


def test_malformed_input_unknown_tool_and_tool_failure_are_observations() -> None:
    planner = scripted(*["Try. Next: caller."] * 4, "Stop. Next: give up.")
    caller = scripted(
        'Action: get_price\nAction Input: {"item": "tea"',  # malformed JSON
        'Action: get_prize\nAction Input: {"item": "tea"}',  # hallucinated name
        'Action: get_price\nAction Input: {"item": 3}',  # wrong type
        'Action: get_price\nAction Input: {"item": "caviar"}',  # the tool raises
    )
    trace = Agent(registry(), planner=planner, caller=caller, summarizer=scripted()).run("q")
    errors = [json.loads(t["value"])["error"] for t in trace.conversations if t["from"] == "observation"]
    assert errors[0].startswith("Action Input is not valid JSON")
    assert errors[1] == "No such function name: get_prize"
    assert errors[2].startswith("argument 'item' of get_price must be string")
    assert "not in the catalogue" in errors[3]
    assert (trace.status, trace.calls, trace.bad_inputs, trace.hallucinations, trace.tool_errors) == (
        "gave_up",
        4,
        2,
        1,
        1,
    )


def test_step_limit_ends_the_loop() -> None:
    planner = scripted(*["again Next: caller."] * 10)
    caller = scripted(*['Action: get_stock\nAction Input: {"item": "tea"}'] * 10)
    trace = Agent(registry(), planner=planner, caller=caller, summarizer=scripted(), max_steps=3).run("q")
    assert trace.status == "step_limit" and trace.calls == 3 and len(planner.seen) == 3


def test_single_llm_agent_and_its_static_format() -> None:
    backbone = scripted(
        'Need the price.\nAction: get_price\nAction Input: {"item": "milk"}',
        "Known.\nconclusion: 1 milk cost 1 GBP.",
    )
    trace = Agent(registry(), backbone=backbone).run("How much do 1 milk cost in GBP?")
    assert trace.status == "finished" and trace.answer == "1 milk cost 1 GBP." and trace.calls == 1
    assert "assistant: Need the price.\nAction: get_price" in backbone.seen[1]  # merged turn in the history
    text = backbone_to_agent_text('Need it.\nAction: get_price\nAction Input: {"item": "milk"}')
    assert parse_output(text) == ("call", "get_price", '{"item": "milk"}', None)
    assert parse_output(backbone_to_agent_text("No way.\nconclusion: give up."))[0] == "give up"
    assert parse_output(backbone_to_agent_text("ok\nconclusion: 5 USD"))[3] == "5 USD"
    assert cut_plan("no marker") == ("caller", "no marker Next: caller.")


def test_http_tool_server_on_localhost() -> None:
    local = ToolRegistry(
        [
            Tool(
                "add",
                "Add two integers.",
                {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
                lambda a, b: {"sum": a + b},
            )
        ]
    )
    with ToolServer(local) as server:
        remote = ToolRegistry()
        remote.add_http("add", "Add two integers (remote).", local.tools["add"].parameters, server.url("add"))
        ok, status = remote.call("add", '{"a": 2, "b": 5}')
        assert status == "ok" and json.loads(ok)["response"] == {"sum": 7}
        bad, status = remote.call("add", '{"a": 2}')  # refused locally by the schema, before any request
        assert status == "bad_input" and "missing required argument" in json.loads(bad)["error"]
        remote.add_http("sub", "not served", {"type": "object", "properties": {}}, server.url("sub"))
        err, status = remote.call("sub", "{}")  # the server answers with an error -> a tool error observation
        assert status == "tool_error" and "No such function name: sub" in json.loads(err)["error"]
