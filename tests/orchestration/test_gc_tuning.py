"""The young-generation GC threshold during a run: raised, put back, left alone when it should."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coditect_core.llm_abstractions.messages import Message
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    OrchestratorObserver,
    ProjectOrchestrator,
    TaskStatus,
)
from coditect_core.orchestration.gc_tuning import DEFAULT_GC_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[tuple[int, ...]]:
    """Every test starts from CPython's defaults and leaves them as they were."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield (700, 10, 10)
    gc.set_threshold(*before)


def orchestrator(
    reply: Callable[[list[Message]], str], n: int = 3, **options: object
) -> ProjectOrchestrator:
    registry = AgentRegistry(
        [AgentConfig("fake", "custom", provider="fake", provider_options={"default": reply})]
    )
    orch = ProjectOrchestrator(registry, default_agent="fake", **options)  # type: ignore[arg-type]
    orch.add_tasks(AgentTask(f"T{i}", f"task {i}", "do it") for i in range(n))
    return orch


def seen_during_calls() -> tuple[list[tuple[int, ...]], Callable[[list[Message]], str]]:
    seen: list[tuple[int, ...]] = []

    def reply(messages: list[Message]) -> str:
        seen.append(gc.get_threshold())
        return "done"

    return seen, reply


async def test_a_run_raises_the_young_threshold_and_puts_it_back() -> None:
    seen, reply = seen_during_calls()
    orch = orchestrator(reply)
    summary = await orch.run(max_concurrency=2)
    assert summary.ok
    assert seen == [(DEFAULT_GC_THRESHOLD, 10, 10)] * 3
    assert gc.get_threshold() == (700, 10, 10)


async def test_none_leaves_the_collector_alone() -> None:
    seen, reply = seen_during_calls()
    await orchestrator(reply, gc_threshold=None).run()
    assert seen == [(700, 10, 10)] * 3


async def test_a_higher_or_disabled_threshold_of_the_application_is_kept() -> None:
    seen, reply = seen_during_calls()
    gc.set_threshold(50_000, 20, 20)
    await orchestrator(reply).run()
    gc.set_threshold(0, 10, 10)  # the application turned automatic collection off
    await orchestrator(reply).run()
    assert seen == [(50_000, 20, 20)] * 3 + [(0, 10, 10)] * 3
    assert gc.get_threshold() == (0, 10, 10)


async def test_a_change_the_application_makes_during_the_run_stays() -> None:
    def reply(messages: list[Message]) -> str:
        gc.set_threshold(1234, 5, 5)
        return "done"

    await orchestrator(reply, n=1).run()
    assert gc.get_threshold() == (1234, 5, 5)


async def test_concurrent_runs_restore_when_the_last_one_ends() -> None:
    release = asyncio.Event()
    seen, record = seen_during_calls()

    async def slow_run() -> None:
        task_started = asyncio.Event()

        def reply(messages: list[Message]) -> str:
            task_started.set()
            return record(messages)

        orch = orchestrator(reply, n=1)
        run = asyncio.create_task(orch.run())
        await task_started.wait()
        await release.wait()
        await run

    first = asyncio.create_task(slow_run())
    second = orchestrator(record, n=2)
    await second.run()  # starts and ends while the first run is active
    assert gc.get_threshold()[0] == DEFAULT_GC_THRESHOLD  # the first one still runs
    release.set()
    await first
    assert gc.get_threshold() == (700, 10, 10)
    assert all(t[0] == DEFAULT_GC_THRESHOLD for t in seen)


async def test_a_cancelled_run_puts_the_threshold_back() -> None:
    started = asyncio.Event()

    class Started(OrchestratorObserver):
        async def task_started(self, task: AgentTask, **details: Any) -> None:
            started.set()

    orch = orchestrator(lambda m: "done", n=1, observers=[Started()])
    orch.registry.get("fake").provider_options["latency"] = 30.0  # read when the LLM is made
    run = asyncio.create_task(orch.run())
    await asyncio.wait_for(started.wait(), 10)
    assert gc.get_threshold()[0] == DEFAULT_GC_THRESHOLD
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert gc.get_threshold() == (700, 10, 10)
    assert orch.tasks["T0"].status is TaskStatus.CANCELLED


def test_the_context_manager_nests_and_checks_its_argument() -> None:
    with fewer_collections(5000):
        assert gc.get_threshold() == (5000, 10, 10)
        with fewer_collections(9000):  # the outer one decided
            assert gc.get_threshold() == (5000, 10, 10)
        assert gc.get_threshold() == (5000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(ValueError, match="gc threshold must be >= 1"), fewer_collections(0):
        pass
    assert gc.get_threshold() == (700, 10, 10)
