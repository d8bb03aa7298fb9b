"""Typed outputs in an execution: every re-ask of an invalid reply is an attempt of its own
(the one with the invalid reply ends failed, with the validation errors, its cost known)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from coditect_core.errors import LlmOutputValidationError
from coditect_core.llm_abstractions import FakeLlm, Price, PriceBook, PricedLlm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskExecutor,
)
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


async def test_a_typed_task_in_a_run_counts_every_try_in_its_spend() -> None:
    """The orchestrator runs a typed task: its re-ask is an attempt of its own, priced, in the
    run's spend (what the budget is checked against); its value reaches the dependent as JSON."""
    replies = ['{"count": "three"}', json.dumps({"count": 3}), "used it"]
    agent = AgentConfig("a", "custom", provider="fake", provider_options={"replies": replies})
    executor = TaskExecutor(
        AgentRegistry([agent]), prices=PriceBook({"a": Price(1_000_000.0, 1_000_000.0)})
    )
    orch = ProjectOrchestrator(executor=executor)
    orch.add_task(AgentTask("T1", "count", agent="a", output_schema=SCHEMA))
    orch.add_task(AgentTask("T2", "use", agent="a", dependencies=["T1"]))
    summary = await orch.run()
    assert summary.ok
    result = orch.board.results["T1"]
    assert result.value == {"count": 3}
    assert json.loads(result.output or "") == {"count": 3}
    assert len(result.earlier_attempts) == 1
    assert "'three' is not of type 'integer'" in (result.earlier_attempts[0].error or "")
    tally = orch.board.spend.by_task["T1"]
    assert tally.attempts == 2
    assert tally.cost_usd == (result.cost_usd or 0) + (result.earlier_attempts[0].cost_usd or 0)
    assert tally.cost_usd is not None
    assert tally.cost_usd > (result.cost_usd or 0) > 0
    upstream = orch.board.upstream(orch.board.tasks["T2"])
    assert upstream[0].value == {"count": 3}
    assert '```json\n{\n  "count": 3\n}\n```' in upstream[0].context(1000)


async def test_a_typed_task_on_an_agent_with_tools_fails_saying_why() -> None:
    """The agent loop does not ask for a typed output yet: refused, not silently untyped."""
    agent = AgentConfig(
        "a",
        "custom",
        provider="fake",
        provider_options={"replies": [json.dumps({"count": 3})]},
        tools=["json:dumps"],
    )
    executor = TaskExecutor(AgentRegistry([agent]))
    result = await executor.execute(AgentTask("T1", "count", agent="a", output_schema=SCHEMA))
    assert result.status.value == "failed"
    assert "output_schema" in (result.error or "")
    assert "agent loop" in (result.error or "")
    assert len(executor.get_llm("a").calls) == 0  # type: ignore[attr-defined]


SCRIPT = """
import json, sys
json.load(sys.stdin)
print(json.dumps({"status": "success", "output": json.dumps({"count": 3})}))
"""


async def test_a_script_agents_output_is_validated_too(
    write_program: Callable[[str, str], list[str]],
) -> None:
    agent = AgentConfig("s", "custom", interface="script", command=write_program("s.py", SCRIPT))
    executor = TaskExecutor(AgentRegistry([agent]))
    result = await executor.execute(AgentTask("T1", "count", agent="s", output_schema=SCHEMA))
    assert result.status.value == "success", result.error
    assert result.value == {"count": 3}
    wrong = dict(SCHEMA, required=["count", "fruit"])
    failed = await executor.execute(
        AgentTask("T2", "count", agent="s", output_schema=wrong, output_retries=0)
    )
    assert failed.status.value == "failed"
    assert "'fruit' is a required property" in (failed.error or "")
