"""How much of coditect-core one task passes through: static size of the package and the calls
one run of a one-task project makes.

Static figures, from the package folder (``--src``, default ``src/coditect_core``):

* ``py_modules``: number of ``.py`` files.
* ``total_lines``: their lines, counted as ``wc -l`` does (newline characters).
* ``import_cycles``: lines starting with ``cycle:`` printed by
  ``../shared/tools/import_cycles.py`` (relative to the repository), run on the folder.

Dynamic figures, from one run of a one-task project (``fake`` provider, concurrency 1):

* ``calls_coditect``: new Python calls whose code lives in the package folder.
* ``modules_coditect``: distinct package files those calls belong to (listed in ``modules``).
* ``calls_all``: new Python calls of any code (stdlib, asyncio, dependencies, the package).

The package is imported from ``--src`` (its parent folder is put first on ``sys.path``; the
script stops if the session module then comes from elsewhere). A warm-up run on a fresh project
folder comes first, so imports and first-use caches are done; the measured run uses another
fresh folder (fresh state, so the task really runs, which the run's summary must confirm).
Opening and closing the session are outside the measurement: only ``await session.run()`` is
measured, by a ``sys.setprofile`` function installed inside the coroutine right before that
await and removed right after it.

What counts, and what does not:

* ``sys.setprofile`` is per thread, so only the event-loop (main) thread is seen: everything the
  loop runs while ``session.run()`` is pending, including other asyncio tasks and callbacks.
  Work in other threads (the state store's writer thread, ``asyncio.to_thread``)
  is not counted.
* A "call" is a ``call`` profile event for a frame entered for the first time. Python reports
  ``call`` again on every resumption of a generator or coroutine (after ``yield`` / ``await``,
  or on ``throw()``); those are not counted, so each coroutine counts once however often it is
  suspended. On Python 3.11 a first entry is the frame standing at its ``RESUME 0``
  instruction (a resumption stands at ``RESUME 1..3`` or, after ``throw()``, elsewhere);
  ``f_lasti <= 0`` would not do: a generator or coroutine first enters after its
  ``RETURN_GENERATOR`` (``f_lasti`` 4), a function with cells after ``MAKE_CELL``. The
  script checks this rule on a small probe before measuring and stops if it does not hold.
* C functions (``c_call`` events) are not counted.

    python bench/trace_task_path.py [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dis
import importlib
import inspect
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, TypeVar

BENCH = "trace_task_path"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO / "src" / "coditect_core"
CYCLES_TOOL = REPO.parent / "shared" / "tools" / "import_cycles.py"
TOP_N = 15

PROJECT_YAML = """\
project: trace-one
defaults: {agent: fake, max_concurrency: 1}
agents:
  fake: {type: custom, provider: fake}
tasks:
  - {id: T1, title: One task, description: Do one thing.}
"""

_RESUME = dis.opmap["RESUME"]
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
T = TypeVar("T")


# -- static figures ---------------------------------------------------------------------------


def static_figures(src: Path) -> list[dict[str, Any]]:
    """Module count, line count and import cycles of the package folder ``src``."""
    files = sorted(src.rglob("*.py"))
    lines = sum(f.read_bytes().count(b"\n") for f in files)
    figures: list[dict[str, Any]] = [
        {"figure": "py_modules", "value": len(files)},
        {"figure": "total_lines", "value": lines},
    ]
    if not CYCLES_TOOL.is_file():
        figures.append(
            {"figure": "import_cycles", "value": None, "error": f"{CYCLES_TOOL} not found"}
        )
        return figures
    done = subprocess.run(
        [sys.executable, str(CYCLES_TOOL), str(src)], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # 1 means "there are cycles"
        raise SystemExit(f"{CYCLES_TOOL} failed ({done.returncode}):\n{done.stderr}")
    cycles = [
        line.removeprefix("cycle:").strip()
        for line in done.stdout.splitlines()
        if line.startswith("cycle:")
    ]
    figures.append(
        {
            "figure": "import_cycles",
            "value": len(cycles),
            "cycles": cycles,
            "tool": str(CYCLES_TOOL),
        }
    )
    return figures


# -- counting new calls -----------------------------------------------------------------------


class CallCounter:
    """A ``sys.setprofile`` function counting first entries of Python frames, per code object."""

    def __init__(self) -> None:
        self.counts: collections.Counter[int] = collections.Counter()  # id(code) -> calls
        self.codes: dict[int, CodeType] = {}  # keeps the counted code objects (and ids) alive
        self._bytecode: dict[int, bytes] = {}  # id(code) -> co_code, for suspendable code

    def _is_new(self, frame: FrameType) -> bool:
        code = frame.f_code
        if not code.co_flags & _SUSPENDABLE:
            return True  # a plain function: every 'call' event is a new call
        lasti = frame.f_lasti
        if lasti < 0:
            return True
        key = id(code)
        raw = self._bytecode.get(key)
        if raw is None:
            raw = self._bytecode[key] = code.co_code
            self.codes[key] = code
        return raw[lasti] == _RESUME and raw[lasti + 1] == 0

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and self._is_new(frame):
            code = frame.f_code
            key = id(code)
            self.counts[key] += 1
            if key not in self.codes:
                self.codes[key] = code

    async def measure(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` with this counter installed on the current thread only."""
        sys.setprofile(self)
        try:
            return await awaitable
        finally:
            sys.setprofile(None)


def _probe_generator() -> Generator[int, None, None]:
    yield 1
    yield 2


async def _probe_coroutine() -> int:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return 1


async def _probe_cancelled() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        return


def _probe_with_cell() -> int:
    x = 1

    def inner() -> int:
        return x

    return inner()


async def _probe() -> None:
    list(_probe_generator())
    await _probe_coroutine()
    await _probe_coroutine()
    _probe_with_cell()
    task = asyncio.create_task(_probe_cancelled())
    await asyncio.sleep(0)
    task.cancel()  # resumed by throw(): must not count again
    await asyncio.gather(task)


def self_check() -> None:
    """Check the first-entry rule on known code; stop if this Python reports calls otherwise."""
    counter = CallCounter()

    async def main() -> None:
        await counter.measure(_probe())

    asyncio.run(main())
    got = {counter.codes[k].co_qualname: n for k, n in counter.counts.items()}
    want = {
        "_probe": 1,
        "_probe_generator": 1,
        "_probe_coroutine": 2,
        "_probe_with_cell": 1,
        "_probe_with_cell.<locals>.inner": 1,
        "_probe_cancelled": 1,
    }
    wrong = {name: got.get(name, 0) for name, n in want.items() if got.get(name, 0) != n}
    if wrong:
        raise SystemExit(f"call counting does not work on this Python: {wrong}, want {want}")


# -- the measured run -------------------------------------------------------------------------


def import_session_class(src: Path) -> Any:
    """``ProjectSession`` from the package in ``src`` (new layout first, then the old one)."""
    sys.path.insert(0, str(src.parent))
    for name in ("coditect_core.app.session", "coditect_core.session"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name not in (name, name.rpartition(".")[0]):
                raise  # the module is there but something it imports is not
            continue
        loaded = Path(module.__file__ or "").resolve()
        if not loaded.is_relative_to(src):
            raise SystemExit(f"{name} was imported from {loaded}, not from {src}")
        return module.ProjectSession
    raise SystemExit(f"no ProjectSession in {src}")


def run_once(session_class: Any, folder: Path, counter: CallCounter | None) -> dict[str, Any]:
    """Run the one-task project in ``folder`` (fresh), measured by ``counter`` if given."""
    path = folder / "project.yaml"
    path.write_text(PROJECT_YAML)
    session = session_class.open(path)

    async def main() -> Any:
        try:
            run = session.run(max_concurrency=1)
            return await (counter.measure(run) if counter else run)
        finally:
            await session.aclose()

    outcome = asyncio.run(main())
    summary = outcome.summary
    if not summary.ok or summary.counts.get("completed") != 1 or list(outcome.plan.run) != ["T1"]:
        raise SystemExit(f"the task did not run to completion: {outcome.to_dict()}")
    return dict(summary.counts)


def dynamic_figures(src: Path) -> list[dict[str, Any]]:
    """Calls made by one run of the one-task project, on the event-loop thread."""
    session_class = import_session_class(src)
    with tempfile.TemporaryDirectory(prefix="trace_warmup_") as warm:
        run_once(session_class, Path(warm), None)
    counter = CallCounter()
    with tempfile.TemporaryDirectory(prefix="trace_measured_") as measured:
        counts = run_once(session_class, Path(measured), counter)

    per_module: collections.Counter[str] = collections.Counter()
    per_function: collections.Counter[str] = collections.Counter()
    where: dict[str, Path | None] = {}  # code file -> its path in the package, or None
    for key, n in counter.counts.items():
        code = counter.codes[key]
        if code.co_filename not in where:
            file = Path(code.co_filename).resolve()
            where[code.co_filename] = file.relative_to(src) if file.is_relative_to(src) else None
        rel = where[code.co_filename]
        if rel is None:
            continue
        module = ".".join((src.name, *rel.with_suffix("").parts)).removesuffix(".__init__")
        per_module[rel.as_posix()] += n
        per_function[f"{module}:{code.co_qualname}"] += n

    top = sorted(per_function.items(), key=lambda item: (-item[1], item[0]))[:TOP_N]  # ties: A-Z
    scope = {"thread": "event-loop (main) thread only", "run_counts": counts}
    return [
        {
            "figure": "calls_coditect",
            "value": sum(per_module.values()),
            "top_functions": [{"function": name, "calls": n} for name, n in top],
            **scope,
        },
        {
            "figure": "modules_coditect",
            "value": len(per_module),
            "modules": {name: per_module[name] for name in sorted(per_module)},
            **scope,
        },
        {"figure": "calls_all", "value": sum(counter.counts.values()), **scope},
    ]


# -- output -----------------------------------------------------------------------------------


def summarize(figures: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    """The figures, for a person."""
    by_name = {f["figure"]: f for f in figures}
    for f in figures:
        say(f"{f['figure']:>18}: {f['value']}")
    for cycle in by_name["import_cycles"].get("cycles", []):
        say(f"{'cycle':>18}: {cycle}")
    say("modules touched (calls), event-loop thread only:")
    for name, n in by_name["modules_coditect"]["modules"].items():
        say(f"  {n:7d}  {name}")
    say(f"top {TOP_N} coditect_core functions by calls:")
    for row in by_name["calls_coditect"]["top_functions"]:
        say(f"  {row['calls']:7d}  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--src", type=Path, default=DEFAULT_SRC, help="the coditect_core package folder"
    )
    args = parser.parse_args()
    src: Path = args.src.resolve()
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"{src} is not a package folder")
    self_check()
    common = {"src": str(src), "python": platform.python_version()}
    figures = static_figures(src) + dynamic_figures(src)
    for figure in figures:
        print(json.dumps({"bench": BENCH, **figure, **common}), flush=True)
    summarize(figures, lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    main()
