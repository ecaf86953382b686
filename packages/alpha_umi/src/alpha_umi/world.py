"""A synthetic multi-step tool-use world for the tiny experiment: real local tools, tasks that need 1-3 calls
chosen from what the observations say, and gold ToolBench-format trajectories (the stage-2 raw format that
:mod:`alpha_umi.data` splits into role data).

Task: "How much do <q> <item> cost in <currency>?". Gold plan: ``get_price(item)`` (its reply names the price and
the catalogue's currency); if q > 1, ``compute_total(price, quantity)``; if the catalogue's currency is not the one
asked for, ``convert_currency(amount, from_currency, to_currency)``; then the conclusion states the amount. An item not
in the catalogue makes ``get_price`` fail: the planner gives up. Two distractor tools (stock, weather) sit in every
tool list, and the list order is shuffled per task, so the tool must be chosen by name, not position.
"""

from __future__ import annotations

import json
import random
from typing import Any

from alpha_umi.data import NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP, Trajectory
from alpha_umi.runtime import Tool, ToolRegistry

ITEMS = {
    "apple": (3, "EUR"),
    "bread": (2, "EUR"),
    "cheese": (7, "EUR"),
    "coffee": (5, "USD"),
    "tea": (4, "USD"),
    "rice": (6, "GBP"),
    "milk": (1, "GBP"),
    "honey": (9, "USD"),
    "pasta": (8, "EUR"),
    "salt": (1, "USD"),
}
UNKNOWN_ITEMS = ["caviar", "truffle", "saffron"]
CURRENCIES = ["EUR", "USD", "GBP"]
RATES = {"EUR": 1.0, "USD": 1.1, "GBP": 0.9}  # per EUR


def _round(x: float) -> float | int:
    r = round(x, 2)
    return int(r) if r == int(r) else r


def get_price(item: str) -> dict[str, Any]:
    if item not in ITEMS:
        raise KeyError(f"item {item!r} is not in the catalogue")
    price, currency = ITEMS[item]
    return {"item": item, "price": price, "currency": currency}


def compute_total(price: float, quantity: int) -> dict[str, Any]:
    return {"total": _round(price * quantity)}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict[str, Any]:
    for c in (from_currency, to_currency):
        if c not in RATES:
            raise ValueError(f"unknown currency {c!r}; expected one of {CURRENCIES}")
    return {"amount": _round(amount / RATES[from_currency] * RATES[to_currency]), "currency": to_currency}


def get_stock(item: str) -> dict[str, Any]:
    return {"item": item, "in_stock": item in ITEMS}


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "weather": "sunny"}


def _schema(**props: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": t, "description": d} for k, (t, d) in props.items()},
        "required": list(props),
    }


def registry() -> ToolRegistry:
    """The world's tools; descriptions are short, since every prompt carries all tool documents."""
    return ToolRegistry(
        [
            Tool("get_price", "unit price and currency", _schema(item=("string", "")), get_price),
            Tool(
                "compute_total",
                "price times quantity",
                _schema(price=("number", ""), quantity=("integer", "")),
                compute_total,
            ),
            Tool(
                "convert_currency",
                "convert between EUR, USD, GBP",
                _schema(amount=("number", ""), from_currency=("string", ""), to_currency=("string", "")),
                convert_currency,
            ),
            Tool("get_stock", "is the item in stock", _schema(item=("string", "")), get_stock),
            Tool("get_weather", "weather in a city", _schema(city=("string", "")), get_weather),
        ]
    )


def _call(name: str, args: dict[str, Any]) -> str:
    return f"Action: {name}\nAction Input: {json.dumps(args)}"


def make_task(rng: random.Random, give_up_rate: float = 0.1) -> dict[str, Any]:
    item = rng.choice(UNKNOWN_ITEMS) if rng.random() < give_up_rate else rng.choice(sorted(ITEMS))
    return {"item": item, "quantity": rng.randint(1, 5), "currency": rng.choice(CURRENCIES)}


def instruction(task: dict[str, Any]) -> str:
    return f"How much do {task['quantity']} {task['item']} cost in {task['currency']}?"


def expected_answer(task: dict[str, Any]) -> float | int | None:
    """The right amount, or None when the task cannot be done (unknown item)."""
    if task["item"] not in ITEMS:
        return None
    price, cur = ITEMS[task["item"]]
    total = compute_total(price, task["quantity"])["total"]
    return total if cur == task["currency"] else convert_currency(total, cur, task["currency"])["amount"]


def gold_trajectory(task: dict[str, Any], rng: random.Random) -> Trajectory:
    """The gold conversation for ``task``, with observations from the real tools."""
    reg = registry()
    docs = reg.docs()
    rng.shuffle(docs)
    conv: list[dict[str, str]] = [{"from": "user", "value": instruction(task)}]

    def step(thought: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        conv.append({"from": "assistant", "value": f"{thought} {NEXT_CALLER}"})
        conv.append({"from": "caller", "value": _call(name, args)})
        obs, _ = reg.call(name, json.dumps(args))
        conv.append({"from": "observation", "value": obs})
        return json.loads(obs)

    item, q, want = task["item"], task["quantity"], task["currency"]
    reply = step(f"First I need the price of {item}.", "get_price", {"item": item})
    if reply["error"]:
        conv.append({"from": "assistant", "value": f"The price of {item} is not available. {NEXT_GIVE_UP}"})
        conv.append({"from": "conclusion", "value": "none"})
        return Trajectory(tools=docs, instruction=instruction(task), conversations=conv)
    price, cur = reply["response"]["price"], reply["response"]["currency"]
    amount = price
    if q > 1:
        amount = step(
            f"One {item} costs {price} {cur}; I need the total for {q}.",
            "compute_total",
            {"price": price, "quantity": q},
        )["response"]["total"]
    if cur != want:
        amount = step(
            f"The total is {amount} {cur}; I must convert it to {want}.",
            "convert_currency",
            {"amount": amount, "from_currency": cur, "to_currency": want},
        )["response"]["amount"]
    conv.append({"from": "assistant", "value": f"The amount is known. {NEXT_CONCLUSION}"})
    conv.append({"from": "conclusion", "value": f"{q} {item} cost {amount} {want}."})
    return Trajectory(tools=docs, instruction=instruction(task), conversations=conv)


def make_split(n: int, seed: int, give_up_rate: float = 0.1) -> list[tuple[dict[str, Any], Trajectory]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        task = make_task(rng, give_up_rate)
        out.append((task, gold_trajectory(task, rng)))
    return out


def task_success(task: dict[str, Any], status: str, answer: str) -> bool:
    """Success in the live runtime: the right amount and currency in the final answer, or give-up on an impossible
    task."""
    want = expected_answer(task)
    if want is None:
        return status == "gave_up"
    return status == "finished" and f" {want} {task['currency']}" in f" {answer}"
