"""CommandLlm and run_process against real small programs: stdin/stdout, exit codes, timeouts
that kill the whole process group, cancellation, a missing command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_helpers import process_gone, wait_gone

from coditect_core.errors import LlmConfigurationError, LlmResponseError, LlmTimeoutError
from coditect_core.llm_abstractions.command import CommandLlm, render_prompt, run_process
from coditect_core.llm_abstractions.registry import create_llm

Program = Callable[[str, str], list[str]]

SHOUT = """
import sys
data = sys.stdin.read()
print(data.upper())
print("argv:", " ".join(sys.argv[1:]))
"""

FAIL = """
import sys
sys.stdin.read()
sys.stderr.write("noise\\n" * 50 + "the real reason: quota exhausted\\n")
sys.exit(4)
"""

# Starts a child that sleeps, records both pids, then hangs itself.
HANG_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{child.pid}\\n")
    f.flush()
time.sleep(120)
"""


async def test_prompt_goes_to_stdin_and_stdout_comes_back(write_program: Program) -> None:
    argv = write_program("shout.py", SHOUT)
    llm = CommandLlm([*argv, "--model", "{model}"], model="m1")
    text = await llm.generate_content_async("hello there")
    assert text.splitlines() == ["HELLO THERE", "argv: --model m1"]
    response = await llm.generate_async(
        [
            {"role": "system", "content": "be loud"},
            {"role": "user", "content": "hi"},
        ]
    )
    assert "## INSTRUCTIONS\n\nBE LOUD" in response.text
    assert response.model == "m1"
    assert response.attempts == 1


def test_registry_builds_it_and_string_commands_are_split() -> None:
    llm = create_llm("command", command="claude -p --verbose")
    assert isinstance(llm, CommandLlm)
    assert llm.command == ["claude", "-p", "--verbose"]
    assert llm.model == "claude"
    with pytest.raises(LlmConfigurationError, match="needs a command"):
        CommandLlm()


async def test_non_zero_exit_is_an_error_with_the_tail_of_stderr(write_program: Program) -> None:
    llm = CommandLlm(write_program("fail.py", FAIL), stderr_chars=60)
    with pytest.raises(LlmResponseError) as caught:
        await llm.generate_content_async("x")
    message = str(caught.value)
    assert "exited with status 4" in message
    assert message.endswith("the real reason: quota exhausted")
    assert message.count("noise") < 10
    assert caught.value.retryable is False


async def test_missing_command_is_a_configuration_error(tmp_path: Path) -> None:
    llm = CommandLlm([str(tmp_path / "no-such-agent"), "-p"])
    with pytest.raises(LlmConfigurationError, match="not found"):
        await llm.generate_content_async("x")


async def test_timeout_kills_the_process_group_children_included(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    argv = write_program("hang.py", HANG_WITH_CHILD)
    llm = CommandLlm([*argv, str(pidfile)], timeout=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LlmTimeoutError):
        await llm.generate_content_async("x")
    assert loop.time() - started < 10
    child = int(pidfile.read_text())
    assert wait_gone(child), "the agent's child process outlived the timeout"


async def test_run_process_timeout_and_cancellation_kill_the_group(
    write_program: Program, tmp_path: Path
) -> None:
    argv = write_program("hang.py", HANG_WITH_CHILD)
    with pytest.raises(LlmTimeoutError, match="killed with its process group"):
        await run_process([*argv, str(tmp_path / "a")], stdin=b"", timeout=1.0)
    assert wait_gone(int((tmp_path / "a").read_text()))

    pidfile = tmp_path / "b"
    call = asyncio.create_task(run_process([*argv, str(pidfile)], stdin=b""))
    for _ in range(200):  # bounded wait for the child to be started
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    child = int(pidfile.read_text())
    assert not process_gone(child)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert wait_gone(child)


async def test_run_process_reports_a_signal_death(write_program: Program) -> None:
    argv = write_program("suicide.py", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    done = await run_process(argv)
    assert done.returncode == -15


def test_render_prompt() -> None:
    assert render_prompt([{"role": "user", "content": "just this"}]) == "just this"
    text = render_prompt(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"},
            {"role": "user", "content": "U2"},
        ]
    )
    assert text == (
        "## Instructions\n\nS\n\n## Request\n\nU\n\n"
        "## Your previous answer\n\nA\n\n## Request\n\nU2"
    )
