"""The call journal, as the domain sees it: what identifies a request, and the wrapper that
journals an execution's requests, answers them from the journal (cache, replay) or sends them on.

A request is identified by a content hash of what determines its answer (:func:`journal_request`):
the provider, model and base URL, the messages, and every setting sent with it (temperature, max
tokens, seed, tools, output schema and the other provider options, and the call's own keyword
arguments); never the key, the timeout or the retry policy. The messages are hashed one by one
and chained (each prefix of the conversation has a hash of its parent prefix and its last
message), so a store can keep each message and each prefix once: a conversation of N turns costs
O(N) stored bytes, not O(N²).

Tool calling is part of a request's identity: the tools' declarations (name, description, schema,
strict) are in its settings, and a message's calls (an assistant's ``tool_calls``) or the call it
answers (a ``tool`` message's id, tool name and error flag) are in that message's hash (a plain
message hashes as it always did). An answer keeps the calls it asked for, and one served from the
journal asks for them again.

:class:`CallJournal` is what the executor needs from a journal (a state store implements it for
one run, :class:`~coditect_core.store.journal.RunJournal`): find an answer, and record one.
:class:`JournaledLlm` wraps an agent's request pipeline for one execution (inside
:class:`~.attempts.AttemptedLlm`): a request answered from the journal never reaches the
pipeline (no gate, no price, no provider: zero cost and zero tokens spent, so a budget does not
count it; ``LlmResponse.cached``); any other request goes on and its answer is recorded.

When the journal answers (:func:`cache_allowed`): with ``replay`` always (a request not in the
journal fails with :class:`~coditect_core.errors.LlmJournalMissError`); with the run's ``--cache``
or an agent's ``cache: true`` only for a temperature of 0 or unset (a sampled answer is meant to
vary); with an agent's ``cache: always`` whatever the temperature; ``cache: false`` on an agent
turns ``--cache`` off for it. A command or script agent acts (it may write files), so ``--cache``
leaves it alone: only its own ``cache:`` lets the journal answer for it. An interactive agent
makes no request: nothing is journaled, and a replay hands its task to a person again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import LlmJournalMissError
from ..llm_abstractions.base_llm import BaseLlm, LlmResponse, Usage
from ..llm_abstractions.messages import Message, Messages, normalize_messages
from ..llm_abstractions.tool_types import Tool, ToolCall
from ..llm_abstractions.wrapper import WrapperLlm

__all__ = [
    "CACHE_SETTINGS",
    "CacheSetting",
    "CallJournal",
    "JournalAnswer",
    "JournalRequest",
    "JournaledLlm",
    "cache_allowed",
    "journal_request",
    "message_hash",
]

CacheSetting = Literal["off", "on", "always"]
CACHE_SETTINGS: tuple[str, ...] = ("off", "on", "always")

_NOT_IN_KEY = frozenset({"timeout", "retry", "api_key", "deadline"})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def message_hash(role: str, content: str, tool_fields: Mapping[str, Any] | None = None) -> str:
    """The hash of one message (what the store keeps it under); ``tool_fields``: its tool
    calling keys (see :func:`_tool_fields`), when it has any."""
    if tool_fields:
        return _digest(_canonical([role, content, tool_fields]))
    return _digest(_canonical([role, content]))


def _tool_fields(message: Message) -> dict[str, Any]:
    """A message's tool-calling keys as plain data (none for a plain message)."""
    fields: dict[str, Any] = {}
    if "tool_calls" in message:
        fields["tool_calls"] = [call.to_dict() for call in message["tool_calls"]]
    if message["role"] == "tool":
        fields["tool_call_id"] = message.get("tool_call_id", "")
        fields["name"] = message.get("name", "")
        fields["is_error"] = bool(message.get("is_error", False))
    return fields


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """``tools`` as their declarations (plain data, hashed whatever their key order)."""
    tools = params.get("tools")
    if isinstance(tools, list | tuple):
        params["tools"] = [t.to_dict() if isinstance(t, Tool) else t for t in tools]
    return params


@dataclass(frozen=True, slots=True)
class JournalRequest:
    """One request as the journal keeps it. ``key`` identifies it; ``chain`` is its conversation
    as prefixes, ``(prefix hash, parent prefix hash or None, message hash)``, first to last;
    ``messages`` are the ``(role, content)`` of each link."""

    key: str
    provider: str
    model: str
    base_url: str | None
    params: dict[str, Any]
    chain: tuple[tuple[str, str | None, str], ...]
    messages: tuple[tuple[str, str], ...]

    @property
    def prefix(self) -> str:
        """The hash of the whole conversation (its last prefix)."""
        return self.chain[-1][0]


def journal_request(
    provider: str,
    model: str,
    base_url: str | None,
    settings: Mapping[str, Any],
    messages: Messages,
    call_options: Mapping[str, Any] | None = None,
) -> JournalRequest:
    """The journal's request for ``messages`` sent with ``settings`` (the agent's) and
    ``call_options`` (the call's keyword arguments, which win), keyed by content hash."""
    params = {
        k: v
        for k, v in {**settings, **(call_options or {})}.items()
        if k not in _NOT_IN_KEY and v is not None
    }
    model = str(params.pop("model", None) or model)
    params = _plain_params(params)
    msgs = normalize_messages(messages, provider=provider)
    chain: list[tuple[str, str | None, str]] = []
    parent: str | None = None
    for m in msgs:
        mh = message_hash(m["role"], m["content"], _tool_fields(m))
        prefix = _digest(f"{parent or ''}:{mh}")
        chain.append((prefix, parent, mh))
        parent = prefix
    params = json.loads(_canonical(params))  # plain JSON values, as stored
    key = _digest(
        _canonical(
            {
                "provider": provider,
                "model": model,
                "base_url": base_url,
                "params": params,
                "conversation": parent,
            }
        )
    )
    return JournalRequest(
        key,
        provider,
        model,
        base_url,
        params,
        tuple(chain),
        tuple((m["role"], m["content"]) for m in msgs),
    )


@dataclass(frozen=True, slots=True)
class JournalAnswer:
    """A response as the journal keeps it."""

    text: str
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    response_id: str | None = None
    tool_calls: Any = None
    """The calls the answer asked for, as :meth:`ToolCall.to_dict` data (``None``: none)."""
    cost_usd: float | None = None
    latency_s: float | None = None
    run_id: int | None = None
    """The run that got it from the provider (or from the journal)."""

    @classmethod
    def of(cls, response: LlmResponse) -> JournalAnswer:
        return cls(
            text=response.text,
            model=response.model,
            usage=response.usage,
            finish_reason=response.finish_reason,
            response_id=response.response_id,
            tool_calls=[call.to_dict() for call in response.tool_calls] or None,
            cost_usd=response.cost_usd,
            latency_s=response.latency_s,
        )

    def calls(self) -> list[ToolCall]:
        """The tool calls the answer asked for."""
        return [ToolCall.from_dict(data) for data in self.tool_calls or ()]


class CallJournal(Protocol):
    """The journal of one run."""

    replay: bool
    """Every request must be answered from the journal (``coditect run --replay``)."""

    async def find(self, request: JournalRequest) -> JournalAnswer | None:
        """A recorded answer to ``request``, if any (for a replay: as of the replayed run)."""
        ...

    def record(
        self, request: JournalRequest, answer: JournalAnswer, *, task_id: str, source: str
    ) -> None:
        """Keep ``answer`` to ``request`` (``source``: ``provider``, ``cache`` or ``replay``);
        written in order with the run's other writes, not waited for."""
        ...


def cache_allowed(setting: str | None, run_cache: bool, temperature: float | None) -> bool:
    """Whether an agent's requests may be answered from the journal in a run that is not a
    replay. ``setting``: the agent's ``cache`` (``None``: unset); ``run_cache``: ``--cache``."""
    if setting == "always":
        return True
    if setting == "off" or (setting is None and not run_cache):
        return False
    return not temperature  # 0 or unset: a deterministic request


class JournaledLlm(WrapperLlm):
    """An agent's pipeline for one execution of ``task_id``, with its requests journaled.

    ``request`` makes the journal's request of a call (``messages`` and the call's keyword
    arguments): :meth:`~.executor.TaskExecutor.journal_request`'s, from the agent's spec, so that
    a request has the same key wherever the agent's requests run; ``use_cache``: whether an
    answer may come from the journal (a replay always takes it from there).
    """

    def __init__(
        self,
        wrapped: BaseLlm,
        journal: CallJournal,
        *,
        request: Callable[[Messages, Mapping[str, Any]], JournalRequest],
        task_id: str,
        use_cache: bool,
    ) -> None:
        super().__init__(wrapped)
        self.journal = journal
        self.make_request = request
        self.task_id = task_id
        self.use_cache = use_cache or journal.replay

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        request = self.make_request(messages, kwargs)
        if self.use_cache:
            found = await self.journal.find(request)
            if found is not None:
                source = "replay" if self.journal.replay else "cache"
                self.journal.record(request, found, task_id=self.task_id, source=source)
                return LlmResponse(
                    text=found.text,
                    model=found.model or request.model,
                    usage=Usage(),  # nothing was spent (the journal keeps what it once cost)
                    finish_reason=found.finish_reason,
                    provider=self.provider,
                    cost_usd=0.0,
                    response_id=found.response_id,
                    cached=True,
                    tool_calls=found.calls(),
                )
            if self.journal.replay:
                raise LlmJournalMissError(
                    f"not in the journal: no recorded answer to this request of task "
                    f"{self.task_id!r} (model {request.model}, {len(request.chain)} messages, "
                    f"request {request.key[:12]}) as of the replayed run",
                    provider=self.provider,
                )
        response = await self.wrapped.request_async(messages, deadline=deadline, **kwargs)
        self.journal.record(
            request, JournalAnswer.of(response), task_id=self.task_id, source="provider"
        )
        return response
