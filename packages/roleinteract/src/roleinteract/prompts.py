"""Prompts identical to the official evaluation (X-PLUG/SocialBench ``dataset.py``, ``format_prompt``).

The benchmark is zero-shot: one prompt string per item, chosen by category and language. The wording of the
templates is part of the benchmark protocol (changing it changes the scores), so they are reproduced
character for character; a test pins a rendered prompt of each kind. The data's ``instruction`` field is not
used, exactly as in the official code. :func:`chat_messages` wraps the prompt as one user turn, so each
model's own chat template is applied by its backend.
"""

from __future__ import annotations

import hashlib
import re

from roleinteract.data import (
    EP_EMOTION,
    EP_HUMOR,
    EP_SITUATION,
    GROUP_CATEGORIES,
    MEMORY,
    SA_KNOWLEDGE,
    SA_STYLE,
    Item,
)

_ROLE_EN = """
==Profile==
{role_profile}

==Conversations==
{conversations}

You are playing the role of {role_name}, you need to embody the knowledge and style of {role_name}.
Based on the provided role Profile and Conversations, please choose the best option (A, B, C, or D):
{options}

Your selection:
"""

_ROLE_ZH = """
==角色描述==
{role_profile}

==对话历史==
{conversations}

你要扮演{role_name}角色，你在聊天中要具备该角色对应的知识背景，语气风格等特征。
请根据所给的{role_name}角色描述和对话历史，从下面四个选项（A. B. C.和D.）中选择符合{role_name}的选项：
{options}

你的选择：
"""

_EMOTION_EN = """
==Conversations==
{conversations}

Select the option () that best matches the mood in utterance "{utterance}". Single Choice
{options}

Your selection:
"""

_EMOTION_ZH = """
==对话历史==
{conversations}

单选选择题，选择最符合"{utterance}"说话者当时心情的选项()
{options}

你的选择:
"""

_OPEN_ZH = (
    """
==角色描述==
{role_profile}

==对话历史==
{conversations}

你要扮演{role_name}角色，你在聊天中要具备该角色对应的知识背景，语气风格等特征。
请根据所给的{role_name}角色描述和对话历史，根据最后一个User的对话再补充一轮你作为Assistant的回复（一轮就好）：
Assistant:"""
    + " \n"
)

_OPEN_EN = (
    """
==Profile==
{role_profile}

==Conversations==
{conversations}

You are playing the role of {role_name}, you need to embody the knowledge and style of {role_name}.
Based on the provided role Profile and Conversations, you must produce a reply as the Assistant to response to the latest User's message (one term is enough):
Assistant:"""
    + " \n"
)

_GROUP_EN = """
==Profiles==
{role_profiles}

==Conversations==
{conversations}

You are playing the role of {role_name}, you need to embody the social preference of {role_name}.
Based on the provided role profile and conversations, please choose the best option (A, B, C, or D) as your response:
{options}

Your selection (You can only output A, B, C or D, and no other characters.):
"""

_GROUP_ZH = """
==角色描述==
{role_profiles}

==对话历史==
{conversations}

你要扮演{role_name}角色，你在聊天中要具备该角色对应的社交偏好。
请根据所给的{role_name}角色描述和对话历史，从下面四个选项（A. B. C.和D.）中选择最优的选项作为你的回复：
{options}

你的选择（你只能输出A，B，C或D，不要输出其他单词。）：
"""

GROUP_PROFILE_LINES = 10  # the official code keeps the first 10 non-empty lines of each profile


def render_dialogue(item: Item) -> str:
    """``"<speaker>: <text>\\n"`` per turn."""
    return "".join(f"{turn.speaker}: {turn.text}\n" for turn in item.dialogue)


def render_options(item: Item) -> str:
    """``"<letter>. <text>\\n"`` per option, in the file's order."""
    return "".join(f"{letter}. {text}\n" for letter, text in (item.choices or {}).items())


def group_profiles(profiles: dict[str, str], lines: int = GROUP_PROFILE_LINES) -> str:
    """All role profiles, each cut to its first ``lines`` lines (blank lines collapsed), three newlines apart."""
    cut = ["\n".join(re.sub(r"\n+", "\n", text).split("\n")[:lines]) for text in profiles.values()]
    return "\n\n\n".join(cut)


def build_prompt(item: Item) -> str:
    """The official zero-shot prompt of ``item`` (``format_prompt`` of the official ``dataset.py``)."""
    en = item.lang == "en"
    dialogue = render_dialogue(item)
    options = render_options(item)
    if item.category == MEMORY:
        return (_OPEN_EN if en else _OPEN_ZH).format_map(
            {
                "role_profile": item.profiles[item.role_name],
                "conversations": dialogue,
                "role_name": item.role_name,
            }
        )
    if item.category == EP_EMOTION:
        return (_EMOTION_EN if en else _EMOTION_ZH).format_map(
            {"conversations": dialogue, "options": options, "utterance": item.dialogue[-1].text}
        )
    if item.category in (EP_HUMOR, EP_SITUATION):
        return f"{dialogue}\n{options}"
    if item.category in GROUP_CATEGORIES:
        return (_GROUP_EN if en else _GROUP_ZH).format_map(
            {
                "role_profiles": group_profiles(item.profiles),
                "conversations": dialogue,
                "role_name": item.role_name,
                "options": options,
            }
        )
    if item.category in (SA_STYLE, SA_KNOWLEDGE):
        return (_ROLE_EN if en else _ROLE_ZH).format_map(
            {
                "role_profile": item.profiles[item.role_name],
                "conversations": dialogue,
                "role_name": item.role_name,
                "options": options,
            }
        )
    raise ValueError(f"{item.item_id}: no prompt for category {item.category!r}")


def chat_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """The prompt as a chat: an optional system turn, then the prompt as the user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": prompt}]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
