"""Typed outputs in an execution: every re-ask of an invalid reply is an attempt of its own
(the one with the invalid reply ends failed, with the validation errors, its cost known)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coditect_core.errors import LlmOutputValidationError
from coditect_core.llm_abstractions import FakeLlm, Price, PriceBook, PricedLlm
from coditect_core.orchestration import AgentConfig, AgentTask
from coditect_core.orchestration.attempts import AttemptedLlm, Attempts, failure_cost
from coditect_core.orchestration.execution_result import ExecutionResult

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"count": {"type": "integer"}},
    "required": ["count"],
}


async def test_each_re_ask_is_an_attempt_and_the_invalid_one_ends_failed() -> None:
    task = AgentTask("T1", "count")
    agent = AgentConfig("a", "custom", provider="fake")
    ended: list[ExecutionResult] = []

    async def hook(task: AgentTask, result: ExecutionResult, next_agent: AgentConfig) -> None:
        ended.append(result)

    attempts = Attempts(task, hook)
    fake = FakeLlm(['{"count": "three"}', json.dumps({"count": 3})])
    prices = PriceBook({"a": Price(1.0, 1.0)})
    llm = AttemptedLlm(PricedLlm(fake, prices, agent="a"), attempts, agent, fake.retry)
    response = await llm.generate_async("count", output_schema=SCHEMA)
    assert response.value == {"count": 3}
    assert attempts.requests == 2
    assert len(ended) == 1
    assert "$.count: 'three' is not of type 'integer'" in (ended[0].error or "")
    assert ended[0].cost_usd is not None  # priced, not unknown
    assert ended[0].cost_usd > 0


def test_an_invalid_typed_output_costs_nothing_more() -> None:
    error = LlmOutputValidationError("bad", errors=["$: x"], reply="x", tries=3)
    assert failure_cost(error) == 0.0
    assert error.retryable is False


async def test_the_last_invalid_reply_fails_the_call_with_its_errors() -> None:
    task = AgentTask("T1", "count")
    agent = AgentConfig("a", "custom", provider="fake")
    attempts = Attempts(task)
    fake = FakeLlm(default=lambda messages: "[]")
    llm = AttemptedLlm(fake, attempts, agent, fake.retry)
    with pytest.raises(LlmOutputValidationError, match="after 2 tries"):
        await llm.generate_async("count", output_schema=SCHEMA, output_retries=1)
    assert attempts.requests == 2
