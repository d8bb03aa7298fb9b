"""The ``retry_waiting`` event: a failed request to be retried is announced with its wait
before the wait (a live view shows it), then ``attempt_started`` when the retry goes out."""

from __future__ import annotations

from coditect_core.errors import LlmRateLimitError, LlmServerError
from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    EventLog,
    ProjectOrchestrator,
    TaskExecutor,
)

POLICY = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=5.0)


async def test_a_retry_is_announced_with_its_wait_before_the_wait() -> None:
    replies = [
        LlmRateLimitError("slow down", retry_after=0.3, provider="fake"),
        LlmServerError("down", status_code=503, provider="fake"),
        "done",
    ]
    agent = AgentConfig(
        "a", "custom", provider="fake", provider_options={"replies": replies, "retry": POLICY}
    )
    events = EventLog()
    orch = ProjectOrchestrator(executor=TaskExecutor(AgentRegistry([agent])), observers=[events])
    orch.add_task(AgentTask("T1", "the task", "Do it.", agent="a"))
    assert (await orch.run()).ok
    seen = [e for e in events.for_task("T1") if e.kind != "task_status_changed"]
    assert [e.kind for e in seen] == [
        "task_started",
        "retry_waiting",
        "attempt_started",
        "retry_waiting",
        "attempt_started",
        "attempt_finished",
    ]
    first, second = seen[1], seen[3]
    assert first.details["attempt"] == 1
    assert first.details["wait"] == 0.3  # the server's Retry-After
    assert "slow down" in first.details["error"]
    assert first.details["agent"] == "a"
    assert second.details["attempt"] == 2
    assert 0.0 <= second.details["wait"] <= 5.0
    assert seen[2].at - first.at >= 0.29  # the event came before the wait, not after it
