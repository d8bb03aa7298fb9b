"""OpenTelemetry spans of a run: the tree run > task > LLM call, GenAI attributes, no content.

Spans go to the SDK's InMemorySpanExporter through a TracerProvider given explicitly (the global
one is left alone, except in a subprocess that checks the global path). The run has a call
retried after a 429, a fallback from one agent to another, a failing task and a task it blocks.
The checks hold whether a retry happens inside one LLM call (one span, a failed-try event) or
as a further call (a span per request), and ``_Fallbacks`` falls back only if the executor did
not (it has no fallbacks of its own before issue 7).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from provider_contract import KEY
from report_scenario import PROVIDER, Scenario, ScenarioLlm
from stub_server import StubServer

from coditect_core import telemetry
from coditect_core.errors import LlmRateLimitError
from coditect_core.llm_abstractions import FakeLlm, Gpt, instrumentation
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionResult,
    ExecutionStatus,
    ProjectOrchestrator,
    TaskExecutor,
    TaskStatus,
)

pytestmark = pytest.mark.timeout(60)
MARKER = "PROMPT-MARKER-7f3a"  # in every task description: must never reach a span by default


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    register_llm(PROVIDER, ScenarioLlm, replace=True)
    try:
        yield provider, exporter
    finally:
        telemetry.uninstrument()
        unregister_llm(PROVIDER)
        provider.shutdown()


class _Fallbacks(TaskExecutor):
    """Tries the agent's fallbacks when the execution failed (a no-op once the executor does)."""

    async def execute(self, task: AgentTask, agent: str | None = None, *args: Any,
                      **kwargs: Any) -> ExecutionResult:  # fmt: skip
        result = await super().execute(task, agent, *args, **kwargs)
        fallbacks = list(self.resolve_agent(task, agent).fallbacks)
        while result.status is ExecutionStatus.FAILED and fallbacks:
            result = await super().execute(task, fallbacks.pop(0), *args, **kwargs)
        return result


def _orchestrator(scenario: Scenario) -> ProjectOrchestrator:
    agents = AgentRegistry(
        AgentConfig(
            name, "custom", provider=PROVIDER, model=model, fallbacks=fallbacks,
            provider_options={"scenario": scenario, "agent": name},
        )
        for name, model, fallbacks in (
            ("claude", "claude-sonnet-4-5", ["gpt"]),
            ("gpt", "gpt-4o-mini", []),
        )
    )  # fmt: skip
    executor = _Fallbacks(agents, default_agent="gpt")
    orchestrator = ProjectOrchestrator(executor=executor, name="otel-demo")
    orchestrator.add_tasks(
        AgentTask(tid, f"Task {tid}", f"Do {tid}. {MARKER}", agent=agent, dependencies=deps)
        for tid, agent, deps in (
            ("A", "gpt", []),  # 429 then success: one call, two attempts
            ("B", "gpt", ["A"]),
            ("C", "claude", ["A"]),  # claude fails (529, retried), gpt takes over
            ("D", "gpt", []),  # always fails
            ("E", "gpt", ["D"]),  # blocked
        )
    )
    return orchestrator


async def _traced_run(
    provider: TracerProvider, exporter: InMemorySpanExporter, *, capture: bool
) -> list[ReadableSpan]:
    scenario = Scenario(rate_limited="A", fallback="C", fail_always="D", latency=0.002)
    telemetry.instrument(tracer_provider=provider, capture_content=capture)
    orchestrator = _orchestrator(scenario)
    orchestrator.add_observer(
        telemetry.TelemetryObserver(tracer_provider=provider, capture_content=capture, run_id=7)
    )
    async with orchestrator:
        summary = await orchestrator.run(max_concurrency=2)
    assert summary.statuses["E"] is TaskStatus.BLOCKED
    return list(exporter.get_finished_spans())


def _everything(span: ReadableSpan) -> str:
    parts: list[Any] = [span.name, dict(span.attributes or {}), span.status.description]
    parts += [(e.name, dict(e.attributes or {})) for e in span.events]
    return json.dumps(parts, default=str)


async def test_span_tree_and_genai_attributes(exporter: Any) -> None:
    spans = await _traced_run(*exporter, capture=False)
    runs = [s for s in spans if s.name.startswith("run ")]
    tasks = {s.attributes["coditect.task.id"]: s for s in spans if s.name.startswith("task ")}
    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(runs) == 1
    run = runs[0]
    assert run.parent is None
    assert run.attributes["coditect.run.id"] == 7
    assert run.attributes["gen_ai.workflow.name"] == "otel-demo"
    assert run.status.status_code is StatusCode.ERROR
    assert [e.attributes["coditect.task.id"] for e in run.events] == ["E"]
    assert set(tasks) == {"A", "B", "C", "D"}  # E never ran
    for span in tasks.values():
        assert span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
    by_task: dict[str, list[ReadableSpan]] = {}
    for call in calls:
        owner = next(t for t, s in tasks.items() if s.context.span_id == call.parent.span_id)
        by_task.setdefault(owner, []).append(call)
    assert set(by_task) == {"A", "B", "C", "D"}
    assert len(by_task["B"]) == 1

    def failed_tries(calls: list[ReadableSpan]) -> list[str]:
        return [
            str(e.attributes["error.type"]).rsplit(".", 1)[-1]
            for c in calls
            for e in c.events
            if e.name == "coditect.llm.attempt_failed"
        ]

    a = sorted(by_task["A"], key=lambda s: s.start_time)  # the 429, then the retry
    assert failed_tries(a) == ["LlmRateLimitError"]
    last = a[-1]
    assert last.status.status_code is StatusCode.UNSET
    assert last.attributes["gen_ai.operation.name"] == "chat"
    assert last.attributes["gen_ai.system"] == PROVIDER
    assert last.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert last.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert last.attributes["gen_ai.usage.input_tokens"] > 0
    assert last.attributes["gen_ai.usage.output_tokens"] > 0
    assert last.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert sum(s.attributes.get("coditect.llm.attempts", 1) for s in a) == 2  # two requests
    event = next(e for c in a for e in c.events)
    assert event.attributes["coditect.llm.retryable"] is True

    c = sorted(by_task["C"], key=lambda s: s.start_time)  # claude fails, gpt takes over
    claude, gpt = c[:-1], c[-1]
    assert {s.attributes["gen_ai.request.model"] for s in claude} == {"claude-sonnet-4-5"}
    assert failed_tries(claude) == ["LlmServerError"] * 10  # the default policy: 10 tries
    for span in claude:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "coditect_core.errors.LlmServerError"
    assert gpt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert gpt.status.status_code is StatusCode.UNSET
    assert tasks["C"].attributes["gen_ai.agent.name"] == "gpt"  # who finished it
    assert tasks["C"].attributes["coditect.task.status"] == "completed"

    (d,) = by_task["D"]
    assert d.attributes["error.type"] == "coditect_core.errors.LlmContentFilterError"
    assert tasks["D"].status.status_code is StatusCode.ERROR
    assert tasks["D"].attributes["error.type"] == "failed"
    assert tasks["B"].attributes["gen_ai.usage.input_tokens"] > 0

    # no prompt text, no reply text, anywhere
    for span in spans:
        text = _everything(span)
        assert MARKER not in text, span.name
        assert "Result of" not in text, span.name
        assert "gen_ai.input.messages" not in text, span.name


async def test_capture_content_records_prompts_and_replies(exporter: Any) -> None:
    spans = await _traced_run(*exporter, capture=True)
    calls = [s for s in spans if s.name.startswith("chat ")]
    for call in calls:
        messages = json.loads(call.attributes["gen_ai.input.messages"])
        assert messages[-1]["role"] == "user"
        assert MARKER in messages[-1]["parts"][0]["content"]
    ok = [c for c in calls if c.status.status_code is StatusCode.UNSET]
    assert all("Result of" in c.attributes["gen_ai.output.messages"] for c in ok)
    task = next(s for s in spans if s.name == "task B")
    assert MARKER in task.attributes["coditect.task.prompt"]
    assert task.attributes["coditect.task.output"].startswith("Result of B")


async def test_streams_and_uninstrument(exporter: Any) -> None:
    provider, memory = exporter
    telemetry.instrument(tracer_provider=provider)
    assert telemetry.is_instrumented()
    assert instrumentation.installed() is not None
    llm = FakeLlm(["one two three"], chunk_size=4)
    async with llm.stream_content_async(f"hello {MARKER}") as stream:
        text = "".join([d async for d in stream])
    assert text == "one two three"
    (span,) = memory.get_finished_spans()
    assert span.name == "chat fake-model"
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert MARKER not in _everything(span)
    telemetry.uninstrument()
    assert instrumentation.installed() is None
    assert not telemetry.is_instrumented()
    await FakeLlm(["x"]).generate_async("not traced")
    assert len(memory.get_finished_spans()) == 1


async def test_a_stream_retried_before_its_first_delta_records_the_failed_attempt(
    exporter: Any,
) -> None:
    provider, memory = exporter
    telemetry.instrument(tracer_provider=provider)
    llm = FakeLlm([LlmRateLimitError("slow down", retry_after=0), "after a retry"])
    async with llm.stream_content_async("hi") as stream:
        text = "".join([d async for d in stream])
    assert text == "after a retry"
    (span,) = memory.get_finished_spans()
    failed = [e for e in span.events if e.name == "coditect.llm.attempt_failed"]
    assert [e.attributes["coditect.llm.attempt"] for e in failed] == [1]
    assert failed[0].attributes["coditect.llm.retryable"] is True
    assert span.attributes["coditect.llm.attempts"] == 2


async def test_a_real_sdk_call_names_system_and_server(
    exporter: Any, stub_server: StubServer
) -> None:
    provider, memory = exporter
    telemetry.instrument(tracer_provider=provider)
    async with Gpt(api_key=KEY, base_url=stub_server.openai_url, max_tokens=20) as llm:
        await llm.generate_async("hi")
    (span,) = memory.get_finished_spans()
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.request.max_tokens"] == 20
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == stub_server.port
    assert KEY not in _everything(span)


_GLOBAL = """
import asyncio, sys
assert "opentelemetry" not in sys.modules
import coditect_core, coditect_core.llm_abstractions, coditect_core.orchestration
import coditect_core.reporting
assert "opentelemetry" not in sys.modules, "importing the library must not import OpenTelemetry"
from coditect_core import telemetry
from coditect_core.llm_abstractions import FakeLlm
telemetry.instrument()                      # no provider set up yet: nothing is recorded
asyncio.run(FakeLlm().generate_async("before"))
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)        # the application's choice, used from now on
asyncio.run(FakeLlm().generate_async("after"))
print([s.name for s in memory.get_finished_spans()])
"""


def test_the_global_provider_is_used_and_nothing_is_set_up_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat fake-model']"


async def test_a_further_attempt_is_an_event_on_the_task_span(exporter: Any) -> None:
    provider, memory = exporter
    observer = telemetry.TelemetryObserver(tracer_provider=provider)
    task = AgentTask("T1", "one")
    await observer.task_started(
        task, previous=TaskStatus.PENDING, agent="claude", model="m1", interface="api"
    )
    ended = ExecutionResult("T1", agent="claude", status=ExecutionStatus.FAILED, error="529")
    await observer.attempt_started(task, ended, agent="gpt", model="m2", interface="api")
    await observer.attempt_started(task, ended, agent="claude", model="m1", interface="api")
    task.status = TaskStatus.COMPLETED
    done = ExecutionResult("T1", agent="claude", status=ExecutionStatus.SUCCESS, output="REPLY-9")
    await observer.attempt_finished(task, done, previous=TaskStatus.IN_PROGRESS, reason=None)
    (span,) = memory.get_finished_spans()
    assert [(e.name, e.attributes["coditect.attempt.kind"]) for e in span.events] == [
        ("coditect.attempt_started", "fallback"),
        ("coditect.attempt_started", "retry"),
    ]
    assert span.events[0].attributes["gen_ai.agent.name"] == "gpt"
    assert "REPLY-9" not in _everything(span)  # the output only with capture_content


async def test_a_span_per_tool_call_under_the_task(exporter: Any, tmp_path: Any) -> None:
    from coditect_core.llm_abstractions.testing import FakeLlm  # noqa: F401 (provider "fake")
    from coditect_core.llm_abstractions.tool_types import ToolCall

    provider, memory = exporter
    (tmp_path / "otel_tools_mod.py").write_text(
        "def add(a: int, b: int) -> int:\n    '''Add.'''\n    return a + b\n\n"
        "def boom() -> str:\n    '''Fail.'''\n    raise RuntimeError('no')\n"
    )
    replies = [[ToolCall("c1", "add", {"a": 1, "b": 2}), ToolCall("c2", "boom")], "3"]
    agent = AgentConfig(
        "looper", "custom", provider="fake",
        tools=["otel_tools_mod:add", "otel_tools_mod:boom"],
        provider_options={"replies": replies},
    )  # fmt: skip
    executor = TaskExecutor(AgentRegistry([agent]), workspace=tmp_path)
    orchestrator = ProjectOrchestrator(executor=executor, name="otel-tools")
    orchestrator.add_tasks([AgentTask("T", "tools", "Add.", agent="looper")])
    orchestrator.add_observer(telemetry.TelemetryObserver(tracer_provider=provider))
    async with orchestrator:
        summary = await orchestrator.run()
    assert summary.ok
    spans = list(memory.get_finished_spans())
    (task,) = [s for s in spans if s.name == "task T"]
    tools = {s.name: s for s in spans if s.name.startswith("execute_tool ")}
    assert set(tools) == {"execute_tool add", "execute_tool boom"}
    add, boom = tools["execute_tool add"], tools["execute_tool boom"]
    assert add.attributes is not None
    assert add.attributes["gen_ai.operation.name"] == "execute_tool"
    assert add.attributes["gen_ai.tool.name"] == "add"
    assert add.attributes["gen_ai.tool.call.id"] == "c1"
    assert add.parent is not None
    assert add.parent.span_id == task.context.span_id
    assert boom.status.status_code.name == "ERROR"
    assert "gen_ai.tool.call.arguments" not in add.attributes  # content only when asked
