"""Project files and helpers shared by the CLI tests: quickstart-like projects on the ``fake``
provider (agents ``type: custom, provider: fake``), so that runs take milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# The quickstart's graph (steps 4.1 to 4.7 of the plan, with their real dependencies).
QUICKSTART_GRAPH: dict[str, list[str]] = {
    "STEP-4.1": [],
    "STEP-4.2": ["STEP-4.1"],
    "STEP-4.3": ["STEP-4.2"],
    "STEP-4.4": ["STEP-4.3"],
    "STEP-4.5": ["STEP-4.3"],
    "STEP-4.6": ["STEP-4.3"],
    "STEP-4.7": ["STEP-4.4", "STEP-4.5", "STEP-4.6"],
}


def fake_project(
    directory: Path,
    *,
    latency: float = 0.0,
    name: str = "quick-fake",
    agents: dict[str, Any] | None = None,
    task_agents: dict[str, str] | None = None,
    graph: dict[str, list[str]] | None = None,
    filename: str = "project.yaml",
) -> Path:
    """Write a quickstart-like project whose default agent is a ``FakeLlm``; its path."""
    fake: dict[str, Any] = {"type": "custom", "provider": "fake"}
    if latency:
        fake["options"] = {"latency": latency}
    spec = {
        "project": name,
        "defaults": {"agent": "fake", "max_concurrency": 2},
        "agents": {"fake": fake, **(agents or {})},
        "tasks": [
            {
                "id": tid,
                "title": f"Step {tid[5:]} of the plan",
                "description": f"Do step {tid[5:]}.",
                **({"dependencies": deps} if deps else {}),
                **({"agent": (task_agents or {})[tid]} if tid in (task_agents or {}) else {}),
            }
            for tid, deps in (graph or QUICKSTART_GRAPH).items()
        ],
    }
    path = directory / filename
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def snapshot(db: Path, project: str) -> Any:
    """The store's snapshot of ``project``, or None while the database is missing or still
    being created by the first run (a reader may catch it between file and schema)."""
    from coditect_core.errors import StateError
    from coditect_core.store import StateStore

    if not db.exists():
        return None
    try:
        with StateStore.open(db, readonly=True) as store:
            return store.snapshot(project)
    except StateError:
        return None


def coditect_argv() -> list[str]:
    """The installed console script, else ``python -m coditect_core.cli.main``."""
    script = Path(sys.executable).with_name("coditect")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "coditect_core.cli.main"]


def env(**extra: str) -> dict[str, str]:
    """The environment for a child ``coditect``: plain output, no colour, wide lines."""
    out = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    out.update({"COLUMNS": "200", "TERM": "dumb"}, **extra)
    return out


def run_cli(
    *args: str | Path,
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``coditect ARGS`` in a child process (in ``cwd``) and wait for it."""
    return subprocess.run(
        [*coditect_argv(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**(extra_env or {})),
        check=False,
        cwd=cwd,
    )


def run_json(*args: str | Path, timeout: float = 60) -> dict[str, Any]:
    """``coditect ARGS --json`` in a child process, parsed (it must exit 0)."""
    done = run_cli(*args, "--json", timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def deep_graph(tasks: int = 60, levels: int = 19) -> dict[str, list[str]]:
    """A ``tasks``-task graph ``levels`` levels deep (ids ``D01``...): each task needs one of
    the level before it, and every third one also a task three to six levels up (long edges)."""
    sizes = [tasks // levels + (1 if i < tasks % levels else 0) for i in range(levels)]
    graph: dict[str, list[str]] = {}
    rows: list[list[str]] = []
    k = 0
    for level, size in enumerate(sizes):
        row = []
        for i in range(size):
            k += 1
            tid = f"D{k:02d}"
            deps = [rows[level - 1][i % len(rows[level - 1])]] if level else []
            if level >= 3 and k % 3 == 0:
                far = rows[max(level - 3 - k % 4, 0)]
                if far[i % len(far)] not in deps:
                    deps.append(far[i % len(far)])
            graph[tid] = deps
            row.append(tid)
        rows.append(row)
    return graph
