"""What the command sandbox costs: ``run_command`` of a short command sandboxed (new network and
mount namespaces, loopback up, mounts made read-only: :mod:`coditect_core.tools.sandbox`) against
the same call without the sandbox, interleaved in one process; and the one-off detection.

    python bench/bench_run_command.py --reps 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

from coditect_core.tools.commands import CommandToolset
from coditect_core.tools.sandbox import detect_sandbox


async def _timed(tools: CommandToolset, argv: list[str]) -> float:
    started = time.perf_counter()
    result = await tools.call("run_command", {"argv": argv})
    elapsed = time.perf_counter() - started
    if result.is_error or not result.content.startswith("exit code: 0"):
        raise SystemExit(f"the command failed: {result.content}")
    return elapsed


async def main(reps: int) -> None:
    started = time.perf_counter()
    sandbox = await detect_sandbox(refresh=True)
    detect_s = time.perf_counter() - started
    argv = [sys.executable, "-c", "pass"]
    with tempfile.TemporaryDirectory() as root:
        boxed = CommandToolset(root, [argv[:2]])
        plain = CommandToolset(root, [argv[:2]], sandbox=False)
        await _timed(boxed, argv)  # warm up both paths
        await _timed(plain, argv)
        boxed_s: list[float] = []
        plain_s: list[float] = []
        for i in range(reps):  # interleaved, alternating order
            pair = [(boxed, boxed_s), (plain, plain_s)]
            for tools, out in pair if i % 2 == 0 else reversed(pair):
                out.append(await _timed(tools, argv))
    per_rep = [b - p for b, p in zip(boxed_s, plain_s, strict=True)]
    common = {
        "bench": "run_command",
        "reps": reps,
        "sandbox": "network+files" if sandbox.files else "network" if sandbox.available else "none",
        "load": os.getloadavg()[0],
    }
    figures = {
        "sandbox_overhead_ms": (round(statistics.median(per_rep) * 1000, 1), "< 150 ms"),
        "ratio": (round(statistics.median(plain_s) / statistics.median(boxed_s), 3), "info"),
        "plain_ms": (round(statistics.median(plain_s) * 1000, 1), "info"),
        "sandboxed_ms": (round(statistics.median(boxed_s) * 1000, 1), "info"),
        "detect_s": (round(detect_s, 3), "< 0.5 s, once per process"),
    }
    for figure, (value, target) in figures.items():
        print(json.dumps({**common, "figure": figure, "value": value, "target": target}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    asyncio.run(main(parser.parse_args().reps))
