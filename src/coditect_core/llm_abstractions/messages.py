"""Chat messages: the one input format every provider accepts, validated once.

A prompt is either a plain string (one user turn) or a list of ``{"role", "content"}`` mappings
whose role is ``system``, ``user`` or ``assistant`` and whose content is a string. Providers call
:func:`split_system` and :func:`merge_consecutive` to fit their wire format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypeAlias, TypedDict

from ..errors import LlmRequestError

__all__ = [
    "ROLES",
    "Message",
    "Messages",
    "merge_consecutive",
    "normalize_messages",
    "split_system",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
_ROLE_SET = frozenset(ROLES)


class Message(TypedDict):
    """One chat turn."""

    role: Role
    content: str


Messages: TypeAlias = str | Sequence[Mapping[str, object]]


def normalize_messages(messages: Messages, *, provider: str | None = None) -> list[Message]:
    """Validate ``messages`` and return them as a fresh list of :class:`Message`.

    Raises :class:`LlmRequestError` naming the offending item for an empty list, an item that is
    not a mapping, a missing or unknown role, or content that is not a string.
    """
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if type(messages) is not list and (
        isinstance(messages, Mapping | bytes | bytearray) or not isinstance(messages, Sequence)
    ):
        raise LlmRequestError(
            f"messages must be a string or a list of {{'role', 'content'}} mappings, "
            f"not {type(messages).__name__}",
            provider=provider,
        )
    if not messages:
        raise LlmRequestError("messages is empty: give at least one message", provider=provider)
    out: list[Message] = []
    for i, item in enumerate(messages):
        if type(item) is dict:  # the common case, checked without the ABC machinery
            role, content = item.get("role"), item.get("content")
            if role in _ROLE_SET and type(content) is str:
                out.append({"role": role, "content": content})
                continue
        if not isinstance(item, Mapping):
            raise LlmRequestError(
                f"messages[{i}] must be a mapping with 'role' and 'content', "
                f"not {type(item).__name__}",
                provider=provider,
            )
        if "role" not in item:
            raise LlmRequestError(f"messages[{i}] has no 'role'", provider=provider)
        role = item["role"]
        if role not in ROLES:
            raise LlmRequestError(
                f"messages[{i}].role is {role!r}: expected one of {', '.join(ROLES)}",
                provider=provider,
            )
        if "content" not in item:
            raise LlmRequestError(f"messages[{i}] has no 'content'", provider=provider)
        content = item["content"]
        if not isinstance(content, str):
            raise LlmRequestError(
                f"messages[{i}].content must be a string, not {type(content).__name__}",
                provider=provider,
            )
        out.append({"role": role, "content": content})
    if out[-1]["role"] == "system" and all(m["role"] == "system" for m in out):
        raise LlmRequestError(
            "messages has only system messages: add a user message", provider=provider
        )
    return out


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Take every system message out, joined by blank lines, for APIs with a separate field."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    return ("\n\n".join(system) if system else None), rest


def merge_consecutive(messages: list[Message]) -> list[Message]:
    """Join consecutive turns of the same role (blank line between), for strictly alternating APIs.

    If the first turn is the assistant's, a ``"(continue)"`` user turn is put before it, since such
    APIs must start with the user (and refuse empty content). Call :func:`split_system` first.
    """
    merged: list[Message] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {
                "role": m["role"],
                "content": merged[-1]["content"] + "\n\n" + m["content"],
            }
        else:
            merged.append({"role": m["role"], "content": m["content"]})
    if merged and merged[0]["role"] == "assistant":
        merged.insert(0, {"role": "user", "content": "(continue)"})
    return merged
