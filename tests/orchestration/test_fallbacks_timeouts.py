"""Fallbacks (which failures fall back, in what order, each attempt recorded with its agent) and
timeouts (the agent's per call, retryable; the task's over its whole execution) for API, CLI and
script agents."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from orch_helpers import wait_gone
from reliability_support import stub_agent
from stub_server import StubServer, hang, reply

from coditect_core.errors import (
    LlmAuthenticationError,
    LlmNotInstalledError,
    LlmRequestError,
    LlmServerError,
)
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    EventLog,
    ExecutionStatus,
    ProjectOrchestrator,
    TaskExecutor,
)
from coditect_core.orchestration.executor import falls_back

FAST = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)
TASK = AgentTask("T1", "the task", "Do it.", agent="a")


class NotInstalled(FakeLlm):
    """A provider whose SDK is missing: it fails before any request."""

    def _create_client(self) -> Any:
        raise LlmNotInstalledError("the SDK is not installed: pip install 'x[y]'")


@pytest.fixture(autouse=True)
def _providers() -> Any:
    register_llm("not-installed", NotInstalled, replace=True)
    yield
    unregister_llm("not-installed")


def fake(name: str, replies: list[Any] | None = None, **kw: Any) -> AgentConfig:
    options = {"replies": list(replies or []), "retry": FAST}
    return AgentConfig(name, "custom", provider="fake", provider_options=options, **kw)


def executor(*agents: AgentConfig, **kw: Any) -> TaskExecutor:
    return TaskExecutor(AgentRegistry(agents), **kw)


def calls(ex: TaskExecutor, name: str) -> int:
    return len(ex.get_llm(name).calls)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- fallbacks


def test_which_errors_fall_back() -> None:
    assert falls_back(LlmServerError("529"), "retryable")
    assert falls_back(LlmNotInstalledError("no sdk"), "retryable")
    assert not falls_back(LlmAuthenticationError("401"), "retryable")
    assert not falls_back(LlmRequestError("400"), "retryable")
    assert falls_back(LlmAuthenticationError("401"), "any")


async def test_retryable_failure_falls_back_after_the_retries_in_order() -> None:
    a = fake("a", [LlmServerError("overloaded", status_code=529)] * 3, fallbacks=["b", "c"])
    b = fake("b", [LlmServerError("down", status_code=503)] * 3)
    ex = executor(a, b, fake("c"))
    events = EventLog()
    orch = ProjectOrchestrator(executor=ex, observers=[events])
    orch.add_task(AgentTask("T1", "the task", "Do it.", agent="a"))
    summary = await orch.run()
    assert summary.ok
    result = orch.get_result("T1")
    assert result is not None
    assert result.agent == "c"
    assert result.fallback_from == "a"
    assert result.attempts == 7  # 3 on a, 3 on b, 1 on c
    assert (calls(ex, "a"), calls(ex, "b"), calls(ex, "c")) == (3, 3, 1)
    started = [e for e in events.events if e.kind in ("task_started", "attempt_started")]
    assert [e.details["agent"] for e in started] == ["a", "a", "a", "b", "b", "b", "c"]
    ended = [e.details["ended_agent"] for e in started[1:]]
    assert ended == ["a", "a", "a", "b", "b", "b"]
    assert all("(HTTP 5" in e.details["error"] for e in started[1:])


@pytest.mark.parametrize(
    ("error", "fallback_on", "falls"),
    [
        (LlmAuthenticationError("key refused", status_code=401), "retryable", False),
        (LlmRequestError("bad request", status_code=400), "retryable", False),
        (LlmAuthenticationError("key refused", status_code=401), "any", True),
        (LlmRequestError("bad request", status_code=400), "any", True),
    ],
)
async def test_non_retryable_errors_fall_back_only_with_fallback_on_any(
    error: Exception, fallback_on: str, falls: bool
) -> None:
    ex = executor(fake("a", [error], fallbacks=["b"]), fake("b"), fallback_on={"a": fallback_on})
    result = await ex.execute(TASK)
    assert calls(ex, "a") == 1  # not retried either
    if falls:
        assert result.succeeded
        assert result.agent == "b"
        assert [e.agent for e in result.earlier_attempts] == ["a"]
    else:
        assert result.status is ExecutionStatus.FAILED
        assert result.agent == "a"
        assert str(error) in (result.error or "")
        assert calls(ex, "b") == 0


async def test_a_provider_that_is_not_installed_falls_back() -> None:
    missing = AgentConfig("a", "custom", provider="not-installed", fallbacks=["b"])
    ex = executor(missing, fake("b"))
    result = await ex.execute(TASK)
    assert result.succeeded
    assert result.agent == "b"
    (earlier,) = result.earlier_attempts
    assert earlier.agent == "a"
    assert "not installed" in earlier.error
    assert earlier.cost_usd == 0.0  # no request was made: nothing spent
    assert result.attempts == 1  # one request: b's


async def test_every_fallback_failing_reports_the_last_error() -> None:
    a = fake("a", [LlmServerError("a down", status_code=500)] * 3, fallbacks=["gone", "b"])
    b = fake("b", [LlmServerError("b down", status_code=503)] * 3)
    ex = executor(a, b)
    result = await ex.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert result.agent == "b"
    assert "b down" in (result.error or "")
    assert result.attempts == 6
    assert [e.agent for e in result.earlier_attempts] == ["a"] * 3 + ["b"] * 2
    assert result.cost_usd == 0.0  # a 5xx answer bills nothing


async def test_a_fallback_chain_stops_at_an_error_not_to_fall_back_on() -> None:
    a = fake("a", [LlmServerError("down", status_code=500)] * 3, fallbacks=["b", "c"])
    b = fake("b", [LlmAuthenticationError("b's key refused", status_code=401)])
    ex = executor(a, b, fake("c"))
    result = await ex.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "b's key refused" in (result.error or "")
    assert calls(ex, "c") == 0


# ---------------------------------------------------------------------------- timeouts


async def test_api_call_timeout_closes_the_connection_and_is_retried() -> None:
    with StubServer() as stub:
        stub.script(hang(1.5), reply("after the hang"))
        ex = executor(stub_agent("gpt", stub.url, retry=FAST, timeout=0.3))
        result = await ex.execute(AgentTask("T1", "the task", "Do it.", agent="gpt"))
        await ex.aclose()
        await asyncio.sleep(1.7)  # the hang is over: had the socket stayed open, a reply now
        replies = stub.reply_count
    assert result.succeeded, result.error
    assert result.output == "after the hang"
    assert result.attempts == 2
    (earlier,) = result.earlier_attempts
    assert "no answer within 0.3s" in earlier.error
    assert earlier.cost_usd is None  # the provider may have done the work
    assert stub.request_count == 2
    assert replies == 1  # the hung request was abandoned by a closed connection


async def test_task_timeout_bounds_the_whole_execution_api() -> None:
    with StubServer() as stub:
        stub.script(*[hang(5.0)] * 5)
        gpt = stub_agent("gpt", stub.url, retry=FAST, fallbacks=["b"])  # no per-call timeout
        ex = executor(gpt, fake("b"), task_timeouts={"T1": 0.5})
        result = await ex.execute(AgentTask("T1", "the task", "Do it.", agent="gpt"))
        await ex.aclose()
        seen = stub.request_count
    assert result.status is ExecutionStatus.FAILED
    assert "the task's timeout of 0.5s was reached" in (result.error or "")
    assert seen == 1  # not retried...
    assert calls(ex, "b") == 0  # ...and no fallback: the task's time is up
    assert result.duration_seconds is not None
    # cut at its timeout (0.5 s, less a clock tick), not after the 5 s hang
    assert 0.49 <= result.duration_seconds < 3.0


HANG_WITH_CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(sys.argv[1], "a") as f:
        f.write(f"{child.pid}\\n")
    time.sleep(120)
    """
)


@pytest.mark.parametrize("interface", ["cli", "script"])
async def test_task_timeout_kills_cli_and_script_agents(tmp_path: Path, interface: str) -> None:
    program = tmp_path / "hang.py"
    program.write_text(HANG_WITH_CHILD)
    pids = tmp_path / "pids"
    agent = AgentConfig(
        "a", "custom", interface=interface, command=[sys.executable, str(program), str(pids)]
    )
    ex = executor(agent, task_timeouts={"T1": 1.0})
    result = await ex.execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "the task's timeout of 1s was reached" in (result.error or "")
    (pid,) = map(int, pids.read_text().split())
    assert wait_gone(pid), "the agent's child process outlived the task's timeout"


@pytest.mark.parametrize("interface", ["cli", "script"])
async def test_agent_timeout_of_a_command_is_retried_then_falls_back(
    tmp_path: Path, interface: str
) -> None:
    program = tmp_path / "hang.py"
    program.write_text(HANG_WITH_CHILD)
    pids = tmp_path / "pids"
    agent = AgentConfig(
        "a",
        "custom",
        interface=interface,
        command=[sys.executable, str(program), str(pids)],
        timeout=0.5,
        fallbacks=["b"],
        provider_options={"retry": {"max_attempts": 2, "initial_delay": 0.0}},
    )
    ex = executor(agent, fake("b"))
    result = await ex.execute(TASK)
    assert result.succeeded, result.error
    assert result.agent == "b"
    assert result.attempts == 3  # two runs of the command, then b
    earlier = result.earlier_attempts
    assert [e.agent for e in earlier] == ["a", "a"]
    assert all("0.5s" in (e.error or "") for e in earlier)
    for pid in map(int, pids.read_text().split()):
        assert wait_gone(pid)


async def test_a_failure_to_record_an_attempt_stops_the_run_not_the_task() -> None:
    class BrokenStore(EventLog):
        async def attempt_started(self, task: AgentTask, ended: Any, **kw: Any) -> None:
            raise OSError("disk full")

    a = fake("a", [LlmServerError("down", status_code=500)], fallbacks=["b"])
    orch = ProjectOrchestrator(executor=executor(a, fake("b")), observers=[BrokenStore()])
    orch.add_task(AgentTask("T1", "the task", "Do it.", agent="a"))
    with pytest.raises(OSError, match="disk full"):
        await orch.run()
