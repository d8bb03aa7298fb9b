"""The values of one call: :class:`CallParams` in; :class:`LlmResponse` with its :class:`Usage`
out; :class:`StreamState`, filled in as a stream goes.

Re-exported by :mod:`.base_llm` (and the package), where providers import them from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any

from .tool_types import Tool, ToolCall, ToolChoice

__all__ = [
    "CallParams",
    "FinishReason",
    "LlmResponse",
    "StreamState",
    "Usage",
    "finish_reason_of",
    "finish_with_calls",
]


class FinishReason(StrEnum):
    """Why a model stopped, in one small vocabulary whatever the provider said."""

    STOP = "stop"
    """It finished (end of turn, a stop sequence)."""
    LENGTH = "length"
    """Cut off: it reached ``max_tokens`` (or the context window); the reply is truncated."""
    TOOL_CALLS = "tool_calls"
    """It stopped to call tools."""
    CONTENT_FILTER = "content_filter"
    """The provider filtered or refused the reply."""
    UNKNOWN = "unknown"
    """A reason this vocabulary does not know."""


_FINISH_WORDS = {
    # openai, llama.cpp, commands: stop | length | tool_calls | function_call | content_filter
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    # anthropic stop_reason
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
    # gemini finish_reason (enum names)
    "finish_reason_unspecified": FinishReason.UNKNOWN,
    "safety": FinishReason.CONTENT_FILTER,
    "recitation": FinishReason.CONTENT_FILTER,
    "blocklist": FinishReason.CONTENT_FILTER,
    "prohibited_content": FinishReason.CONTENT_FILTER,
    "spii": FinishReason.CONTENT_FILTER,
}


def finish_reason_of(raw: object) -> FinishReason | None:
    """A provider's finish (or stop) reason in the one vocabulary: ``None`` stays ``None``
    (nothing said), an enum member is read by its name, a word nobody maps is ``unknown``."""
    if raw is None:
        return None
    if isinstance(raw, FinishReason):
        return raw
    word = raw.name if isinstance(raw, Enum) else str(raw)  # an SDK's enum: by its name
    return _FINISH_WORDS.get(word.strip().lower(), FinishReason.UNKNOWN)


def finish_with_calls(finish: str | None, calls: object) -> str | None:
    """A reply's finish reason when it may ask for tool calls: ``tool_calls`` if it does (some
    servers say ``stop``), unless it was cut off (``length``: its last call may be incomplete)."""
    if calls and finish_reason_of(finish) is not FinishReason.LENGTH:
        return FinishReason.TOOL_CALLS.value
    return finish


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (or a sum of calls). ``total_tokens`` defaults to the sum.

    ``prompt_tokens`` counts the whole prompt, cached parts included; ``cache_read_tokens`` and
    ``cache_write_tokens`` say how many of them the provider read from, or wrote to, its prompt
    cache (billed at their own prices), when its response says so.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = -1
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        if self.total_tokens < 0:
            object.__setattr__(self, "total_tokens", self.prompt_tokens + self.completion_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        """The counts; the cache counts only when there are any."""
        data = asdict(self)
        for name in ("cache_read_tokens", "cache_write_tokens"):
            if not data[name]:
                del data[name]
        return data


@dataclass(slots=True)
class LlmResponse:
    """The result of one successful call, retries included."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    """Why the model stopped (:class:`FinishReason`; ``length``: cut off at ``max_tokens``)."""
    attempts: int = 1
    latency_s: float = 0.0
    provider: str | None = None
    cost_usd: float | None = None
    """USD of the call, once priced (:class:`~.pricing.PricedLlm`); ``None``: unknown."""
    response_id: str | None = None
    """The provider's id of the response, when it gives one."""
    cached: bool = False
    """Answered from the call journal (a cache hit or a replay), not by the provider."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The tools the model asked to call, in its order (``finish_reason`` ``tool_calls``)."""
    value: Any = None
    """With ``output_schema``: the reply parsed and validated against it."""
    output_mode: str | None = None
    """With ``output_schema``: how it was asked for (``native``, ``tool`` or ``prompted``)."""
    output_tries: int = 0
    """With ``output_schema``: the calls it took (1: the first reply was valid)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``usage`` as a nested dict; ``tool_calls`` and ``value`` only
        when there are any)."""
        data = asdict(self)
        data["usage"] = self.usage.to_dict()
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        else:
            del data["tool_calls"]
        if self.value is None:
            del data["value"]
        elif hasattr(self.value, "model_dump"):  # a pydantic model instance
            data["value"] = self.value.model_dump(mode="json")
        if self.output_mode is None:
            del data["output_mode"], data["output_tries"]
        return data


@dataclass(slots=True)
class CallParams:
    """Settings of one call: instance defaults overridden by the call's keyword arguments.

    ``options`` are the provider-specific extras passed straight through to the SDK call.
    ``timeout`` bounds one attempt (for a stream: the wait for each delta). ``tools`` are the
    tools the model may call and ``tool_choice`` whether it must (:mod:`.tool_types`);
    ``output`` the schema of a native typed output.
    """

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    output: dict[str, Any] | None = None
    """``native`` typed output (:mod:`.output`): ``{"name", "schema"}``, the JSON Schema the
    reply must match, for the provider to map to its own structured-output field."""


@dataclass(slots=True)
class StreamState:
    """Filled in by a provider's ``_stream`` as the stream goes: what only arrives at the end."""

    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The calls the stream assembled from its deltas, complete."""
