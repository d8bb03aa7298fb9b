"""run_process against hostile programs: every process a command starts ends with the call
(SIGTERM ignored, ``setsid``, a double fork, an emptied environment), on timeout, on
cancellation and after a normal exit; output is read into bounded buffers; the command gets a
minimal environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_helpers import process_gone, wait_gone

from coditect_core.errors import LlmConfigurationError, LlmTimeoutError
from coditect_core.llm_abstractions.process import (
    PASSED_VARIABLES,
    OutputBuffer,
    command_environment,
    run_process,
)
from coditect_core.llm_abstractions.process_tree import MARKER_VARIABLE, ProcessTree

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

Program = Callable[[str, str], list[str]]

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"

# Ignores SIGTERM and hides processes every way it can, writes their pids, then hangs.
HOSTILE = f"""
import json, os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
stubborn = [sys.executable, "-c", {STUBBORN!r}]
pids = {{"command": os.getpid()}}
pids["child"] = subprocess.Popen(stubborn).pid  # in the command's process group
pids["setsid"] = subprocess.Popen(stubborn, start_new_session=True).pid  # left group, session
# left them with an emptied environment: found through its parent, which is alive
pids["bare"] = subprocess.Popen(stubborn, start_new_session=True, env={{}}).pid
read, write = os.pipe()
if os.fork() == 0:  # a daemon: double fork, its parent gone, reparented to init
    os.setsid()
    if os.fork() == 0:
        os.write(write, str(os.getpid()).encode())
        os.execv(sys.executable, stubborn)
    os._exit(0)
pids["daemon"] = int(os.read(read, 64))
with open(sys.argv[1], "w") as f:
    json.dump(pids, f)
time.sleep(120)
"""

# Answers and exits 0, leaving a detached daemon and a process that holds its stdout.
LEAVES_PROCESSES = f"""
import json, subprocess, sys
stubborn = [sys.executable, "-c", {STUBBORN!r}]
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
daemon = subprocess.Popen(stubborn, start_new_session=True, **quiet)
holder = subprocess.Popen(stubborn, start_new_session=True)  # inherits our stdout
with open(sys.argv[1], "w") as f:
    json.dump({{"daemon": daemon.pid, "holder": holder.pid}}, f)
print("the answer")
"""

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def _pids(path: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in json.loads(path.read_text()).items()}


async def test_timeout_ends_every_process_the_command_started(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids.json"
    started = time.monotonic()
    with pytest.raises(LlmTimeoutError, match="did not finish within 2s"):
        await run_process([*write_program("hostile.py", HOSTILE), str(pidfile)], timeout=2.0)
    elapsed = time.monotonic() - started
    pids = _pids(pidfile)
    assert set(pids) == {"command", "child", "setsid", "bare", "daemon"}
    left = {name: pid for name, pid in pids.items() if not wait_gone(pid)}
    assert not left, f"outlived the timeout: {left}"
    # 2s, then the 1s SIGTERM grace (every process ignores it), then SIGKILL
    assert elapsed < 8, elapsed


async def test_cancellation_ends_every_process_the_command_started(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids.json"
    call = asyncio.create_task(
        run_process([*write_program("hostile.py", HOSTILE), str(pidfile)], timeout=60)
    )
    for _ in range(400):  # bounded wait for the program to have started everything
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.025)
    pids = _pids(pidfile)
    assert not any(process_gone(pid) for pid in pids.values())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    left = {name: pid for name, pid in pids.items() if not wait_gone(pid)}
    assert not left, f"outlived the cancellation: {left}"


async def test_processes_left_behind_by_a_finished_command_end_with_the_call(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids.json"
    done = await run_process(
        [*write_program("leaves.py", LEAVES_PROCESSES), str(pidfile)], timeout=30
    )
    assert done.returncode == 0
    assert done.stdout == b"the answer\n"
    left = {name: pid for name, pid in _pids(pidfile).items() if not wait_gone(pid)}
    assert not left, f"outlived the command: {left}"
    assert done.duration_s < 10


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_a_flood_is_read_into_bounded_buffers(stream: str) -> None:
    flood = f"import os, sys\nwhile True: os.write(sys.{stream}.fileno(), b'x' * 65536)"
    with pytest.raises(LlmTimeoutError):
        await run_process([sys.executable, "-c", flood], timeout=1.0, max_stdout_bytes=1000)
    # a flood that ends: all of it read, the head and tail kept, the rest counted
    finite = f"import sys\nsys.{stream}.write('<' + 'x' * 3_000_000 + '>')"
    done = await run_process(
        [sys.executable, "-c", finite], max_stdout_bytes=1000, max_stderr_bytes=1000
    )
    kept = getattr(done, stream)
    assert kept == b"<" + b"x" * 499 + b"\n[... truncated: 2999002 bytes ...]\n" + b"x" * 499 + b">"
    assert getattr(done, f"{stream}_dropped") == 2_999_002


def test_output_buffer_keeps_head_and_tail_and_counts_the_rest() -> None:
    buffer = OutputBuffer(10)
    assert buffer.getvalue() == b""
    buffer.write(b"abc")
    assert (buffer.getvalue(), buffer.dropped) == (b"abc", 0)
    buffer.write(b"defghij")
    assert (buffer.getvalue(), buffer.dropped) == (b"abcdefghij", 0)
    for _ in range(1000):
        buffer.write(b"0123456789" * 10)
        assert len(buffer._tail) <= 10  # never more than twice the tail's share
    buffer.write(b"XYZ")
    assert buffer.total == 100_013
    assert buffer.dropped == 100_003
    assert buffer.getvalue() == b"abcde\n[... truncated: 100003 bytes ...]\n89XYZ"


async def test_the_command_gets_only_the_minimal_environment_and_what_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GITHUB_TOKEN"):
        monkeypatch.setenv(name, f"canary-{name.lower()}-0123456789")
    monkeypatch.setenv("UNRELATED_SETTING", "x")
    monkeypatch.setenv("LANG", "C.UTF-8")
    done = await run_process(
        [sys.executable, "-c", PRINT_ENV], env={"ANTHROPIC_API_KEY": "given-on-purpose-123"}
    )
    seen = json.loads(done.stdout)
    assert "canary" not in done.stdout.decode()
    assert set(seen) <= {*PASSED_VARIABLES, "ANTHROPIC_API_KEY", MARKER_VARIABLE}
    assert seen["ANTHROPIC_API_KEY"] == "given-on-purpose-123"
    assert seen["PATH"] == os.environ["PATH"]
    assert seen["LANG"] == "C.UTF-8"
    assert command_environment({}, {}) == {"PATH": os.defpath}


def test_the_marker_keeps_an_enclosing_runs_tokens() -> None:
    assert ProcessTree.environment("b2", {}) == {MARKER_VARIABLE: "b2"}
    assert ProcessTree.environment("b2", {MARKER_VARIABLE: "a1"}) == {MARKER_VARIABLE: "a1 b2"}


async def test_a_command_that_never_reads_its_input_is_fine() -> None:
    done = await run_process(
        [sys.executable, "-c", "print('ignored it')"], stdin=b"x" * 5_000_000, timeout=30
    )
    assert (done.returncode, done.stdout) == (0, b"ignored it\n")
    echo = await run_process(
        [sys.executable, "-c", "import sys; print(len(sys.stdin.buffer.read()))"],
        stdin=b"y" * 5_000_000,
        timeout=30,
    )
    assert echo.stdout == b"5000000\n"


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(LlmConfigurationError, match=r"working directory .* does not exist"):
        await run_process(["true"], cwd=tmp_path / "gone")
