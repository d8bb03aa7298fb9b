"""A run's code changes over a real git repository: worktrees per task, checks as the loop's
hook, commits and merges recorded in a state store, resume after a stop between commit and
merge."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from git_repos import git_out, make_repo, user_state

from coditect_core.errors import CheckFailedError, MergeConflictError
from coditect_core.orchestration.changes import CodeChanges
from coditect_core.store import StateStore
from coditect_core.tools.checks import Check
from coditect_core.tools.workspace import Workspace

PY = sys.executable
# passes when calc.add adds
CHECK = Check((PY, "-c", "import calc, sys; sys.exit(0 if calc.add(2, 3) == 5 else 1)"), 30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n", "notes.md": "x\n"}
    )


async def changes_for(repo: Path, store: StateStore, run_id: int, **kwargs: object) -> CodeChanges:
    ws = await Workspace.open(repo, project="p")
    changes = CodeChanges(ws, recorder=store, run_id=run_id, **kwargs)  # type: ignore[arg-type]
    await changes.prepare()
    return changes


async def test_independent_tasks_both_merge_and_a_dependent_sees_them(
    repo: Path, tmp_path: Path
) -> None:
    before = user_state(repo)
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p", options={})
        changes = await changes_for(repo, store, run.run_id)
        one, two = await changes.start("one"), await changes.start("two")
        (one.path / "a.txt").write_text("from one\n")
        (two.path / "b.txt").write_text("from two\n")
        first = await changes.finish("one", "first")
        second = await changes.finish("two", "second")
        assert first.changed
        assert second.changed
        await changes.release("one")
        await changes.release("two")
        dependent = await changes.start("three")
        assert (dependent.path / "a.txt").read_text() == "from one\n"
        assert (dependent.path / "b.txt").read_text() == "from two\n"
        none = await changes.finish("three", "nothing")
        assert not none.changed
        assert "changed nothing" in none.summary()
        await changes.close()
        await store.finish_run(run.run_id, "succeeded")
        records = {c.task_id: c for c in store.task_changes("p")}
        assert records["one"].merge_commit == first.merge_commit
        assert records["one"].files == (("a.txt", 1, 0),)
        assert "+from one" in (records["one"].diff or "")
        assert records["three"].commit is None
    tree = git_out(repo, "ls-tree", "--name-only", "coditect/p").split()
    assert {"a.txt", "b.txt"} <= set(tree)
    assert user_state(repo) == before
    assert not (repo / "a.txt").exists()


async def test_a_conflict_names_the_file_and_keeps_the_branch(repo: Path, tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p", options={})
        changes = await changes_for(repo, store, run.run_id)
        one, two = await changes.start("one"), await changes.start("two")
        (one.path / "notes.md").write_text("one\n")
        (two.path / "notes.md").write_text("two\n")
        await changes.finish("one", "first")
        with pytest.raises(MergeConflictError, match=r"notes\.md") as caught:
            await changes.finish("two", "second")
        assert caught.value.files == ("notes.md",)
        (record,) = store.task_changes("p", "two")
        assert record.commit is not None
        assert record.merge_commit is None
        await changes.close()
        await store.finish_run(run.run_id, "failed")
    assert git_out(repo, "show", "coditect/p:notes.md") == "one\n"


async def test_a_failing_check_goes_back_and_passes_on_the_second_try(
    repo: Path, tmp_path: Path
) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p", options={})
        changes = await changes_for(repo, store, run.run_id, checks={"fix": [CHECK]})
        wt = await changes.start("fix")
        gate = changes.gate("fix")
        message = await gate("the agent says: done")
        assert message is not None
        assert "exited with status 1" in message
        assert "1 try left" in message
        (wt.path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        assert await gate("done now") is None
        outcome = await changes.finish("fix", "fix add")
        assert outcome.changed
        await changes.close()
        await store.finish_run(run.run_id, "succeeded")
        runs = store.check_runs("p", "fix")
        assert [(r.attempt, r.exit_code) for r in runs] == [(1, 1), (2, 0)]


async def test_a_check_that_keeps_failing_fails_after_check_attempts(
    repo: Path, tmp_path: Path
) -> None:
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p", options={})
        changes = await changes_for(
            repo, store, run.run_id, checks={"fix": [CHECK]}, check_attempts={"fix": 3}
        )
        await changes.start("fix")
        gate = changes.gate("fix")
        assert await gate() is not None
        assert await gate() is not None
        with pytest.raises(CheckFailedError, match="after 3 tries") as caught:
            await gate()
        assert "exited with status 1" in str(caught.value)
        await changes.close()
        await store.finish_run(run.run_id, "failed")
        assert len(store.check_runs("p", "fix")) == 3


async def test_no_checks_pass_at_once(repo: Path, tmp_path: Path) -> None:
    ws = await Workspace.open(repo, project="p")
    changes = CodeChanges(ws)
    await changes.start("t")
    assert await changes.gate("t")() is None


async def test_a_commit_left_unmerged_by_a_stopped_run_is_merged_once_on_resume(
    repo: Path, tmp_path: Path
) -> None:
    ws = await Workspace.open(repo, project="p")
    wt = await ws.create_worktree("t")
    (wt.path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    committed = await ws.commit(wt, "t: fix")
    # the run dies here: the worktree stays, nothing merged
    async with StateStore.open(tmp_path / "state.db") as store:
        run = await store.begin_run("p", options={})
        changes = await changes_for(repo, store, run.run_id)
        resumed = await changes.start("t")
        assert (resumed.path / "calc.py").read_text().endswith("a + b\n")
        outcome = await changes.finish("t", "fix")  # the agent changed nothing more
        assert outcome.commit == committed.commit
        again = await changes.finish("t", "fix")
        assert again.already_merged
        await changes.close()
        await store.finish_run(run.run_id, "succeeded")
    merges = git_out(repo, "rev-list", "--merges", "coditect/p").split()
    assert len(merges) == 1
    assert git_out(repo, "show", "coditect/p:calc.py").endswith("a + b\n")


async def test_run_task_goes_from_worktree_to_merge_and_releases(
    repo: Path, tmp_path: Path
) -> None:
    ws = await Workspace.open(repo, project="p")
    changes = CodeChanges(ws, checks={"t": [CHECK]})
    seen: list[str | None] = []

    async def agent(worktree: object, gate: object) -> str:
        from coditect_core.orchestration.changes import ChecksGate
        from coditect_core.tools.workspace import TaskWorktree

        assert isinstance(worktree, TaskWorktree)
        assert isinstance(gate, ChecksGate)
        seen.append(await gate())  # fails: sent back
        (worktree.path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        seen.append(await gate())
        return "fixed"

    value, outcome = await changes.run_task("t", "fix add", agent)
    assert value == "fixed"
    assert seen[0] is not None
    assert seen[1] is None
    assert outcome.merge_commit == await ws.tip("coditect/p")
    assert not ws.task_path("t").exists()

    async def broken(worktree: object, gate: object) -> str:
        raise RuntimeError("agent failed")

    with pytest.raises(RuntimeError):
        await changes.run_task("u", "broken", broken)
    assert not ws.task_path("u").exists()


async def test_run_writing_task_says_what_changed_and_hands_a_conflict_over(repo: Path) -> None:
    from types import SimpleNamespace

    from coditect_core.orchestration.changes import ChecksGate, run_writing_task
    from coditect_core.orchestration.execution_result import ExecutionResult, ExecutionStatus
    from coditect_core.orchestration.task import AgentTask

    ws = await Workspace.open(repo, project="p")
    modes = {"b": "ask", "c": "fail"}
    changes = CodeChanges(ws, on_conflict=lambda tid: modes.get(tid, "fail"))
    started, a_done = asyncio.Barrier(3), asyncio.Event()

    def execution(task_id: str) -> SimpleNamespace:
        result = ExecutionResult(task_id, status=ExecutionStatus.SUCCESS, output="answer")
        return SimpleNamespace(task=AgentTask(task_id, f"title {task_id}"), result=result)

    def editing(text: str, wait: bool) -> object:
        async def loop(path: Path, gate: ChecksGate) -> None:
            await started.wait()  # all three worktrees made from the same tip
            if wait:
                await a_done.wait()
            (path / "notes.md").write_text(text)
            assert await gate() is None

        return loop

    a, b, c = execution("a"), execution("b"), execution("c")

    async def first() -> None:
        await run_writing_task(a, changes, editing("from a\n", False))  # type: ignore[arg-type]
        a_done.set()

    outcomes = await asyncio.gather(
        first(),
        run_writing_task(b, changes, editing("from b\n", True)),  # type: ignore[arg-type]
        run_writing_task(c, changes, editing("from c\n", True)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert a.result.output.startswith("answer\n\n[changed 1 file(s), +1 -1; merged")
    assert a.result.metadata["change"]["files_changed"] == 1
    assert outcomes[0] is None
    assert outcomes[1] is None
    assert b.result.status is ExecutionStatus.AWAITING_HUMAN
    assert b.result.metadata["conflict"]["files"] == ["notes.md"]
    assert "coditect task complete b" in b.result.metadata["handoff_prompt"]
    assert isinstance(outcomes[2], MergeConflictError)
    assert "notes.md" in str(outcomes[2])
    assert not ws.task_path("c").exists()
    assert git_out(repo, "show", "coditect/p:notes.md") == "from a\n"

    nothing = execution("d")
    await run_writing_task(nothing, changes, lambda path, gate: asyncio.sleep(0))  # type: ignore[arg-type]
    assert "changed nothing" in nothing.result.output


async def test_a_resumed_task_goes_on_in_the_worktree_its_stopped_run_left(
    repo: Path, tmp_path: Path
) -> None:
    ws = await Workspace.open(repo, project="p")
    wt = await ws.create_worktree("t")
    other = await ws.create_worktree("gone")
    (wt.path / "calc.py").write_text("def add(a, b):\n    return a + b\n")  # not committed
    admin = Path((wt.path / ".git").read_text().split(":", 1)[1].strip())
    (admin / "index.lock").write_text("")  # a git killed with the run
    # the run is killed here; a new one resumes t from its recorded turns
    changes = CodeChanges(await Workspace.open(repo, project="p"))
    await changes.prepare()
    assert not (admin / "index.lock").exists()
    resumed = await changes.start("t", resume=True)
    assert (resumed.path / "calc.py").read_text().endswith("a + b\n")
    outcome = await changes.finish("t", "fix")
    assert outcome.changed
    assert git_out(repo, "show", "coditect/p:calc.py").endswith("a + b\n")
    await changes.close()
    assert not other.path.exists()  # a stopped run's worktree no task went on in
    assert not wt.path.exists()
    assert git_out(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_a_task_run_again_from_scratch_starts_from_a_clean_worktree(repo: Path) -> None:
    ws = await Workspace.open(repo, project="p")
    wt = await ws.create_worktree("t")
    (wt.path / "junk.py").write_text("half done\n")
    changes = CodeChanges(await Workspace.open(repo, project="p"))
    await changes.prepare()
    fresh = await changes.start("t")
    assert not (fresh.path / "junk.py").exists()
