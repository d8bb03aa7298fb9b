"""Cold import time of coditect-core, measured in fresh interpreters.

Each repetition starts new ``python`` processes; ``python -c "import MODULE"``, ``python -c pass``
and a reference import (``openai``, ~0.45 s on an idle machine here) are interleaved in the same
loop, so all see the same machine load. Figures, one JSON line each:

* ``own_import_s``: median wall time of the import process minus that of ``python -c pass``.
* ``own_import_cpu_s``: the same difference in CPU time (user + system, from ``wait4``), which a
  busy machine inflates much less than wall time.
* ``in_process_import_s``: the import timed inside each fresh process (no start-up noise).
* ``ratio_to_reference``: in-process import time over the reference's, both medians: a figure
  that load scales out of (0.15 s / 0.45 s = 0.33 is the target's equivalent).

The children cache bytecode in a temporary ``PYTHONPYCACHEPREFIX`` (warmed before timing), as an
installed package would: with ``PYTHONDONTWRITEBYTECODE`` set, every import would compile source.

    python bench/bench_import.py [--reps 40] [--module M ...] [--reference openai]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 0.15
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_TIMED = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _process(code: str) -> tuple[float, float]:
    """Wall seconds from spawning ``python -c code`` to its exit, and the CPU seconds it used."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, env=_ENV)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"python -c {code!r} failed with exit code {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def _in_process(module: str) -> float:
    """Seconds the import itself takes inside a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _TIMED.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
        env=_ENV,
    )
    return float(out.stdout.strip())


def _iqr(values: list[float]) -> list[float]:
    q = statistics.quantiles(values, n=4)
    return [round(q[0], 4), round(q[2], 4)]


def measure(module: str, reps: int, reference: str | None) -> list[dict[str, object]]:
    """Run the interleaved measurements for ``module`` and return its figures."""
    for _ in range(2):  # write the .pyc files and warm the file cache before timing
        _process(f"import {module}")
        if reference:
            _process(f"import {reference}")
    wall: dict[str, list[float]] = {"import": [], "pass": []}
    cpu: dict[str, list[float]] = {"import": [], "pass": []}
    inner: list[float] = []
    ref: list[float] = []
    for _ in range(reps):
        for kind, code in (("pass", "pass"), ("import", f"import {module}")):
            w, c = _process(code)
            wall[kind].append(w)
            cpu[kind].append(c)
        inner.append(_in_process(module))
        if reference:
            ref.append(_in_process(reference))

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    own = med(wall["import"]) - med(wall["pass"])
    own_cpu = med(cpu["import"]) - med(cpu["pass"])
    common = {"module": module, "reps": reps, "load_avg_1min": round(os.getloadavg()[0], 2)}
    target = f"< {TARGET_S}"
    figures: list[dict[str, object]] = [
        {
            "figure": "own_import_s",
            "value": round(own, 4),
            "target": target,
            "median_import_s": med(wall["import"]),
            "median_python_pass_s": med(wall["pass"]),
            "pairwise_diff_iqr_s": _iqr([i - p for i, p in zip(*wall.values(), strict=True)]),
            "ok": own < TARGET_S,
        },
        {
            "figure": "own_import_cpu_s",
            "value": round(own_cpu, 4),
            "target": target,
            "median_import_cpu_s": med(cpu["import"]),
            "median_python_pass_cpu_s": med(cpu["pass"]),
            "ok": own_cpu < TARGET_S,
        },
        {
            "figure": "in_process_import_s",
            "value": med(inner),
            "target": target,
            "iqr_s": _iqr(inner),
            "min_s": round(min(inner), 4),
            "ok": med(inner) < TARGET_S,
        },
    ]
    if reference:
        ratio = statistics.median(inner) / statistics.median(ref)
        figures.append(
            {
                "figure": "ratio_to_reference",
                "value": round(ratio, 3),
                "target": "< 0.33",
                "reference": reference,
                "reference_median_s": med(ref),
                "ok": ratio < 0.33,
            }
        )
    return [{"bench": "import_time", **f, **common} for f in figures]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument(
        "--module",
        action="append",
        help="module to import (repeatable); default: coditect_core.llm_abstractions",
    )
    parser.add_argument(
        "--reference", default="openai", help="module to compare with ('' for none)"
    )
    args = parser.parse_args()
    _ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="bench_import_pyc_")
    for module in args.module or ["coditect_core.llm_abstractions"]:
        for figure in measure(module, args.reps, args.reference or None):
            print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
