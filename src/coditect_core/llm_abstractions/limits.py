"""Per-agent request limits: what an agent's next request waits for before it goes out.

:class:`LimitedLlm` wraps an agent's LLM so that every request passes its :class:`AgentGate`. A
gate is shared by every task using one agent (its whole queue):

* ``max_concurrency``: at most that many of the agent's requests in flight at once;
* ``requests_per_minute``: requests start at least ``60 / rpm`` seconds apart (an
  :class:`aiolimiter.AsyncLimiter` of capacity one), so that no window of time, however short,
  sees more than its share: providers enforce per-minute limits over shorter windows too;
* ``tokens_per_minute``: a token bucket holding a minute's worth, filled by each request's
  *real* usage (its prompt estimate is reserved when it starts, and replaced by the provider's
  count when it ends) and draining at ``tpm / 60`` per second; a request starts only when the
  bucket has room for its estimate, so a burst of big replies holds the queue back until the
  bucket drains;
* a pause: a 429 whose Retry-After says ``s`` seconds stops every request of the agent from
  starting for ``s`` seconds, not just the retry of the call that got it.

A gate with no limit set still honours pauses. Waiting is by timers, never by polling.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from ..errors import LlmRateLimitError
from .base_llm import BaseLlm, LlmResponse
from .messages import Messages, normalize_messages
from .wrapper import WrapperLlm

__all__ = ["AgentGate", "AgentLimits", "LimitedLlm", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class AgentLimits:
    """An agent's limits; ``None`` is no limit."""

    requests_per_minute: float | None = None
    tokens_per_minute: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.max_concurrency is not None
        )


class AgentGate:
    """The queue discipline of one agent's requests. ``acquire`` before, ``release`` after."""

    def __init__(self, limits: AgentLimits | None = None) -> None:
        self.limits = limits or AgentLimits()
        self.paused_until = 0.0  # loop time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset()

    def _reset(self) -> None:
        """Fresh primitives (they belong to one event loop)."""
        from aiolimiter import AsyncLimiter

        limits = self.limits
        self._slots = asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None
        rpm = limits.requests_per_minute
        self._rpm = AsyncLimiter(1, 60.0 / rpm) if rpm else None
        tpm = limits.tokens_per_minute
        self._capacity = float(tpm or 0)
        self._drain = (tpm or 0) / 60.0  # tokens per second
        self._level = 0.0
        self._checked = 0.0
        self.paused_until = 0.0

    @property
    def counts_tokens(self) -> bool:
        """Whether requests must reserve their tokens (a tokens-per-minute limit is set)."""
        return bool(self._capacity)

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                self._reset()
            self._loop = loop
        return loop

    def pause(self, seconds: float) -> None:
        """Start none of the agent's requests for ``seconds`` from now (a 429's Retry-After)."""
        loop = self._bind()
        self.paused_until = max(self.paused_until, loop.time() + max(seconds, 0.0))

    def _tokens_level(self, now: float) -> float:
        if self._level:
            self._level = max(self._level - (now - self._checked) * self._drain, 0.0)
        self._checked = now
        return self._level

    def _token_wait(self, now: float, estimate: float) -> float:
        """Seconds until the bucket has room for ``estimate`` (an empty bucket takes anything)."""
        if not self._capacity:
            return 0.0
        room_at = max(self._capacity - estimate, 0.0)
        excess = self._tokens_level(now) - room_at
        return excess / self._drain if excess > 0 else 0.0

    async def acquire(self, estimate: int = 0) -> None:
        """Wait for a slot, the end of any pause, the request rate and the token bucket.

        ``estimate`` (tokens, e.g. the prompt's) is reserved in the bucket until
        :meth:`release` replaces it with the real count. Cancelling the wait takes nothing.
        """
        loop = self._bind()
        if self._slots is not None:
            await self._slots.acquire()
        try:
            paced = self._rpm is None
            while True:
                now = loop.time()
                wait = max(self.paused_until - now, self._token_wait(now, estimate))
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if not paced:  # then check the pause and the bucket again: time has passed
                    await self._rpm.acquire()  # type: ignore[union-attr]
                    paced = True
                    continue
                break
            if self._capacity:
                self._level += estimate
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def release(self, reserved: int = 0, used: int | None = None) -> None:
        """The request ended: free its slot; count its ``used`` tokens instead of ``reserved``."""
        if self._capacity:
            self._tokens_level(asyncio.get_running_loop().time())
            self._level = max(self._level + (reserved if used is None else used) - reserved, 0.0)
        if self._slots is not None:
            self._slots.release()

    def __repr__(self) -> str:
        parts = [f"{k}={v}" for k, v in zip(
            ("rpm", "tpm", "max_concurrency"),
            (self.limits.requests_per_minute, self.limits.tokens_per_minute,
             self.limits.max_concurrency), strict=True,
        ) if v is not None]  # fmt: skip
        return f"AgentGate({', '.join(parts) or 'pause only'})"


def estimate_tokens(text_chars: int) -> int:
    """A prompt's token count before the provider says: about four characters a token."""
    return math.ceil(text_chars / 4)


class LimitedLlm(WrapperLlm):
    """``wrapped`` whose every request passes ``gate`` first (the agent's whole queue).

    While a request runs, its prompt's estimated tokens are reserved in the gate's token bucket,
    then replaced by the provider's count. A 429 whose Retry-After says ``s`` seconds pauses the
    gate for ``s`` (at most ``max_pause``): no request of the agent starts meanwhile.
    """

    def __init__(self, wrapped: BaseLlm, gate: AgentGate, *, max_pause: float = 30.0) -> None:
        super().__init__(wrapped)
        self.gate = gate
        self.max_pause = max_pause

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        msgs = normalize_messages(messages, provider=self.provider)
        estimate = 0
        if self.gate.counts_tokens:
            estimate = estimate_tokens(sum(len(m["content"]) for m in msgs))
        await self.gate.acquire(estimate)
        used: int | None = None
        try:
            response = await self.wrapped.request_async(msgs, deadline=deadline, **kwargs)
            used = response.usage.total_tokens
        except LlmRateLimitError as error:
            if error.retry_after:
                self.gate.pause(min(error.retry_after, self.max_pause))
            raise
        finally:
            self.gate.release(estimate, used)
        return response
