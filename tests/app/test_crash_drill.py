"""The crash drill: ``coditect run`` killed with SIGKILL again and again, then resumed to the end.

A real ``coditect run PROJECT.yaml`` process runs a project of 96 tasks (three layers, each task
of the upper layers depending on one or two of the layer below) on an ``openai-compatible``
agent pointed at the loopback stub server, itself a separate process so that what it saw
survives every kill. Each round starts the run and SIGKILLs it at a moment drawn from a seeded
random generator: usually a few requests into the run (so that the kill lands among calls in
flight and store writes), sometimes at any time since the start (so that it may land while the
process starts, opens the store or begins its run). After :data:`KILLS` kills a last run goes to
the end. Then, from the store and from the stub's own record of requests (each carries the time
the stub read it, and the task id, which is in the prompt):

* every task succeeded exactly once over all runs, and no attempt is left ``running``: the
  attempts in flight at a kill are ``interrupted``, every killed run is ``interrupted``;
* the stub never saw a call for a task after that task's recorded success, nor a call for a task
  before every one of its dependencies had succeeded;
* every call the stub saw was preceded by its own attempt record (a task is recorded as started
  before its call goes out, so a kill cannot leave a call the store does not know about).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coditect_core.store import StateStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # ~1 minute; more on a loaded machine

SEED = 20240605
KILLS = 20
LAYERS, WIDTH = 3, 32
LATENCY_S = 0.2
CONCURRENCY = 4
PROJECT = "crash-drill"
API_KEY = "sk-drill-canary-6f1d0c2e9b"
TASK_RE = re.compile(r"DRILL-TASK=(T\d{3})")
SUPPORT = Path(__file__).resolve().parents[1] / "support"


def _coditect() -> list[str]:
    script = Path(sys.executable).with_name("coditect")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "coditect_core.cli.main"]


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def stub_port(tmp_path: Path) -> Iterator[int]:
    """The stub server as its own process (its record outlives every killed run)."""
    log = (tmp_path / "stub.log").open("w")
    argv = [sys.executable, str(SUPPORT / "stub_server.py"), "--port", "0", "--print-port"]
    proc = subprocess.Popen(
        [*argv, "--latency", str(LATENCY_S)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit(), f"the stub did not start: {line!r}"
        yield int(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _write_project(path: Path, port: int, rng: random.Random) -> dict[str, list[str]]:
    """The project file; returns task id -> dependencies."""
    deps: dict[str, list[str]] = {}
    lines = [
        f"project: {PROJECT}",
        f"defaults: {{agent: stub, max_concurrency: {CONCURRENCY}}}",
        "agents:",
        "  stub:",
        "    type: openai-compatible",
        f"    base_url: http://127.0.0.1:{port}/v1",
        "    model: drill-model",
        f"    api_key: {API_KEY}",
        "    max_tokens: 64",
        "tasks:",
    ]
    for layer in range(LAYERS):
        for i in range(WIDTH):
            tid = f"T{layer * WIDTH + i:03d}"
            below = [f"T{(layer - 1) * WIDTH + j:03d}" for j in range(WIDTH)] if layer else []
            deps[tid] = sorted(rng.sample(below, rng.randint(1, 2))) if below else []
            lines += [
                f"  - id: {tid}",
                f"    title: drill task {tid}",
                f"    description: 'DRILL-TASK={tid} write one line about {tid}'",
            ]
            if deps[tid]:
                lines.append(f"    dependencies: [{', '.join(deps[tid])}]")
    path.write_text("\n".join(lines) + "\n")
    return deps


def _start_run(project: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*_coditect(), "run", str(project), "--json"],
            stdout=out,
            stderr=out,
            cwd=project.parent,
        )


def _kill_at_a_random_moment(proc: subprocess.Popen[bytes], port: int, rng: random.Random) -> bool:
    """SIGKILL ``proc`` at a moment drawn from ``rng``; False if it ended by itself first.

    Mostly a few calls into the run and a little later (calls in flight, writes under way);
    one time in five at any moment of its first seconds (start-up, opening the store, beginning
    the run), or once it made a handful of calls, whichever comes first.
    """
    started = time.monotonic()
    seen = _get(port, "/_stub/stats")["requests"]
    if rng.random() < 0.2:
        deadline, wanted = started + rng.uniform(0.0, 2.5), seen + 8
    else:
        deadline, wanted = started + 60.0, seen + rng.randint(2, 9)
    while time.monotonic() < deadline and _get(port, "/_stub/stats")["requests"] < wanted:
        if proc.poll() is not None:
            return False
        assert time.monotonic() - started < 60, "the run made no call for 60 s"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.1) if time.monotonic() < deadline else 0.0)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def test_sigkilled_runs_resume_without_repeating_a_succeeded_call(
    tmp_path: Path, stub_port: int
) -> None:
    rng = random.Random(SEED)
    project = tmp_path / "project.yaml"
    deps = _write_project(project, stub_port, rng)
    log = tmp_path / "runs.log"

    kills = finished_early = 0
    while kills < KILLS:
        proc = _start_run(project, log)
        try:
            if _kill_at_a_random_moment(proc, stub_port, rng):
                kills += 1
            else:
                finished_early += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        assert finished_early == 0, f"a run ended before its kill (exit {proc.returncode})"

    final = _start_run(project, log)
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]

    db = tmp_path / ".coditect" / "state.db"
    with StateStore.open(db, readonly=True) as store:
        attempts = store.attempts(PROJECT)
        runs = store.runs(PROJECT)
        tasks = {t.task_id: t for t in store.snapshot(PROJECT).tasks}
    requests = _get(stub_port, "/_stub/requests")

    # The store: every task succeeded exactly once; nothing is left in flight.
    assert set(tasks) == set(deps)
    assert {t.status for t in tasks.values()} == {"completed"}
    by_task: dict[str, list[Any]] = defaultdict(list)
    for a in attempts:
        by_task[a.task_id].append(a)
    succeeded = {}
    for tid in deps:
        wins = [a for a in by_task[tid] if a.status == "succeeded"]
        assert len(wins) == 1, f"{tid} succeeded {len(wins)} times: {by_task[tid]}"
        succeeded[tid] = wins[0]
        assert (wins[0].output or "").startswith("stub reply to:")
    statuses = {a.status for a in attempts}
    assert statuses <= {"succeeded", "interrupted"}, statuses
    interrupted = [a for a in attempts if a.status == "interrupted"]
    assert interrupted, "no kill landed while a call was in flight"
    assert all(a.finished_at is not None for a in attempts)
    # Every killed run that got as far as beginning is interrupted; only the last succeeded.
    assert runs[-1].status == "succeeded"
    assert {r.status for r in runs[:-1]} <= {"interrupted"}
    assert len(runs) <= kills + 1
    assert all(a.run_id != runs[-1].run_id for a in interrupted)

    # The stub: calls per task, against the store's record.
    calls: dict[str, list[float]] = defaultdict(list)
    for r in requests:
        prompt = r["body"]["messages"][-1]["content"]
        found = set(TASK_RE.findall(prompt))  # upstream outputs quote 40 characters: no id
        assert len(found) == 1, f"a request names no task or several: {prompt[:300]!r}"
        calls[found.pop()].append(r["received_at"])
    assert set(calls) == set(deps)
    for tid, times in calls.items():
        success_at = succeeded[tid].finished_at
        late = [t for t in times if t > success_at]
        assert not late, f"{tid}: {len(late)} call(s) after its success at {success_at}"
        for dep in deps[tid]:
            early = [t for t in times if t < succeeded[dep].finished_at]
            assert not early, f"{tid}: called before its dependency {dep} succeeded"
        # Each call has an attempt recorded before it (matched in time order, one to one).
        starts = sorted(a.started_at for a in by_task[tid])
        for n, at in enumerate(sorted(times), start=1):
            assert sum(s <= at for s in starts) >= n, f"{tid}: a call with no attempt before it"
    assert len(requests) > len(deps), "no call was ever repeated: the kills hit nothing"

    # The key never reached the database file.
    for path in db.parent.iterdir():
        assert API_KEY.encode() not in path.read_bytes(), path
