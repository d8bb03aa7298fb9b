"""``coditect run`` on flooding command agents, as a real process: the run ends a few seconds
after the agents' timeout, in bounded memory, with each task failed on a timeout error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import coditect_argv, env

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or shutil.which("yes") is None,
        reason="floods with yes; reads /proc",
    ),
]

# Runs a command and reports its exit, its output and the peak memory (ru_maxrss) of the
# processes it waited for: coditect, and the agents coditect reaped.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=90)
print(json.dumps({
    "code": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-3000:],
    "elapsed_s": time.monotonic() - started,
    "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def _measure(*args: str | Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *coditect_argv(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=100,
        env=env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_flooding_agents_end_at_their_timeout_in_bounded_memory(tmp_path: Path) -> None:
    spec = {
        "project": "floods",
        "defaults": {"max_concurrency": 2},
        "agents": {
            "out": {"type": "custom", "interface": "cli", "command": ["yes"], "timeout": 2},
            "err": {
                "type": "custom",
                "interface": "cli",
                "command": ["sh", "-c", "yes error >&2"],
                "timeout": 2,
            },
        },
        "tasks": [
            {"id": "FLOOD-OUT", "title": "Flood stdout", "agent": "out"},
            {"id": "FLOOD-ERR", "title": "Flood stderr", "agent": "err"},
        ],
    }
    project = tmp_path / "floods.yaml"
    project.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    seen = _measure("run", project, "--json")
    assert seen["code"] == 1, seen["stderr"]
    tasks = {row["task_id"]: row for row in json.loads(seen["stdout"])["tasks"]}
    for task_id in ("FLOOD-OUT", "FLOOD-ERR"):
        assert tasks[task_id]["status"] == "failed"
        assert "did not finish within 2s" in (tasks[task_id]["error"] or ""), tasks[task_id]
    # 2 s of timeout and the start of the command; before the fix the run never ended
    assert seen["elapsed_s"] < 30, seen["elapsed_s"]
    # coditect's whole peak, imports included: 46 MB here (43 MB on a run of fake agents);
    # before the fix, gigabytes
    assert seen["peak_mb"] < 150, seen["peak_mb"]
