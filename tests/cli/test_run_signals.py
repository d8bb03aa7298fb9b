"""``coditect run`` as a real process on the real OpenAI SDK against the stub: SIGINT and SIGTERM
(exit 130, state committed, the next run resumes without calling a finished task again), a
second signal exiting at once, and a budget stop (the unstarted tasks listed, then resumed)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import coditect_argv, env, run_cli
from reliability_support import KEY
from stub_server import StubServer

from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(180)

NAME = "signals"
TASKS = [f"T{i:02d}" for i in range(10)]


def _project(directory: Path, stub: StubServer) -> Path:
    spec = {
        "project": NAME,
        "defaults": {"agent": "gpt", "max_concurrency": 2},
        "agents": {
            "gpt": {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": stub.openai_url,
                "timeout": 30,
            }
        },
        "tasks": [{"id": tid, "title": f"task {tid}", "description": "Say hi."} for tid in TASKS],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _state(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def _asked(stub: StubServer) -> list[str]:
    """The tasks the stub was asked about, in arrival order."""
    out = []
    for r in stub.requests:
        found = re.search(r"# Task (T\d+)", json.dumps(r.body))
        assert found is not None
        out.append(found.group(1))
    return out


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*coditect_argv(), "run", str(project), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(OPENAI_API_KEY=KEY),
    )


def _wait_replies(stub: StubServer, child: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 60
    while stub.reply_count < n:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def _check_interrupted_state(project: Path) -> set[str]:
    """The interrupted run left nothing in flight; returns the tasks that succeeded."""
    with StateStore.open(_state(project), readonly=True) as store:
        snap = store.snapshot(NAME)
        assert snap.runs[-1].status == "interrupted"
        assert "in_progress" not in snap.counts
        assert not snap.in_flight
        attempts = store.attempts(NAME)
        assert all(a.status != "running" for a in attempts)
        done = set(store.succeeded_tasks(NAME))
    assert done
    assert done != set(TASKS)
    return done


def _resume_and_check(project: Path, stub: StubServer, done_before: set[str]) -> None:
    time.sleep(stub.latency + 0.3)  # the stub finishes answering the calls the run gave up
    stub.clear()
    resumed = run_cli("run", project, "--json", extra_env={"OPENAI_API_KEY": KEY})
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert set(data["skipped"]) == done_before
    asked = _asked(stub)
    assert not set(asked) & done_before, "a finished task was called again"
    assert set(asked) == set(TASKS) - done_before
    assert stub.reply_count == len(asked)  # each remaining task called once, no fault here


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cancels_commits_exits_130_and_the_next_run_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with StubServer(latency=0.4) as stub:
        project = _project(tmp_path, stub)
        child = _start(project)
        try:
            _wait_replies(stub, child, 3)
            child.send_signal(sig)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 130, err
        assert "interrupted: state saved" in err
        done_before = _check_interrupted_state(project)
        with StateStore.open(_state(project), readonly=True) as store:
            every = store.attempts(NAME)
        # A call in flight was cancelled (or, cut while its end was being written, marked
        # interrupted); one cancelled before it went out left no attempt. None is billed as 0.
        cut = [a for a in every if a.status != "succeeded"]
        assert {a.status for a in cut} <= {"cancelled", "interrupted"}, cut
        assert all(a.cost is None for a in cut)
        assert set(_asked(stub)) >= done_before
        _resume_and_check(project, stub, done_before)


def test_a_second_sigint_exits_at_once_without_harming_the_state(tmp_path: Path) -> None:
    with StubServer(latency=0.4) as stub:
        project = _project(tmp_path, stub)
        child = _start(project)
        try:
            _wait_replies(stub, child, 3)
            child.send_signal(signal.SIGINT)
            time.sleep(0.01)
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        # 130; or, when the second signal lands in the last instants of the interpreter's own
        # shutdown (the run already over), a death by SIGINT, which a shell reports as 130 too.
        assert child.returncode in (130, -signal.SIGINT), err
        # Whichever way it ended (clean, or cut short by the second signal), the state opens,
        # and what was in flight is marked interrupted, never left running.
        with StateStore.open(_state(project)) as store:  # for writing: recovery runs
            snap = store.snapshot(NAME)
            assert not snap.in_flight
            assert "in_progress" not in snap.counts
            done_before = set(store.succeeded_tasks(NAME))
            check = store.read(lambda conn: conn.execute("PRAGMA integrity_check").fetchone())
            assert check == ("ok",)
        assert done_before
        _resume_and_check(project, stub, done_before)


STUCK = textwrap.dedent(
    """
    import asyncio, sys
    from coditect_core.cli.run import _install_stop_signals

    async def cleanup_forever():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("cancelled; cleaning up slowly", flush=True)
            await asyncio.sleep(60)  # a clean stop that takes too long

    async def main():
        task = asyncio.current_task()
        _install_stop_signals(asyncio.get_running_loop(), task)
        print("ready", flush=True)
        await cleanup_forever()

    asyncio.run(main())
    """
)


def test_the_second_signal_does_not_wait_for_a_slow_clean_stop(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        assert "cleaning up slowly" in child.stdout.readline()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)  # not the 60 s of the clean stop
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130
    assert "stopping: cancelling the calls in flight" in err
    assert "interrupted again: exiting now" in err


def test_budget_stop_lists_unstarted_tasks_then_the_next_run_goes_on(tmp_path: Path) -> None:
    with StubServer() as stub:
        project = _project(tmp_path, stub)
        done = run_cli(
            "run", project, "--json", "--max-tokens", "1", "--concurrency", "1",
            extra_env={"OPENAI_API_KEY": KEY},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        assert data["stop_reason"] == "budget"
        assert data["budget"]["reached"] == "max_tokens"
        assert data["budget"]["max_tokens"] == 1
        assert data["budget"]["spent_tokens"] == data["cost"]["total_tokens"] > 0
        assert data["counts"]["completed"] == 1  # one at a time: the first one spent it all
        assert data["unstarted"] == TASKS[1:]
        assert stub.request_count == 1
        assert "budget reached (max_tokens 1)" in done.stderr
        assert "9 task(s) not started: T01, T02" in done.stderr
        with StateStore.open(_state(project), readonly=True) as store:
            assert {t.task_id: t.status for t in store.snapshot(NAME).tasks} == {
                tid: "completed" if tid == "T00" else "pending" for tid in TASKS
            }
        _resume_and_check(project, stub, {"T00"})
