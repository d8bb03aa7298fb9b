"""``FakeLlm``: a scripted model for tests, yours and ours. No network, no key, deterministic.

>>> import asyncio
>>> from coditect_core.errors import LlmRateLimitError
>>> from coditect_core.llm_abstractions import FakeLlm
>>> llm = FakeLlm(["first reply", LlmRateLimitError("slow down", retry_after=0), "second"])
>>> llm.generate_content("hi")
'first reply'
>>> response = asyncio.run(llm.generate_async("again"))  # the 429 is retried
>>> response.text, response.attempts
('second', 2)
>>> [call.messages[-1]["content"] for call in llm.calls]
['hi', 'again', 'again']

Each attempt takes the next item of ``replies``: a string is returned, a list of
:class:`~.tool_types.ToolCall` asks for those tool calls (finish reason ``tool_calls``), an
:class:`LlmResponse` is returned as it is, an exception (instance or class) is raised
(retryable ones are retried by the usual policy, which takes the next item), a
callable is called with the messages and its result used the same way. With the script
exhausted, ``default`` answers (a string, or a callable of the messages; by default an echo of the
last user message). ``latency`` seconds pass before every reply. Every attempt is logged in
``calls`` (messages and :class:`CallParams`) unless ``record_calls`` is false (for benchmarks:
the log keeps every call's messages as long as the instance lives). Streams are cut into
``chunk_size`` characters. Retries wait no time unless ``retry`` says otherwise.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import LlmRequestError
from .base_llm import BaseLlm, CallParams, LlmResponse, StreamState, Usage
from .messages import Message
from .retry import RetryPolicy
from .tool_types import ToolCall

__all__ = ["FakeCall", "FakeLlm"]

Answer = str | list[ToolCall] | LlmResponse
Reply = (
    Answer
    | BaseException
    | type[BaseException]
    | Callable[[list[Message]], "Answer | BaseException"]
)


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call a :class:`FakeLlm` received."""

    messages: list[Message]
    params: CallParams


_ECHO = "fake reply to: "  # three words


def _echoed(messages: list[Message]) -> str:
    """What :func:`_echo` repeats: the last user message (else the last one), cut at 200."""
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"][:200]
    return messages[-1]["content"][:200]


def _echo(messages: list[Message]) -> str:
    return _ECHO + _echoed(messages)


@functools.lru_cache(maxsize=4096)
def _count_tokens(text: str) -> int:
    """Words, as the fake's token count (cached: the same system prompt comes back each call)."""
    return len(text.split())


class FakeLlm(BaseLlm):
    """A model whose replies, failures and latency the test scripts."""

    provider = "fake"
    default_model = "fake-model"
    supports_tools = True
    native_output = True  # (a scripted reply is what it is: `params.output` is only recorded)

    def __init__(
        self,
        replies: Iterable[Reply] | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        latency: float = 0.0,
        default: str | Callable[[list[Message]], str] = _echo,
        chunk_size: int = 8,
        retry: RetryPolicy | None = None,
        record_calls: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(
            model,
            api_key,
            retry=retry if retry is not None else RetryPolicy(initial_delay=0.0, max_delay=0.0),
            **settings,
        )
        self.replies: deque[Reply] = deque(replies or ())
        self.latency = latency
        self.default = default
        self.chunk_size = chunk_size
        self.record_calls = record_calls
        self.calls: list[FakeCall] = []
        self.closed = 0

    def _next_reply(self, messages: list[Message]) -> Answer:
        item: Any = self.replies.popleft() if self.replies else self.default
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item(f"scripted {item.__name__}")
        if callable(item) and not isinstance(item, BaseException):
            item = item(messages)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, LlmResponse | list):
            return item
        return str(item)

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        if self.record_calls:
            self.calls.append(FakeCall(messages, params))
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)
        completion = -1
        if not self.replies and self.default is _echo and params.max_tokens is None:
            echoed = _echoed(messages)  # (the usual case, counted from the cache: a message)
            text, completion = _ECHO + echoed, 3 + _count_tokens(echoed)
        else:
            answer = self._next_reply(messages)
            if isinstance(answer, LlmResponse):
                return answer
            if isinstance(answer, list):
                return self._calling(messages, params, answer)
            text = answer
            if params.max_tokens is not None:
                text = " ".join(text.split(" ")[: params.max_tokens])
        prompt = sum([_count_tokens(m["content"]) for m in messages])
        if completion < 0:
            completion = _count_tokens(text)
        usage = Usage(prompt, completion, prompt + completion)
        return LlmResponse(text, params.model, usage, "stop")

    def _calling(
        self, messages: list[Message], params: CallParams, calls: list[ToolCall]
    ) -> LlmResponse:
        """A scripted turn that calls tools (each must be one the call was given)."""
        offered = {tool.name for tool in params.tools}
        for call in calls:
            if not isinstance(call, ToolCall):
                raise TypeError(f"a scripted tool call must be a ToolCall, not {call!r}")
            if call.name not in offered:
                raise LlmRequestError(
                    f"scripted call of tool {call.name!r}, which this call was not given "
                    f"(given: {', '.join(sorted(offered)) or 'none'})",
                    provider=self.provider,
                )
        prompt = sum([_count_tokens(m["content"]) for m in messages])
        completion = sum(len(call.arguments_json()) // 4 + 1 for call in calls)
        usage = Usage(prompt, completion, prompt + completion)
        return LlmResponse("", params.model, usage, "tool_calls", tool_calls=list(calls))

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        response = await self._generate(client, messages, params)
        state.usage, state.finish_reason, state.model = (
            response.usage,
            response.finish_reason,
            response.model,
        )
        state.tool_calls = list(response.tool_calls)
        text = response.text
        for i in range(0, len(text), self.chunk_size):
            yield text[i : i + self.chunk_size]

    async def _close_client(self, client: Any) -> None:
        self.closed += 1

    def _create_client(self) -> Any:
        return object()
