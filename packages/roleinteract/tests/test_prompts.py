"""The official zero-shot prompts, pinned character for character (official ``dataset.py``, ``format_prompt``)."""

from __future__ import annotations

from pathlib import Path

from roleinteract.data import load_items
from roleinteract.prompts import build_prompt, chat_messages, group_profiles, prompt_hash
from roleinteract.synthetic import raw_item, write_items


def _one(tmp_path: Path, raw: dict) -> str:
    return build_prompt(load_items(write_items(tmp_path / "x.json", [raw]))[0])


def test_role_style_prompt_en(tmp_path: Path) -> None:
    raw = raw_item("Individual-SA-RoleStyle", turns=2, n_choices=2)
    expected = (
        "\n==Profile==\nBob is a baker.\nHe likes walnuts.\n\n==Conversations==\n"
        "User: utterance 0 about walnut\nBob: utterance 1 about walnut\n\n\n"
        "You are playing the role of Bob, you need to embody the knowledge and style of Bob.\n"
        "Based on the provided role Profile and Conversations, please choose the best option (A, B, C, or D):\n"
        "A. option text A\nB. option text B\n\n\nYour selection:\n"
    )
    assert _one(tmp_path, raw) == expected


def test_emotion_prompt_zh_quotes_the_last_utterance(tmp_path: Path) -> None:
    raw = raw_item("Individual-EP-DialogueEmotionDetect", lang="zh", turns=1, n_choices=2)
    expected = (
        "\n==对话历史==\nUser: utterance 0 about walnut\n\n\n"
        '单选选择题，选择最符合"utterance 0 about walnut"说话者当时心情的选项()\n'
        "A. option text A\nB. option text B\n\n\n你的选择:\n"
    )
    assert _one(tmp_path, raw) == expected


def test_situation_and_humour_prompts_are_dialogue_then_options(tmp_path: Path) -> None:
    for category in ("Individual-EP-SituationUnderstanding", "Individual-EP-HumorSarcasmDetect"):
        raw = raw_item(category, turns=1, n_choices=2)
        assert _one(tmp_path, raw) == "User: utterance 0 about walnut\n\nA. option text A\nB. option text B\n"


def test_memory_prompt_ends_with_assistant_and_a_space(tmp_path: Path) -> None:
    raw = raw_item("Individual-MEM", turns=1, label=["walnut"])
    prompt = _one(tmp_path, raw)
    assert prompt.startswith("\n==Profile==\nBob is a baker.")
    assert prompt.endswith("(one term is enough):\nAssistant: \n")
    assert "A." not in prompt


def test_group_prompt_lists_every_profile_cut_to_ten_lines(tmp_path: Path) -> None:
    raw = raw_item("Group-SAP-Neutral", lang="zh", turns=1, n_choices=4)
    raw["meta"]["profile"]["Alice"] = "\n".join(f"line {i}" for i in range(15)) + "\n\n\nlater"
    prompt = _one(tmp_path, raw)
    assert "Bob is a baker.\nHe likes walnuts.\n\n\nline 0\n" in prompt
    assert "line 9\n" in prompt and "line 10" not in prompt
    assert prompt.endswith("你的选择（你只能输出A，B，C或D，不要输出其他单词。）：\n")
    assert group_profiles({"a": "x\n\n\ny"}) == "x\ny"


def test_prompt_hash_and_chat_messages() -> None:
    assert prompt_hash("a") != prompt_hash("b")
    assert len(prompt_hash("a")) == 16
    assert chat_messages("q") == [{"role": "user", "content": "q"}]
    assert chat_messages("q", "sys")[0] == {"role": "system", "content": "sys"}


def test_every_shipped_item_gets_a_prompt_with_its_options(real_data) -> None:
    items = load_items(real_data("socialbench", "emotional_perception.json"))
    for item in items:
        prompt = build_prompt(item)
        for letter, text in item.choices.items():
            assert f"{letter}. {text}\n" in prompt
