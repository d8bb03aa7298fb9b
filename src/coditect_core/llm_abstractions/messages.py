"""Chat messages: the one input format every provider accepts, validated once.

A prompt is either a plain string (one user turn) or a list of ``{"role", "content"}`` mappings
whose role is ``system``, ``user``, ``assistant`` or ``tool`` and whose content is a string.

Tool calling adds two shapes (:mod:`.tool_types`):

* an assistant message may carry ``tool_calls``: a list of :class:`~.tool_types.ToolCall` (or
  mappings with ``id``, ``name``, ``arguments``); its ``content`` may then be empty;
* a ``tool`` message answers one call: ``tool_call_id`` (the call's id), ``name`` (the tool's),
  ``content`` (the result as text) and ``is_error`` (the tool failed; the model should react).

Every call of an assistant message must be answered by a ``tool`` message before the next user or
assistant message (Anthropic refuses a conversation otherwise): :func:`normalize_messages` checks
it. Providers call :func:`split_system` and :func:`merge_consecutive` to fit their wire format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NotRequired, TypeAlias, TypedDict

from ..errors import LlmRequestError
from .tool_types import ToolCall

__all__ = [
    "ROLES",
    "Message",
    "Messages",
    "merge_consecutive",
    "normalize_messages",
    "split_system",
    "tool_message",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
_ROLE_SET = frozenset(ROLES)
_PLAIN_ROLES = frozenset(("system", "user", "assistant"))


class Message(TypedDict):
    """One chat turn. The optional keys belong to tool calling (see the module's docstring)."""

    role: Role
    content: str
    tool_calls: NotRequired[list[ToolCall]]
    """An assistant's calls (none: the key is absent)."""
    tool_call_id: NotRequired[str]
    """A ``tool`` message: the id of the call it answers."""
    name: NotRequired[str]
    """A ``tool`` message: the tool's name."""
    is_error: NotRequired[bool]
    """A ``tool`` message: the result is an error."""


def tool_message(call: ToolCall, content: str, *, is_error: bool = False) -> Message:
    """The ``tool`` message answering ``call`` with ``content``."""
    return {
        "role": "tool",
        "content": content,
        "tool_call_id": call.id,
        "name": call.name,
        "is_error": is_error,
    }


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
        if type(item) is dict and len(item) == 2:  # the common case, without the ABC machinery
            role, content = item.get("role"), item.get("content")
            if role in _PLAIN_ROLES and type(content) is str:
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
        content = item.get("content")
        if content is None and item.get("tool_calls"):
            content = ""  # an assistant's message of calls only
        elif "content" not in item:
            raise LlmRequestError(f"messages[{i}] has no 'content'", provider=provider)
        if not isinstance(content, str):
            raise LlmRequestError(
                f"messages[{i}].content must be a string, not {type(content).__name__}",
                provider=provider,
            )
        out.append(_with_tool_fields(i, item, {"role": role, "content": content}, provider))
    if out[-1]["role"] == "system" and all(m["role"] == "system" for m in out):
        raise LlmRequestError(
            "messages has only system messages: add a user message", provider=provider
        )
    _check_tool_answers(out, provider)
    return out


def _with_tool_fields(
    i: int, item: Mapping[str, object], message: Message, provider: str | None
) -> Message:
    """``message`` with ``item``'s tool-calling keys, checked."""
    role = message["role"]
    calls = item.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise LlmRequestError(
                f"messages[{i}] has tool_calls but its role is {role!r}: only an assistant's "
                "message carries them",
                provider=provider,
            )
        if isinstance(calls, str | bytes) or not isinstance(calls, Sequence):
            raise LlmRequestError(f"messages[{i}].tool_calls must be a list", provider=provider)
        parsed: list[ToolCall] = []
        for j, call in enumerate(calls):
            if isinstance(call, ToolCall):
                parsed.append(call)
            elif isinstance(call, Mapping) and "id" in call and "name" in call:
                parsed.append(ToolCall.from_dict(call))
            else:
                raise LlmRequestError(
                    f"messages[{i}].tool_calls[{j}] must be a ToolCall or a mapping with "
                    "'id', 'name' and 'arguments'",
                    provider=provider,
                )
        if parsed:
            message["tool_calls"] = parsed
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise LlmRequestError(
                f"messages[{i}] is a tool result without a 'tool_call_id'", provider=provider
            )
        message["tool_call_id"] = call_id
        name = item.get("name")
        message["name"] = name if isinstance(name, str) else ""
        message["is_error"] = bool(item.get("is_error", False))
    return message


def _check_tool_answers(messages: list[Message], provider: str | None) -> None:
    """Every tool call is answered by a ``tool`` message before the next other message, and
    every ``tool`` message answers a call of the assistant message before it."""
    pending: dict[str, int] = {}
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            if call_id not in pending:
                raise LlmRequestError(
                    f"messages[{i}] answers tool call {call_id!r}, which the assistant message "
                    "before it did not make",
                    provider=provider,
                )
            del pending[call_id]
            continue
        if pending:
            missing = ", ".join(sorted(pending))
            raise LlmRequestError(
                f"messages[{i}] comes before tool call(s) {missing} were answered: answer every "
                "call with a 'tool' message first",
                provider=provider,
            )
        for call in message.get("tool_calls", ()):
            pending[call.id] = i
    if pending:
        raise LlmRequestError(
            f"tool call(s) {', '.join(sorted(pending))} of the last assistant message are not "
            "answered: add a 'tool' message for each",
            provider=provider,
        )


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Take every system message out, joined by blank lines, for APIs with a separate field."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    return ("\n\n".join(system) if system else None), rest


def merge_consecutive(messages: list[Message]) -> list[Message]:
    """Join consecutive turns of the same role (blank line between), for strictly alternating APIs.

    If the first turn is the assistant's, a ``"(continue)"`` user turn is put before it, since such
    APIs must start with the user (and refuse empty content). Call :func:`split_system` first.
    Messages of tool calling (calls, results) are kept as they are: the provider maps them.
    """
    merged: list[Message] = []
    for m in messages:
        if (
            merged
            and merged[-1]["role"] == m["role"]
            and m["role"] != "tool"
            and "tool_calls" not in m
            and "tool_calls" not in merged[-1]
        ):
            merged[-1] = {
                "role": m["role"],
                "content": merged[-1]["content"] + "\n\n" + m["content"],
            }
        else:
            merged.append(m.copy())  # a copy: the caller's list stays as it was
    if merged and merged[0]["role"] == "assistant":
        merged.insert(0, {"role": "user", "content": "(continue)"})
    return merged
