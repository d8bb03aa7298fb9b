"""The fault drill: 1,000 tasks over Gpt, Claude and Gemini (real SDKs) against the loopback stub
at a 30 % fault rate (429 with Retry-After, 500, hangs past the timeout, connection resets,
malformed JSON, truncated bodies), with fallbacks between the three agents, recorded in a real
StateStore.

It must end with every task succeeded, exactly one reply the stub sent in full per task (no
reply wasted on a call we had given up: a timed-out call's connection is closed, so the hung
request never completes), and the attempt history accounting for every request the stub saw:
as many attempts as requests, per agent as many as the stub saw in that agent's wire format,
failed and succeeded alike.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from reliability_support import FORMATS, stub_agent, stub_process

from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.orchestration import (
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskExecutor,
    TaskStatus,
)
from coditect_core.store import StateStore
from coditect_core.store.observer import StoreObserver, run_status

pytestmark = pytest.mark.slow

TASKS = 1000
FAULT_RATE = 0.3
HANG_S = 6.0  # the stub's hang: well past the agents' timeout
TIMEOUT_S = 3.0  # generous for a loaded 2-core machine; a hang is still cut at 3 s
RETRY = RetryPolicy(max_attempts=4, initial_delay=0.005, max_delay=0.05, deadline=None)


def _task_of(request: dict[str, Any]) -> str:
    """The task a request was for (its prompt starts ``# Task T0042: ...``)."""
    found = re.search(r"# Task (T\d+)", json.dumps(request["body"]))
    assert found is not None, request
    return found.group(1)


SAYS = {  # the stub's fault -> what the failed attempt's error says
    "status": ("(HTTP 429)", "(HTTP 500)"),
    "hang": (f"no answer within {TIMEOUT_S:g}s",),
    "reset": ("connection failed",),
    "truncate": ("connection failed",),
    "malformed": ("not valid JSON",),
}


FALLBACKS = {"gpt": ["claude", "gemini"], "claude": ["gemini", "gpt"], "gemini": ["gpt", "claude"]}


async def test_fault_drill(tmp_path: Path) -> None:
    with stub_process(
        "--fault-rate", str(FAULT_RATE), "--seed", "7", "--hang-seconds", str(HANG_S),
        log=tmp_path / "stub.log",
    ) as stub:  # fmt: skip
        registry = AgentRegistry(
            stub_agent(name, stub.url, retry=RETRY, fallbacks=chain, timeout=TIMEOUT_S)
            for name, chain in FALLBACKS.items()
        )
        names = list(FALLBACKS)
        orchestrator = ProjectOrchestrator(executor=TaskExecutor(registry), name="drill")
        orchestrator.add_tasks(
            AgentTask(f"T{i:04d}", f"drill task {i}", f"Say hello {i}.", agent=names[i % 3])
            for i in range(TASKS)
        )
        started, cpu = time.monotonic(), time.process_time()
        with StateStore.open(tmp_path / "state.db") as store:
            run = await store.begin_run("drill")
            observer = StoreObserver(store, run.run_id)
            await observer.define(orchestrator)
            orchestrator.add_observer(observer)
            summary = await orchestrator.run(max_concurrency=48)
            await store.finish_run(run.run_id, run_status(summary))
            await orchestrator.aclose()
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
            # A hung request whose client went away must never be answered: wait the hang out
            # (every request started before the run ended), then count the replies.
            await asyncio.sleep(HANG_S + 0.5)
            stats = stub.stats()
            seen = stub.requests()
            attempts = store.attempts("drill", run_id=run.run_id)

    # every task succeeded, each with exactly one reply sent in full
    print(f"drill: {TASKS} tasks, {stats['requests']} requests in {elapsed:.1f}s "
          f"({cpu:.1f}s CPU): {stats}")  # fmt: skip
    assert summary.ok, summary.counts
    assert summary.counts[TaskStatus.COMPLETED.value] == TASKS
    assert stats["replies"] == TASKS, stats
    assert set(stats["faults"]) == {"status", "hang", "reset", "malformed", "truncate"}, stats
    assert sum(stats["faults"].values()) > 0.2 * stats["requests"]

    # the attempt history accounts for every request the stub saw, agent by agent
    assert len(seen) == stats["requests"]
    assert len(attempts) == stats["requests"]
    # ...request by request: each task's attempts, in order, are the requests the stub saw
    # for it, in order: same agent (wire format), and succeeded exactly when it was answered
    stub_side: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for r in seen:
        stub_side[_task_of(r)].append((r["format"], r["action"] == "reply"))
    store_side: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for a in sorted(attempts, key=lambda a: a.attempt_id):
        store_side[a.task_id].append((FORMATS[a.agent or ""], a.status == "succeeded"))
    assert store_side == stub_side
    by_agent = Counter(a.agent for a in attempts)
    by_format = Counter(r["format"] for r in seen)
    assert {FORMATS[a]: n for a, n in by_agent.items()} == dict(by_format)
    ok_by_agent = Counter(a.agent for a in attempts if a.status == "succeeded")
    replies_by_format = Counter(r["format"] for r in seen if r["action"] == "reply")
    assert {FORMATS[a]: n for a, n in ok_by_agent.items()} == dict(replies_by_format)
    failed = [a for a in attempts if a.status == "failed"]
    assert len(failed) == sum(1 for r in seen if r["action"] != "reply")
    assert {a.status for a in attempts} == {"succeeded", "failed"}
    # each fault became a failed attempt of the agent it hit, saying what happened
    queue: dict[str, list[Any]] = defaultdict(list)
    for a in sorted(attempts, key=lambda a: a.attempt_id):
        queue[a.task_id].append(a)
    told: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in seen:
        a = queue[_task_of(r)].pop(0)
        if r["action"] != "reply":
            said = next((k for k in SAYS[r["action"]] if k in (a.error or "")), a.error or "")
            told[r["action"]].add((a.agent or "", said))
    for kind, says in SAYS.items():
        assert told[kind] == {(agent, k) for agent in FALLBACKS for k in says}, kind
    # fallbacks happened, each recorded with the agent that made it
    first_agent = {f"T{i:04d}": names[i % 3] for i in range(TASKS)}
    fell_back = {a.task_id for a in attempts if a.agent != first_agent[a.task_id]}
    assert fell_back, "at a 30 % fault rate some task must have needed a fallback"
    final = {a.task_id: a.agent for a in attempts if a.status == "succeeded"}
    assert len(final) == TASKS
    assert all(final[t] != first_agent[t] for t in fell_back)

    # costs: known prices, successes priced; refused calls cost nothing; lost ones unknown
    for a in attempts:
        if a.status == "succeeded":
            assert a.cost is not None, a
            assert a.cost > 0, a
        elif "429" in (a.error or "") or "(HTTP 500)" in (a.error or ""):
            assert a.cost == 0.0, a
    assert any(a.cost is None for a in failed), "a timeout or a reset has an unknown cost"
    spend = summary.cost
    assert spend["attempts"] == len(attempts)
    assert spend["cost_unknown_attempts"] == sum(a.cost is None for a in attempts)
    assert spend["cost_known_usd"] == pytest.approx(
        sum(a.cost for a in attempts if a.cost is not None)
    )
