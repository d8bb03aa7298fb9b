"""Benchmark: building and rendering the report of a 500-task project (HTML, Markdown, JSON).

A 500-task project (the test scenario of tests/support/report_scenario.py: three agents, failures,
retries, a fallback, blocked tasks) is run twice on zero-latency scripted agents and recorded
into a state store; then the report is built from the store and rendered, ``--reps`` times each.
Prints one JSON line per figure: seconds per build and per render (best and median), and the
HTML size.

    python bench/bench_report.py --reps 5 --tasks 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from report_scenario import record_scenario

from coditect_core.reporting import (
    read_report,
    render_html,
    render_json,
    render_markdown,
)
from coditect_core.store import StateStore


def _time(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recorded = asyncio.run(record_scenario(Path(tmp), args.tasks, latency=0.0, concurrency=16))
        with StateStore.open(recorded.state, readonly=True) as store:
            build_times = _time(lambda: read_report(store, "report-demo"), args.reps)
            data = read_report(store, "report-demo")
    html = render_html(data)
    figures = {
        "build_s": (build_times, "< 0.5"),
        "render_html_s": (_time(lambda: render_html(data), args.reps), "< 0.5"),
        "render_md_s": (_time(lambda: render_markdown(data), args.reps), "< 0.2"),
        "render_json_s": (_time(lambda: render_json(data), args.reps), "< 0.2"),
    }
    common = {"bench": "report", "tasks": len(data.tasks), "attempts": data.totals.attempts}
    for figure, (times, target) in figures.items():
        line = {**common, "figure": figure, "value": round(min(times), 4), "target": target,
                "median": round(statistics.median(times), 4), "reps": args.reps}  # fmt: skip
        print(json.dumps(line))
    size = len(html.encode())
    print(json.dumps({**common, "figure": "html_bytes", "value": size, "target": "< 3000000"}))


if __name__ == "__main__":
    main()
