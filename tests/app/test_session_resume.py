"""Resume, change-triggered re-runs, ``restart``, the run lock and bad state files, at the level
of :class:`ProjectSession` (what ``coditect run`` uses): a real project file on disk, agents of
type ``custom`` with provider ``fake`` (:class:`FakeLlm`), the store beside the file.

Which tasks a run called is read from the fake models' own call logs (each prompt names its
task), not from the store, so that the store's account is checked against what happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coditect_core.app.session import ProjectSession, RunOutcome
from coditect_core.errors import LlmRequestError, RunLockedError, StateError
from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.orchestration.task import TaskStatus
from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(60)

PROJECT = "resume-demo"
TASK_IN_PROMPT = re.compile(r"^# Task (\S+):", re.MULTILINE)

#  A -> B -> C      D -> E      F (alone); D runs on agent "other", the rest on "main".
BASE: dict[str, Any] = {
    "project": PROJECT,
    "defaults": {"agent": "main", "max_concurrency": 3},
    "agents": {
        "main": {"type": "custom", "provider": "fake", "model": "fake-m1"},
        "other": {"type": "custom", "provider": "fake", "model": "fake-x1"},
    },
    "tasks": [
        {"id": "A", "title": "Task A", "description": "Write A."},
        {"id": "B", "title": "Task B", "description": "Write B.", "dependencies": ["A"]},
        {"id": "C", "title": "Task C", "description": "Write C.", "dependencies": ["B"]},
        {"id": "D", "title": "Task D", "description": "Write D.", "agent": "other"},
        {"id": "E", "title": "Task E", "description": "Write E.", "dependencies": ["D"]},
        {"id": "F", "title": "Task F", "description": "Write F."},
    ],
}
ALL = {"A", "B", "C", "D", "E", "F"}


def spec_copy() -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(BASE))


def task_of(spec: dict[str, Any], tid: str) -> dict[str, Any]:
    return next(t for t in spec["tasks"] if t["id"] == tid)


def write_project(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def state_db(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def called_tasks(session: ProjectSession) -> list[str]:
    """The tasks whose prompts the session's fake models received, in call order."""
    called: list[str] = []
    for name in session.project.agents.names():
        llm = session.orchestrator.executor.get_llm(name)
        assert isinstance(llm, FakeLlm)
        for call in llm.calls:
            called += TASK_IN_PROMPT.findall(call.messages[-1]["content"])[:1]
    return called


async def run_project(
    path: Path,
    *,
    prepare: Callable[[ProjectSession], None] | None = None,
    **kwargs: Any,
) -> tuple[RunOutcome, set[str]]:
    """One session on ``path``: run it; its outcome and the tasks whose models were called."""
    async with ProjectSession.open(path) as session:
        if prepare is not None:
            prepare(session)
        outcome = await session.run(**kwargs)
        called = called_tasks(session)
    assert len(called) == len(set(called)), f"a task was called twice in one run: {called}"
    return outcome, set(called)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project.yaml", spec_copy())


# -- resume -----------------------------------------------------------------------------------


async def test_second_run_skips_what_succeeded(project: Path) -> None:
    first, called = await run_project(project)
    assert called == ALL
    assert first.summary.ok
    assert set(first.plan.run) == ALL

    async with ProjectSession.open(project) as session:
        second = await session.run()
        assert called_tasks(session) == []
        # The skipped tasks carry their recorded outputs into this run's results.
        for tid in ALL:
            result = session.orchestrator.results[tid]
            assert result.metadata.get("resumed") is True
            assert (result.output or "").startswith(f"fake reply to: # Task {tid}: Task {tid}")
    assert second.summary.ok
    assert set(second.skipped) == ALL
    assert second.plan.run == ()
    assert second.run_id != first.run_id
    with StateStore.open(state_db(project), readonly=True) as store:
        # issue 18: a run that did nothing (every task done already) is not recorded
        assert [r.run_id for r in store.runs(PROJECT)] == [first.run_id]
        assert len(store.attempts(PROJECT, status="succeeded")) == len(ALL)
        assert store.attempts(PROJECT, run_id=second.run_id) == []


def _fail_b(session: ProjectSession) -> None:
    def reply(messages: list[Message]) -> str | BaseException:
        if "# Task B:" in messages[-1]["content"]:
            return LlmRequestError("the model refused B")  # not retryable
        return "fine"

    llm = session.orchestrator.executor.get_llm("main")
    assert isinstance(llm, FakeLlm)
    llm.default = reply


async def test_a_failed_task_and_its_dependents_run_again_and_nothing_else(
    project: Path,
) -> None:
    first, called = await run_project(project, prepare=_fail_b)
    assert first.summary.ids(TaskStatus.FAILED) == ["B"]
    assert "C" not in called
    assert called == ALL - {"C"}

    second, called = await run_project(project)
    assert called == {"B", "C"}
    assert set(second.skipped) == {"A", "D", "E", "F"}
    assert second.summary.ok


# -- change-triggered re-runs -----------------------------------------------------------------


def _change_description(spec: dict[str, Any]) -> None:
    task_of(spec, "B")["description"] = "Write B, but better."


def _change_agent(spec: dict[str, Any]) -> None:
    task_of(spec, "B")["agent"] = "other"


def _change_model(spec: dict[str, Any]) -> None:
    spec["agents"]["other"]["model"] = "fake-x2"  # D's agent


def _change_dependencies(spec: dict[str, Any]) -> None:
    task_of(spec, "E")["dependencies"] = ["D", "F"]


def _change_system_prompt(spec: dict[str, Any]) -> None:
    spec["agents"]["other"]["system_prompt"] = "Answer in French."


def _change_nothing_that_matters(spec: dict[str, Any]) -> None:
    spec["defaults"]["max_concurrency"] = 1  # how it runs, not what it asks
    spec["tasks"].reverse()  # order in the file


@pytest.mark.parametrize(
    ("change", "changed", "reruns"),
    [
        (_change_description, {"B"}, {"B", "C"}),
        (_change_agent, {"B"}, {"B", "C"}),
        (_change_model, {"D"}, {"D", "E"}),
        (_change_dependencies, {"E"}, {"E"}),
        (_change_system_prompt, {"D"}, {"D", "E"}),
        (_change_nothing_that_matters, set(), set()),
    ],
    ids=["description", "agent", "model", "dependencies", "system_prompt", "irrelevant"],
)
async def test_a_changed_task_reruns_with_everything_downstream_and_nothing_else(
    project: Path, change: Callable[[dict[str, Any]], None], changed: set[str], reruns: set[str]
) -> None:
    await run_project(project)
    spec = spec_copy()
    change(spec)
    write_project(project, spec)

    async with ProjectSession.open(project) as session:
        preview = session.preview()  # what --dry-run shows: the same decision, nothing written
    assert set(preview.run) == reruns

    outcome, called = await run_project(project)
    assert called == reruns
    assert set(outcome.plan.run) == reruns
    assert set(outcome.plan.changed) == changed
    assert set(outcome.skipped) == ALL - reruns
    for tid in changed:
        assert outcome.plan.reasons[tid] == "definition changed"
    for tid in reruns - changed:
        assert outcome.plan.reasons[tid].startswith("upstream ")
    assert outcome.summary.ok

    # Rebuilt once, nothing runs again; the history shows a second success for what re-ran.
    third, called = await run_project(project)
    assert called == set()
    assert set(third.skipped) == ALL
    with StateStore.open(state_db(project), readonly=True) as store:
        for tid in ALL:
            history = store.task_history(PROJECT, tid)
            completions = [e for e in history if e.status == "completed"]
            assert len(completions) == (2 if tid in reruns else 1), (tid, history)


async def test_reverting_a_change_reruns_again(project: Path) -> None:
    """The definition is compared with the one at the last success, not the first."""
    await run_project(project)
    spec = spec_copy()
    _change_description(spec)
    write_project(project, spec)
    _, called = await run_project(project)
    assert called == {"B", "C"}
    write_project(project, spec_copy())
    _, called = await run_project(project)
    assert called == {"B", "C"}


async def test_an_upstream_that_reran_alone_brings_its_dependents_back(project: Path) -> None:
    """A run that re-ran B and stopped before C: the next run rebuilds C (B is newer)."""
    await run_project(project)
    spec = spec_copy()
    _change_description(spec)
    write_project(project, spec)
    async with ProjectSession.open(project, only=["B"]) as session:
        # --only B takes B's dependencies along, not its dependents.
        outcome = await session.run()
        assert set(called_tasks(session)) == {"B"}
    assert set(outcome.plan.run) == {"B"}
    _, called = await run_project(project)
    assert called == {"C"}


# -- restart ----------------------------------------------------------------------------------


async def test_restart_runs_everything_as_a_new_run_and_keeps_history(project: Path) -> None:
    first, _ = await run_project(project)
    second, called = await run_project(project, restart=True)
    assert called == ALL
    assert second.skipped == []
    assert second.run_id != first.run_id
    assert second.summary.ok
    with StateStore.open(state_db(project), readonly=True) as store:
        runs = store.runs(PROJECT)
        assert [r.run_id for r in runs] == [first.run_id, second.run_id]
        assert [r.status for r in runs] == ["succeeded", "succeeded"]
        assert runs[1].options["restart"] is True
        for tid in ALL:
            attempts = store.attempts(PROJECT, task_id=tid)
            assert [(a.run_id, a.status) for a in attempts] == [
                (first.run_id, "succeeded"),
                (second.run_id, "succeeded"),
            ]
            notes = [e.note or "" for e in store.task_history(PROJECT, tid)]
            assert any(n.startswith("restart") for n in notes), notes
    # After a restart, a plain run resumes again (skips everything).
    _, called = await run_project(project)
    assert called == set()


# -- the run lock -----------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from coditect_core.orchestration.observer import OrchestratorObserver
    from coditect_core.app.session import ProjectSession

    class Ready(OrchestratorObserver):
        async def task_started(self, task, **kw):
            print("STARTED", task.task_id, flush=True)

    async def main():
        async with ProjectSession.open(sys.argv[1]) as session:
            for name in session.project.agents.names():
                session.orchestrator.executor.get_llm(name).latency = 3600
            session.orchestrator.add_observer(Ready())
            await session.run()

    asyncio.run(main())
    """
)


@pytest.fixture
def holder(project: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process running ``project``, its first calls in flight (for an hour)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("STARTED"):
            proc.kill()
            raise AssertionError(f"the holder did not start: {line!r} {proc.stderr.read()!r}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def test_a_concurrent_run_of_the_same_project_is_refused(
    project: Path, holder: subprocess.Popen[str]
) -> None:
    db = state_db(project)
    with StateStore.open(db, readonly=True) as store:
        # A, D and F start at once (concurrency 3) and stay in flight: wait for all three, so
        # that nothing the holder does after this snapshot is a start of its own.
        deadline = time.monotonic() + 20
        while len((before := store.snapshot(PROJECT)).in_flight) < 3:
            assert time.monotonic() < deadline, "the holder did not put its 3 calls in flight"
            await asyncio.sleep(0.01)
    async with ProjectSession.open(project) as session:
        with pytest.raises(RunLockedError) as info:
            await session.run()
        assert called_tasks(session) == []
    assert f"PID {holder.pid}" in str(info.value)
    with StateStore.open(db, readonly=True) as store:
        after = store.snapshot(PROJECT)
    # Refused before anything was written: the holder's run and calls are untouched.
    assert after.runs == before.runs
    assert [a.attempt_id for a in after.in_flight] == [a.attempt_id for a in before.in_flight]
    assert {a.status for a in after.in_flight} == {"running"}

    # The holder dies: the next run takes the lock over and finishes the project.
    holder.kill()
    holder.wait(timeout=10)
    outcome, called = await run_project(project)
    assert outcome.summary.ok
    assert called == ALL  # nothing had succeeded in the dead run
    with StateStore.open(db, readonly=True) as store:
        runs = store.runs(PROJECT)
        assert [r.status for r in runs] == ["interrupted", "succeeded"]
        interrupted = store.attempts(PROJECT, status="interrupted")
        assert {a.attempt_id for a in interrupted} == {a.attempt_id for a in before.in_flight}


# -- bad state files --------------------------------------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(4096))


def _foreign_sqlite(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes(body) VALUES ('somebody else''s data')")
    conn.commit()
    conn.close()


def _corrupt_pages(db: Path) -> None:
    """A real state database whose pages after the header are overwritten."""
    StateStore.open(db).close()
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    db.write_bytes(bytes(data))


def _newer_schema(db: Path) -> None:
    StateStore.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "spoil",
    [_garbage, _foreign_sqlite, _corrupt_pages, _newer_schema],
    ids=["garbage", "foreign_sqlite", "corrupt_pages", "newer_schema"],
)
async def test_an_unusable_state_file_is_refused_and_left_untouched(
    project: Path, spoil: Callable[[Path], None]
) -> None:
    db = state_db(project)
    db.parent.mkdir(mode=0o700)
    spoil(db)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    with pytest.raises(StateError) as info:
        ProjectSession.open(project)
    assert str(db) in str(info.value)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    assert after == before


async def test_the_state_option_points_elsewhere_and_a_bad_one_is_refused(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "state.db"
    async with ProjectSession.open(project, state=elsewhere) as session:
        await session.run()
    assert elsewhere.exists()
    assert not state_db(project).exists()
    bad = tmp_path / "bad.db"
    _foreign_sqlite(bad)
    content = bad.read_bytes()
    with pytest.raises(StateError):
        ProjectSession.open(project, state=bad)
    assert bad.read_bytes() == content
