"""The cost of a git worktree per task: create + remove, for a 50-task graph.

A repository is made in a temporary folder (``--files`` Python files of 40 lines, one commit),
and a 50-task layered graph (``bench/_layered.py``) is walked in dependency order as a run does:
each task gets its worktree from the integration branch (:meth:`Workspace.create_worktree`),
changes one file of its own, commits, merges into the integration branch, and its worktree is
removed (:meth:`Workspace.remove_worktree`). Figures, one JSON line each (median of ``--reps``
repetitions, each on a fresh repository):

* ``create_remove_ms_per_task``: create + remove of a task's worktree, per task.
* ``raw_git_ms_per_task``: the baseline, same process, same repository size: bare
  ``git worktree add -b`` + ``git worktree remove`` through :func:`subprocess.run`;
  ``ratio`` is the first over this one (what the workspace adds to git itself).
* ``commit_merge_ms_per_task``: the task's commit and its merge into the integration branch.

    python bench/bench_worktrees.py [--tasks 50] [--files 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _layered import layered_graph
from coditect_core.tools.workspace import Workspace

_ENV = {
    "PATH": os.environ.get("PATH", os.defpath),
    "HOME": os.environ.get("HOME", "/tmp"),
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=_ENV)


def make_repo(path: Path, files: int) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    for i in range(files):
        sub = path / f"pkg{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"mod{i}.py").write_text("".join(f"VALUE_{n} = {n}\n" for n in range(40)))
    _git(path, "add", "--all")
    _git(path, "commit", "-q", "-m", "initial")
    return path


async def workspace_round(repo: Path, tasks: int) -> tuple[float, float]:
    """Seconds per task: (create + remove, commit + merge)."""
    ws = await Workspace.open(repo, project="bench")
    lifecycle = merging = 0.0
    for task in layered_graph(tasks, seed=1, width=10):
        started = time.perf_counter()
        wt = await ws.create_worktree(task.task_id)
        lifecycle += time.perf_counter() - started
        (wt.path / f"{task.task_id}.py").write_text(f"TASK = {task.task_id!r}\n")
        started = time.perf_counter()
        await ws.commit(wt, f"{task.task_id}: bench")
        await ws.merge(wt.branch, f"merge {task.task_id}")
        merging += time.perf_counter() - started
        started = time.perf_counter()
        await ws.remove_worktree(task.task_id)
        lifecycle += time.perf_counter() - started
    await ws.close()
    return lifecycle / tasks, merging / tasks


def raw_round(repo: Path, tasks: int) -> float:
    """Seconds per task of bare ``git worktree add -b`` + ``git worktree remove``."""
    root = Path(tempfile.mkdtemp(dir=repo.parent))
    total = 0.0
    for task in layered_graph(tasks, seed=1, width=10):
        path = root / task.task_id
        started = time.perf_counter()
        _git(repo, "worktree", "add", "--quiet", "-b", f"raw/{task.task_id}", str(path), "main")
        _git(repo, "worktree", "remove", "--force", str(path))
        total += time.perf_counter() - started
    return total / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    lifecycle, merging, raw = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            ours = make_repo(Path(tmp) / f"ws{rep}", args.files)
            theirs = make_repo(Path(tmp) / f"raw{rep}", args.files)
            if rep % 2:
                raw.append(raw_round(theirs, args.tasks))
                per_task, merge = asyncio.run(workspace_round(ours, args.tasks))
            else:
                per_task, merge = asyncio.run(workspace_round(ours, args.tasks))
                raw.append(raw_round(theirs, args.tasks))
            lifecycle.append(per_task)
            merging.append(merge)
    load = os.getloadavg()[0]
    common = {"tasks": args.tasks, "files": args.files, "reps": args.reps, "load1": load}
    ours_ms = statistics.median(lifecycle) * 1000
    raw_ms = statistics.median(raw) * 1000
    figures = [
        ("create_remove_ms_per_task", ours_ms, "informational", {"spread_ms": _spread(lifecycle)}),
        ("raw_git_ms_per_task", raw_ms, "baseline", {"spread_ms": _spread(raw)}),
        ("ratio", ours_ms / raw_ms, "informational", {}),
        (
            "commit_merge_ms_per_task",
            statistics.median(merging) * 1000,
            "informational",
            {"spread_ms": _spread(merging)},
        ),
    ]
    for figure, value, target, extra in figures:
        line = {"bench": "worktrees", "figure": figure, "value": round(value, 3)}
        print(json.dumps({**line, "target": target, **extra, **common}))


def _spread(values: list[float]) -> list[float]:
    return [round(min(values) * 1000, 3), round(max(values) * 1000, 3)]


if __name__ == "__main__":
    main()
