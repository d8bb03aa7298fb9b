"""Benchmark: how ``coditect`` commands grow with the size of a project (issue 19, part 5).

For each size (default 1,000, 10,000 and 100,000 tasks) a project is generated on the fake
provider (``agents: {fake: {type: custom, provider: fake}}``; chains of ten tasks, each task
needing the one before it) and run once (``coditect run -j 64 --json``: the state that
``report`` reads, timed as ``setup_run_s``). Then ``agents``, ``report``, ``next`` and
``run --dry-run`` run as the installed console script, output to /dev/null, best of ``--reps``
(one run at the largest size): wall time, CPU time (user + system) and peak memory (the
child's maximum resident set). Last, per command, the exponent of a least-squares fit of
log(time) against log(size) over all sizes (``exponent``; ``exponent_cpu`` on CPU time) and
between the two largest (``exponent_last``): 1.0 is linear, 2.0 quadratic. A command's fixed
cost (start-up, imports: measured on a 10-task project, ``baseline_s``) flattens the raw fit at
small sizes; ``exponent_net`` fits the time less that cost, the growth of the work itself.

Every child has a deadline (``--timeout`` seconds, 600 by default): a command past it is killed
and reported with ``"timed_out": true`` (and no exponent), so that the 100,000-task case stays
bounded even where a command is quadratic. Prints one JSON line per figure, and the machine's
load average with each (a shared machine: read the CPU times when it is busy).

    python bench/bench_commands_scale.py --sizes 1000 10000 100000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

COMMANDS = {
    "agents": ["agents"],
    "report": ["report"],
    "next": ["next"],
    "run_dry_run": ["run", "--dry-run"],
}
TARGET_EXPONENT = 1.15


def coditect() -> list[str]:
    script = Path(sys.executable).with_name("coditect")
    return [str(script)] if script.exists() else [sys.executable, "-m", "coditect_core.cli.main"]


def write_project(directory: Path, tasks: int) -> Path:
    spec = {
        "project": f"scale-{tasks}",
        "defaults": {"agent": "fake", "max_concurrency": 64},
        "agents": {"fake": {"type": "custom", "provider": "fake"}},
        "tasks": [
            {
                "id": f"T{i}",
                "title": f"Task {i}",
                "description": f"Do step {i} of the plan.",
                **({"dependencies": [f"T{i - 1}"]} if i % 10 else {}),
            }
            for i in range(tasks)
        ],
    }
    path = directory / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def measure(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``argv`` (stdout and stderr to /dev/null): wall and CPU seconds, peak RSS in MB,
    exit status; killed past ``timeout`` seconds."""
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    deadline = started + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)  # (reaped here, not by Popen)
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KB on Linux
        "exit_code": proc.returncode,
        "timed_out": timed_out,
    }


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) against log(size)."""
    points = [(n, v) for n, v in points if v and v > 0]
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 3)


def emit(line: dict[str, Any]) -> None:
    load = os.getloadavg()
    print(json.dumps({"bench": "commands_scale", **line, "load": [round(x, 2) for x in load]}))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--reps", type=int, default=3, help="best of N (1 at the largest size)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per command")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    results: dict[str, list[tuple[int, dict[str, Any]]]] = {name: [] for name in COMMANDS}
    baseline: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        (tmp / "base").mkdir()
        tiny = write_project(tmp / "base", 10)
        measure([*coditect(), "run", str(tiny), "--json"], args.timeout)
        for name, command in COMMANDS.items():
            runs = [measure([*coditect(), *command, str(tiny)], args.timeout) for _ in range(5)]
            baseline[name] = min(r["wall_s"] for r in runs)
            emit({"figure": "baseline_s", "command": name, "tasks": 10, "value": baseline[name]})
        for n in sizes:
            (tmp / str(n)).mkdir()
            project = write_project(tmp / str(n), n)
            setup = measure([*coditect(), "run", str(project), "-j", "64", "--json"], args.timeout)
            emit({"figure": "setup_run_s", "tasks": n, "value": setup["wall_s"], **setup})
            reps = 1 if n == sizes[-1] else args.reps
            for name, command in COMMANDS.items():
                runs = [
                    measure([*coditect(), *command, str(project)], args.timeout)
                    for _ in range(reps)
                ]
                best = min(runs, key=lambda r: r["wall_s"])
                best["cpu_s"] = min(r["cpu_s"] for r in runs)
                results[name].append((n, best))
                emit(
                    {
                        "figure": f"{name}_s",
                        "tasks": n,
                        "value": None if best["timed_out"] else best["wall_s"],
                        "reps": reps,
                        **best,
                    }
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, points in results.items():
        ok = [(n, r) for n, r in points if not r["timed_out"] and r["exit_code"] == 0]
        fit = slope([(n, r["wall_s"]) for n, r in ok]) if len(ok) == len(points) else None
        last = slope([(n, r["wall_s"]) for n, r in ok[-2:]]) if len(ok) == len(points) else None
        fit_cpu = slope([(n, r["cpu_s"]) for n, r in ok]) if len(ok) == len(points) else None
        net = (
            slope([(n, r["wall_s"] - baseline[name]) for n, r in ok])
            if len(ok) == len(points)
            else None
        )
        emit(
            {
                "figure": "exponent",
                "command": name,
                "value": fit,
                "target": f"<= {TARGET_EXPONENT}",
                "ok": all(f is not None and f <= TARGET_EXPONENT for f in (fit, net)),
                "exponent_net": net,
                "exponent_last": last,
                "exponent_cpu": fit_cpu,
                "sizes": [n for n, _ in points],
                "peak_rss_mb_largest": points[-1][1]["peak_rss_mb"] if points else None,
            }
        )


if __name__ == "__main__":
    main()
