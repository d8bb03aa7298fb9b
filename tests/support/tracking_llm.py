"""TrackingLlm: a FakeLlm that reports to a Tracker and fails the tasks it is told to."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from orch_helpers import Tracker, task_id_of

from coditect_core.errors import LlmServerError
from coditect_core.llm_abstractions.base_llm import CallParams, LlmResponse
from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.retry import NO_RETRY
from coditect_core.llm_abstractions.testing import FakeLlm


class TrackingLlm(FakeLlm):
    provider = "tracking"

    def __init__(
        self,
        *args: Any,
        tracker: Tracker,
        fail: Collection[str] = (),
        delays: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retry", NO_RETRY)
        super().__init__(*args, **kwargs)
        self.tracker = tracker
        self.fail = set(fail)
        self.delays = delays or {}

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        tid = task_id_of(messages)  # type: ignore[arg-type]
        self.tracker.enter(tid)
        try:
            await asyncio.sleep(self.delays.get(tid, 0.0))
            if tid in self.fail:
                raise LlmServerError(f"scripted failure of {tid}", retryable=False)
            response = await super()._generate(client, messages, params)
            response.text = f"output of {tid}"
            return response
        finally:
            self.tracker.leave(tid)
