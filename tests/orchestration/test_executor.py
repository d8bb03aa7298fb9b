"""TaskExecutor on FakeLlm: the factory, one instance per agent, messages, every interface but
the process-based ones (see test_executor_processes.py), failures as results, execute_parallel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from orch_helpers import Tracker
from tracking_llm import TrackingLlm

from coditect_core.errors import LlmAuthenticationError
from coditect_core.llm_abstractions.registry import get_llm_class, register_llm, unregister_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    AgentType,
    ExecutionResult,
    ExecutionStatus,
    TaskExecutor,
    UpstreamOutput,
)

KEY = "sk-canary-test-4242424242"


def fake_agent(name: str = "fake", **kwargs: Any) -> AgentConfig:
    return AgentConfig(name, "custom", provider="fake", **kwargs)


def make_executor(*agents: AgentConfig, **kwargs: Any) -> TaskExecutor:
    return TaskExecutor(AgentRegistry(agents), **kwargs)


TASK = AgentTask(
    "T2",
    "Implement the LLM factory",
    "Map AgentType to BaseLlm subclasses.",
    agent="fake",
    deliverables=["executor.py with _llm_factory"],
    success_criteria=["every AgentType resolves", "unit tests pass"],
)


@pytest.fixture
def tracking() -> Iterator[None]:
    register_llm("tracking", TrackingLlm, replace=True)
    yield
    unregister_llm("tracking")


async def test_api_call_gets_system_prompt_task_and_upstream_context() -> None:
    executor = make_executor(fake_agent(system_prompt="You are the factory builder."))
    before_wall, before = datetime.now(UTC), time.monotonic()
    result = await executor.execute(
        TASK, upstream=[UpstreamOutput("T1", "Update imports", "imports: BaseLlm, Gemini")]
    )
    elapsed, after_wall = time.monotonic() - before, datetime.now(UTC)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    llm = executor.get_llm("fake")
    assert isinstance(llm, FakeLlm)
    [call] = llm.calls
    system, user = call.messages
    assert system == {"role": "system", "content": "You are the factory builder."}
    for part in (
        "# Task T2: Implement the LLM factory",
        "Map AgentType to BaseLlm subclasses.",
        "- executor.py with _llm_factory",
        "- every AgentType resolves",
        "### T1: Update imports\nimports: BaseLlm, Gemini",
    ):
        assert part in user["content"]
    assert result.output == llm.default(call.messages)  # type: ignore[operator]
    assert result.agent == "fake"
    assert result.model == "fake-model"
    assert result.attempts == 1
    assert result.usage is not None
    assert result.usage.total_tokens > 0
    assert result.interface == "api"
    assert result.duration_seconds is not None
    # Stamped within the call, in order; its duration is in seconds and this call's own.
    assert before_wall <= result.started_at <= result.completed_at <= after_wall  # type: ignore[operator]
    assert 0 < result.duration_seconds <= elapsed


async def test_upstream_as_a_mapping_and_long_context_is_cut() -> None:
    executor = make_executor(fake_agent(), max_context_chars=50)
    await executor.execute(TASK, upstream={"T1": "x" * 500})
    user = executor.get_llm("fake").calls[0].messages[1]["content"]  # type: ignore[attr-defined]
    assert "x" * 50 + "\n[... 450 more characters cut ...]" in user
    assert "x" * 51 not in user


async def test_one_instance_per_agent_reused_and_closed() -> None:
    executor = make_executor(fake_agent("a"), fake_agent("b"))
    tasks = [AgentTask(f"T{i}", "t", agent="a" if i % 2 else "b") for i in range(6)]
    results = await executor.execute_parallel(tasks, max_concurrent=3)
    assert all(r.succeeded for r in results)
    a, b = executor.get_llm("a"), executor.get_llm("b")
    assert a is not b
    assert len(a.calls) == 3  # type: ignore[attr-defined]
    assert len(b.calls) == 3  # type: ignore[attr-defined]
    assert executor.get_llm("a") is a
    await executor.aclose()
    assert a.closed == 1  # type: ignore[attr-defined]
    assert b.closed == 1  # type: ignore[attr-defined]
    assert executor.get_llm("a") is not a  # a new one after closing


async def test_re_registered_agent_gets_a_new_instance_and_the_old_is_closed() -> None:
    registry = AgentRegistry([fake_agent(model="m1")])
    executor = TaskExecutor(registry)
    await executor.execute(TASK)
    first = executor.get_llm("fake")
    registry.register(fake_agent(model="m2"), replace=True)
    result = await executor.execute(TASK)
    assert result.model == "m2"
    assert executor.get_llm("fake") is not first
    await executor.aclose()
    assert first.closed == 1  # type: ignore[attr-defined]


def test_llm_factory_maps_every_agent_type_to_its_registry_provider() -> None:
    classes = {t: type(f"Fake_{t.name}", (FakeLlm,), {}) for t in AgentType}
    for agent_type, cls in classes.items():
        if agent_type is not AgentType.CUSTOM:
            register_llm(agent_type.value, cls, replace=True)
    try:
        executor = TaskExecutor()
        for agent_type, cls in classes.items():
            if agent_type is AgentType.CUSTOM:
                assert executor._llm_factory.get(agent_type) is None
            else:
                assert executor._llm_factory[agent_type] is cls
                assert executor._llm_factory.get(agent_type.value) is cls  # type: ignore[call-overload]
        assert isinstance(executor._llm_factory, dict)
    finally:
        for agent_type in classes:
            unregister_llm(agent_type.value)
    assert get_llm_class("fake") is FakeLlm


async def test_plugin_provider_drives_a_typed_agent_with_settings() -> None:
    seen: dict[str, Any] = {}

    class GeminiStandIn(FakeLlm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    register_llm("google-gemini", GeminiStandIn, replace=True)
    try:
        agent = AgentConfig(
            "gem",
            AgentType.GOOGLE_GEMINI,
            model="gemini-2.5-flash",
            api_key=KEY,
            temperature=0.2,
            max_tokens=64,
            timeout=30,
            base_url="http://127.0.0.1:1",
        )
        executor = make_executor(agent)
        result = await executor.execute(AgentTask("T", "t", agent="gem"))
        assert result.succeeded
        assert isinstance(executor.get_llm("gem"), GeminiStandIn)
        assert result.model == "gemini-2.5-flash"
        assert seen["api_key"] == KEY
        assert seen["temperature"] == 0.2
        assert seen["max_tokens"] == 64
        assert seen["timeout"] == 30
        assert seen["base_url"] == "http://127.0.0.1:1"
    finally:
        unregister_llm("google-gemini")


@pytest.mark.parametrize(
    ("agents", "task", "message"),
    [
        ((), AgentTask("T", "t", agent="ghost"), "unknown agent 'ghost'"),
        ((fake_agent(enabled=False),), AgentTask("T", "t", agent="fake"), "'fake' is disabled"),
        ((fake_agent("a"), fake_agent("b")), AgentTask("T", "t"), "names no agent"),
        (
            (AgentConfig("x", "custom", provider="no-such-provider"),),
            AgentTask("T", "t", agent="x"),
            "unknown provider 'no-such-provider'",
        ),
    ],
)
async def test_configuration_problems_become_failed_results(
    agents: tuple[AgentConfig, ...], task: AgentTask, message: str
) -> None:
    result = await make_executor(*agents).execute(task)
    assert result.status is ExecutionStatus.FAILED
    assert message in (result.error or "")
    assert result.completed_at is not None


async def test_missing_key_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    class KeyedFake(FakeLlm):
        provider = "keyed"
        api_key_env = ("KEYED_FAKE_API_KEY",)

    monkeypatch.delenv("KEYED_FAKE_API_KEY", raising=False)
    register_llm("keyed", KeyedFake, replace=True)
    try:
        executor = make_executor(AgentConfig("k", "custom", provider="keyed"))
        result = await executor.execute(AgentTask("T", "t", agent="k"))
        assert result.status is ExecutionStatus.FAILED
        assert "KEYED_FAKE_API_KEY" in (result.error or "")
        monkeypatch.setenv("KEYED_FAKE_API_KEY", "set-now")
        assert (await executor.execute(AgentTask("T", "t", agent="k"))).succeeded
    finally:
        unregister_llm("keyed")


async def test_provider_errors_and_bugs_are_failed_results_with_the_key_redacted() -> None:
    agent = fake_agent(
        api_key=KEY,
        provider_options={
            "replies": [
                LlmAuthenticationError(f"key {KEY} refused", status_code=401),
                ZeroDivisionError(f"bug near {KEY}"),
            ]
        },
    )
    executor = make_executor(agent)
    auth = await executor.execute(TASK)
    bug = await executor.execute(TASK)
    assert auth.status is ExecutionStatus.FAILED
    assert auth.error == "[fake] key *** refused (HTTP 401)"
    assert bug.status is ExecutionStatus.FAILED
    assert "ZeroDivisionError" in (bug.error or "")
    for result in (auth, bug):
        assert KEY not in repr(result.to_dict())


async def test_cancellation_propagates() -> None:
    executor = make_executor(fake_agent(provider_options={"latency": 30}))
    call = asyncio.create_task(executor.execute(TASK))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_interactive_hands_off_without_a_model_call() -> None:
    agent = AgentConfig("person", "custom", interface="interactive", system_prompt="Be careful.")
    executor = make_executor(agent)
    task = AgentTask("T7", "Review the design", "Read it.", agent="person")
    result = await executor.execute(task, upstream={"T6": "the design doc"})
    assert result.status is ExecutionStatus.AWAITING_HUMAN
    prompt = result.metadata["handoff_prompt"]
    assert prompt.startswith("Be careful.")
    assert "# Task T7: Review the design" in prompt
    assert "the design doc" in prompt
    assert "coditect task complete T7" in prompt
    assert result.output is None
    assert executor._llms == {}


async def test_mode_overrides_the_interface() -> None:
    executor = make_executor(fake_agent())
    handed = await executor.execute(TASK, mode="interactive")
    assert handed.status is ExecutionStatus.AWAITING_HUMAN
    assert executor._llms == {}
    bad = await executor.execute(TASK, mode="telepathy")
    assert bad.status is ExecutionStatus.FAILED
    assert "unknown mode 'telepathy'" in (bad.error or "")


async def test_hybrid_drafts_reviews_and_revises() -> None:
    author = AgentConfig(
        "author",
        "custom",
        provider="fake",
        interface="hybrid",
        reviewer="critic",
        provider_options={"replies": ["DRAFT v1", "REVISED v2"]},
    )
    critic = fake_agent("critic", provider_options={"replies": ["CRITIQUE: add tests"]})
    executor = make_executor(author, critic)
    result = await executor.execute(AgentTask("T", "Write it", agent="author"))
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "REVISED v2"
    assert result.metadata["draft"] == "DRAFT v1"
    assert result.metadata["review"] == "CRITIQUE: add tests"
    assert result.metadata["reviewer"] == "critic"
    assert result.attempts == 3
    author_llm, critic_llm = executor.get_llm("author"), executor.get_llm("critic")
    [review_call] = critic_llm.calls  # type: ignore[attr-defined]
    assert "## Draft to review\n\nDRAFT v1" in review_call.messages[-1]["content"]
    draft_call, revise_call = author_llm.calls  # type: ignore[attr-defined]
    assert revise_call.messages[: len(draft_call.messages)] == draft_call.messages
    assert revise_call.messages[-2] == {"role": "assistant", "content": "DRAFT v1"}
    assert "CRITIQUE: add tests" in revise_call.messages[-1]["content"]
    usages = [author_llm.calls, critic_llm.calls]  # type: ignore[attr-defined]
    assert sum(len(u) for u in usages) == 3
    assert result.usage is not None
    assert result.usage.completion_tokens == 2 + 3 + 2


@pytest.mark.parametrize(
    ("critic", "message"),
    [
        (None, "unknown agent 'critic'"),
        (fake_agent("critic", enabled=False), "reviewer agent 'critic' is disabled"),
        (AgentConfig("critic", "local", interface="interactive"), "must use the api or cli"),
    ],
)
async def test_hybrid_reviewer_problems_fail_clearly(
    critic: AgentConfig | None, message: str
) -> None:
    author = AgentConfig("author", "custom", provider="fake", interface="hybrid", reviewer="critic")
    executor = make_executor(author, *([critic] if critic else []))
    result = await executor.execute(AgentTask("T", "t", agent="author"))
    assert result.status is ExecutionStatus.FAILED
    assert message in (result.error or "")


async def test_agent_choice_default_then_capabilities_then_single() -> None:
    coder = fake_agent("coder", capabilities=["code"])
    writer = fake_agent("writer", capabilities=["documentation"])
    executor = make_executor(coder, writer)
    docs = await executor.execute(AgentTask("T", "t", tags=["documentation"]))
    assert docs.agent == "writer"
    executor.default_agent = "coder"
    assert (await executor.execute(AgentTask("T", "t", tags=["documentation"]))).agent == "coder"
    assert (await executor.execute(AgentTask("T", "t", agent="writer"))).agent == "writer"
    assert (await executor.execute(AgentTask("T", "t"), agent="writer")).agent == "writer"
    solo = make_executor(fake_agent("only"))
    assert (await solo.execute(AgentTask("T", "t"))).agent == "only"


async def test_execute_parallel_bounds_concurrency_and_isolates_failures(tracking: None) -> None:
    tracker = Tracker()
    agent = AgentConfig(
        "track",
        "custom",
        provider="tracking",
        provider_options={"tracker": tracker, "fail": {"T03"}, "latency": 0.01},
    )
    executor = make_executor(agent)
    items: list[Any] = [(AgentTask(f"T{i:02d}", "t"), "track") for i in range(20)]
    items.append((AgentTask("T99", "t"), "nobody"))
    results = await executor.execute_parallel(items, max_concurrent=4)
    assert [r.task_id for r in results] == [f"T{i:02d}" for i in range(20)] + ["T99"]
    assert tracker.peak == 4
    statuses = {r.task_id: r.status for r in results}
    assert statuses.pop("T03") is ExecutionStatus.FAILED
    assert statuses.pop("T99") is ExecutionStatus.FAILED
    assert set(statuses.values()) == {ExecutionStatus.SUCCESS}
    with pytest.raises(ValueError, match="max_concurrent"):
        await executor.execute_parallel(items, max_concurrent=0)


def test_execution_result_round_trip() -> None:
    result = ExecutionResult("T", agent="a", status=ExecutionStatus.SUCCESS, output="o")
    again = ExecutionResult.from_dict(result.to_dict())
    assert again == result
    data = result.to_dict()
    assert data["status"] == "success"
    assert data["usage"] is None
