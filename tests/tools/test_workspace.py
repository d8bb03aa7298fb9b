"""The git repository of a run, in real repositories made with ``git init``: the integration
branch, a worktree per task, commits, merges (one at a time, idempotent, conflicts aborted),
diffs, and the user's checkout never touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from git_repos import git_out, make_repo, user_state

from coditect_core.errors import MergeConflictError, WorkspaceError
from coditect_core.tools.workspace import DEFAULT_AUTHOR, Workspace, parse_author

FILES = {"a.py": "A = 1\n", "b.py": "B = 1\n", "pkg/c.py": "C = 1\n"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", FILES)


async def open_ws(repo: Path, **kwargs: str) -> Workspace:
    return await Workspace.open(repo, project="demo", **kwargs)


async def test_open_makes_the_integration_branch_from_the_current_branch(repo: Path) -> None:
    ws = await open_ws(repo)
    assert ws.base_branch == "main"
    assert ws.integration_branch == "coditect/demo"
    assert git_out(repo, "rev-parse", "coditect/demo") == git_out(repo, "rev-parse", "main")
    # worktrees live under the git directory, out of the user's tree
    assert ws.root.is_relative_to(repo / ".git")


async def test_open_with_named_branches_and_an_existing_integration_branch(repo: Path) -> None:
    git_out(repo, "branch", "dev")
    ws = await open_ws(repo, base_branch="dev", integration_branch="work/it")
    assert (ws.base_branch, ws.integration_branch) == ("dev", "work/it")
    (repo / "a.py").write_text("A = 2\n")
    git_out(repo, "commit", "-qam", "user moves on")
    again = await open_ws(repo, base_branch="dev", integration_branch="work/it")
    assert await again.tip("work/it") == git_out(repo, "rev-parse", "dev").strip()


async def test_open_refuses_what_is_not_a_repository_or_a_branch(
    tmp_path: Path, repo: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(WorkspaceError, match=r"plain.*not a git repository"):
        await open_ws(plain)
    with pytest.raises(WorkspaceError, match="not a directory"):
        await open_ws(tmp_path / "missing")
    with pytest.raises(WorkspaceError, match="base branch 'nope' does not exist"):
        await open_ws(repo, base_branch="nope")
    with pytest.raises(WorkspaceError, match="not a valid git branch name"):
        await open_ws(repo, integration_branch="bad..name")
    with pytest.raises(WorkspaceError, match="Name <email>"):
        await Workspace.open(repo, project="demo", author="nobody")
    assert git_out(repo, "branch", "--format=%(refname:short)").split() == ["main"]


async def test_a_task_commits_in_its_own_worktree_and_merges(repo: Path) -> None:
    before = user_state(repo)
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    assert wt.branch == "coditect/demo-tasks/t1"
    assert wt.start == git_out(repo, "rev-parse", "main").strip()
    (wt.path / "a.py").write_text("A = 10\nA2 = 3\n")
    (wt.path / "new.py").write_text("N = 1\n")
    (wt.path / "b.py").unlink()
    committed = await ws.commit(wt, "t1: change a")
    assert committed.changed
    log = git_out(repo, "log", "-1", "--format=%an <%ae>|%s", wt.branch).strip()
    assert log == f"{DEFAULT_AUTHOR}|t1: change a"

    diff = await ws.task_diff("t1", wt.start)
    assert {(f.path, f.added, f.removed) for f in diff.files} == {
        ("a.py", 2, 1),
        ("b.py", 0, 1),
        ("new.py", 1, 0),
    }
    assert (diff.lines_added, diff.lines_removed) == (3, 2)
    assert "+A2 = 3" in diff.text

    merged = await ws.merge(wt.branch, "merge t1")
    assert not merged.already_merged
    assert git_out(repo, "rev-parse", "coditect/demo").strip() == merged.commit
    parents = git_out(repo, "log", "-1", "--format=%P", merged.commit).split()
    assert parents[1] == committed.commit
    assert git_out(repo, "show", "coditect/demo:a.py") == "A = 10\nA2 = 3\n"

    whole = await ws.integration_diff()
    assert {f.path for f in whole.files} == {"a.py", "b.py", "new.py"}

    await ws.remove_worktree("t1")
    await ws.close()
    assert not wt.path.exists()
    assert user_state(repo) == before
    assert (repo / "b.py").read_text() == "B = 1\n"
    assert git_out(repo, "worktree", "list").count("\n") == 1


async def test_nothing_changed_is_a_result(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    result = await ws.commit(wt, "t1")
    assert not result.changed
    assert result.commit == wt.start
    assert (await ws.task_diff("t1", wt.start)).files == ()


async def test_merging_twice_merges_once(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    (wt.path / "a.py").write_text("A = 2\n")
    await ws.commit(wt, "t1")
    first = await ws.merge(wt.branch, "merge t1")
    second = await ws.merge(wt.branch, "merge t1")
    assert second.already_merged
    assert second.commit == first.commit
    merges = git_out(repo, "rev-list", "--merges", "coditect/demo").split()
    assert merges == [first.commit]


async def test_parallel_merges_run_one_at_a_time_and_all_land(repo: Path) -> None:
    ws = await open_ws(repo)
    worktrees = [await ws.create_worktree(f"t{i}") for i in range(4)]
    for i, wt in enumerate(worktrees):
        (wt.path / f"f{i}.py").write_text(f"X = {i}\n")
        await ws.commit(wt, f"t{i}")
    results = await asyncio.gather(*(ws.merge(wt.branch, f"m{wt.task_id}") for wt in worktrees))
    assert not any(r.already_merged for r in results)
    tree = git_out(repo, "ls-tree", "--name-only", "coditect/demo").split()
    assert {"f0.py", "f1.py", "f2.py", "f3.py"} <= set(tree)
    assert len(git_out(repo, "rev-list", "--merges", "coditect/demo").split()) == 4


async def test_a_dependent_worktree_sees_what_was_merged_before_it(repo: Path) -> None:
    ws = await open_ws(repo)
    first = await ws.create_worktree("t1")
    (first.path / "a.py").write_text("A = 'from t1'\n")
    await ws.commit(first, "t1")
    await ws.merge(first.branch, "merge t1")
    second = await ws.create_worktree("t2")
    assert (second.path / "a.py").read_text() == "A = 'from t1'\n"


async def test_a_conflict_aborts_cleanly_and_names_the_file(repo: Path) -> None:
    before = user_state(repo)
    ws = await open_ws(repo)
    one, two = await ws.create_worktree("t1"), await ws.create_worktree("t2")
    (one.path / "pkg" / "c.py").write_text("C = 'one'\n")
    (two.path / "pkg" / "c.py").write_text("C = 'two'\n")
    (two.path / "b.py").write_text("B = 'two'\n")
    await ws.commit(one, "t1")
    await ws.commit(two, "t2")
    merged = await ws.merge(one.branch, "merge t1")
    with pytest.raises(MergeConflictError, match=r"pkg/c\.py") as caught:
        await ws.merge(two.branch, "merge t2")
    assert caught.value.files == ("pkg/c.py",)
    assert caught.value.branch == two.branch
    assert await ws.tip("coditect/demo") == merged.commit
    assert git_out(ws.integration_path, "status", "--porcelain") == ""
    # the integration worktree is usable again afterwards
    three = await ws.create_worktree("t3")
    (three.path / "d.py").write_text("D = 1\n")
    await ws.commit(three, "t3")
    assert not (await ws.merge(three.branch, "merge t3")).already_merged
    assert user_state(repo) == before


async def test_a_crashed_runs_worktrees_are_cleaned_and_its_commits_kept(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    (wt.path / "a.py").write_text("A = 5\n")
    done = await ws.commit(wt, "t1")
    (wt.path / "half.py").write_text("unfinished\n")
    loose = ws.root / "tasks" / "ghost"
    loose.mkdir(parents=True)
    (loose / "junk").write_text("x")
    # a new process after the crash
    again = await open_ws(repo)
    removed = await again.clean_stale()
    assert wt.path in removed
    assert loose in removed
    assert not wt.path.exists()
    assert not loose.exists()
    assert git_out(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert await again.tip(wt.branch) == done.commit
    resumed = await again.create_worktree("t1")
    assert (resumed.path / "a.py").read_text() == "A = 5\n"
    assert resumed.start == git_out(repo, "rev-parse", "main").strip()


async def test_keep_leaves_the_worktree(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    await ws.remove_worktree("t1", keep=True)
    assert wt.path.is_dir()


async def test_a_configured_author_commits_and_global_config_is_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Global\n\temail = global@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Leaked")
    ws = await Workspace.open(repo, project="demo", author="Bot <bot@example.org>")
    wt = await ws.create_worktree("t1")
    (wt.path / "a.py").write_text("A = 3\n")
    done = await ws.commit(wt, "t1: title")
    who = git_out(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", done.commit).strip()
    assert who == "Bot <bot@example.org>|Bot <bot@example.org>"


def test_parse_author() -> None:
    assert parse_author("A B <a@b>") == ("A B", "a@b")
    with pytest.raises(WorkspaceError, match="'a@b'"):
        parse_author("a@b")


async def test_an_invalid_task_id_is_refused_by_name(repo: Path) -> None:
    ws = await open_ws(repo)
    with pytest.raises(WorkspaceError, match="task 'a b'"):
        await ws.create_worktree("a b")


async def test_check_caches_are_not_committed(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    (wt.path / "__pycache__").mkdir()
    (wt.path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    (wt.path / ".pytest_cache").mkdir()
    (wt.path / ".pytest_cache" / "v").write_text("x")
    (wt.path / "a.py").write_text("A = 9\n")
    done = await ws.commit(wt, "t1")
    files = git_out(repo, "show", "--name-only", "--format=", done.commit).split()
    assert files == ["a.py"]


async def test_a_merged_branch_starts_again_from_the_integration_tip(repo: Path) -> None:
    ws = await open_ws(repo)
    first = await ws.create_worktree("t1")
    (first.path / "a.py").write_text("A = 'first'\n")
    await ws.commit(first, "t1")
    await ws.merge(first.branch, "merge t1")
    await ws.remove_worktree("t1")
    other = await ws.create_worktree("t2")
    (other.path / "b.py").write_text("B = 'other'\n")
    await ws.commit(other, "t2")
    await ws.merge(other.branch, "merge t2")
    again = await ws.create_worktree("t1")  # t1 runs again (a rerun)
    assert again.start == await ws.tip("coditect/demo")
    assert (again.path / "b.py").read_text() == "B = 'other'\n"


async def test_a_lock_left_by_a_killed_git_is_cleaned(repo: Path) -> None:
    ws = await open_ws(repo)
    wt = await ws.create_worktree("t1")
    lock = repo / ".git" / "refs" / "heads" / "coditect" / "demo-tasks" / "t1.lock"
    lock.write_text("")
    user_lock = repo / ".git" / "refs" / "heads" / "main.lock"
    user_lock.write_text("")
    assert lock in await ws.clean_stale()
    assert not lock.exists()
    assert user_lock.exists()
    user_lock.unlink()
    again = await ws.create_worktree("t1")
    assert again.branch == wt.branch
