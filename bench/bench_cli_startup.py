"""Cold-start time of ``coditect --help`` against ``python -c pass``, in fresh processes.

Each repetition runs, interleaved so that all see the same machine load: ``python -c pass``,
``coditect --help`` (the installed console script, or ``python -m coditect_core.cli.main`` when
there is none) and ``coditect run --help``. Figures, one JSON line each:

* ``own_s``: median wall time of ``coditect --help`` minus the median of ``python -c pass``: what
  the command itself costs to start and print its help. Target: under 0.25 s (the ``llm`` CLI
  takes about 0.5 s here).
* ``own_cpu_s``: the same difference in CPU time (user + system, from ``wait4``), which a busy
  machine inflates much less than wall time.
* ``run_help_own_s``: the same as ``own_s`` for ``coditect run --help``.
* ``provider_sdks_loaded``: how many provider SDK modules (openai, anthropic, google.genai,
  llama_cpp, ray) ``coditect --help`` and ``coditect --version`` import (must be 0).

The children cache bytecode in a temporary ``PYTHONPYCACHEPREFIX`` (warmed before timing), as an
installed package would.

    python bench/bench_cli_startup.py [--reps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.25
SDKS = ("openai", "anthropic", "google.genai", "llama_cpp", "ray")
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_LOADED = (
    "import sys, runpy\n"
    "sys.argv = ['coditect', sys.argv[1]]\n"
    "try:\n"
    "    runpy.run_module('coditect_core.cli.main', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write(' '.join(sorted(sys.modules)))\n"
)


def _coditect() -> list[str]:
    """The command under test: the console script beside this interpreter, if installed."""
    script = Path(sys.executable).with_name("coditect")
    if script.exists():
        return [str(script)]
    found = shutil.which("coditect")
    return [found] if found else [sys.executable, "-m", "coditect_core.cli.main"]


def _process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds from spawning ``argv`` to its exit, and the CPU seconds it used."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=_ENV)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv} failed with exit code {code}")
    return wall, usage.ru_utime + usage.ru_stime


def _sdks_loaded(flag: str) -> list[str]:
    """The provider SDKs ``coditect FLAG`` (``--help``, ``--version``) imports."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, flag],
        capture_output=True,
        text=True,
        env=_ENV,
        check=False,
    )
    loaded = set(out.stderr.split())
    return [m for m in SDKS if m in loaded]


def measure(reps: int) -> list[dict[str, object]]:
    cmd = _coditect()
    cases = {
        "pass": [sys.executable, "-c", "pass"],
        "help": [*cmd, "--help"],
        "run_help": [*cmd, "run", "--help"],
    }
    for _ in range(2):  # write the .pyc files and warm the file cache before timing
        for argv in cases.values():
            _process(argv)
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(reps):
        order = list(cases.items())
        if i % 2:
            order.reverse()
        for kind, argv in order:
            w, c = _process(argv)
            wall[kind].append(w)
            cpu[kind].append(c)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    q = statistics.quantiles(wall["help"], n=4)
    load = os.getloadavg()[0]
    common = {"reps": reps, "command": " ".join(cases["help"]), "load_1min": round(load, 2)}
    sdks = sorted({m for flag in ("--help", "--version") for m in _sdks_loaded(flag)})
    return [
        {
            "bench": "cli_startup",
            "figure": "own_s",
            "value": round(med["help"] - med["pass"], 4),
            "target": f"< {TARGET_S}",
            "help_median_s": round(med["help"], 4),
            "help_iqr_s": [round(q[0], 4), round(q[2], 4)],
            "python_pass_median_s": round(med["pass"], 4),
            **common,
        },
        {
            "bench": "cli_startup",
            "figure": "own_cpu_s",
            "value": round(med_cpu["help"] - med_cpu["pass"], 4),
            "target": f"< {TARGET_S}",
            **common,
        },
        {
            "bench": "cli_startup",
            "figure": "run_help_own_s",
            "value": round(med["run_help"] - med["pass"], 4),
            "target": f"< {TARGET_S}",
            **common,
            "command": " ".join(cases["run_help"]),
        },
        {
            "bench": "cli_startup",
            "figure": "provider_sdks_loaded",
            "value": len(sdks),
            "target": "== 0",
            "modules": sdks,
            "commands": ["coditect --help", "coditect --version"],
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40, help="fresh processes per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        _ENV["PYTHONPYCACHEPREFIX"] = cache
        for figure in measure(args.reps):
            print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
