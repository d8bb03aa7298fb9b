"""Hostile command and script agents through TaskExecutor.execute: floods end at the timeout
in bounded memory, processes that hide from SIGTERM and from the process group end too,
replies are capped (``options: {max_output_bytes: ...}`` raises the cap), and a command sees
only the variables its configuration names, their secret values masked in errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from orch_helpers import wait_gone

from coditect_core.llm_abstractions.process import DEFAULT_MAX_OUTPUT_BYTES, PASSED_VARIABLES
from coditect_core.llm_abstractions.process_tree import MARKER_VARIABLE
from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionStatus,
    TaskExecutor,
)
from coditect_core.project import parse_project_file

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

Program = Callable[[str, str], list[str]]
TASK = AgentTask("T1", "Answer", "Say something.", agent="ext")
CANARIES = {
    "OPENAI_API_KEY": "sk-canary-openai-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-canary-0123456789",
    "GEMINI_API_KEY": "canary-gemini-0123456789",
    "GOOGLE_API_KEY": "canary-google-0123456789",
    "GITHUB_TOKEN": "ghp_canary0123456789",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-0123456789",
}

# Runs one flood agent through TaskExecutor.execute in a fresh process and reports its time
# and its peak memory (ru_maxrss) before and after the call.
MEASURE = """
import asyncio, json, resource, sys, time
from coditect_core.orchestration import AgentConfig, AgentRegistry, AgentTask, TaskExecutor

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

async def main(command):
    agent = AgentConfig("flood", "custom", interface="cli", command=command, timeout=2.0)
    async with TaskExecutor(AgentRegistry([agent])) as executor:
        baseline = peak_mb()
        started = time.monotonic()
        result = await executor.execute(AgentTask("T1", "Flood", "", agent="flood"))
        print(json.dumps({
            "status": result.status.value, "error": result.error,
            "elapsed_s": time.monotonic() - started, "baseline_mb": baseline, "peak_mb": peak_mb(),
        }))

asyncio.run(main(json.loads(sys.argv[1])))
"""

FLOODS = {
    "stdout": ["yes", "y" * 100],
    "stderr": ["sh", "-c", "yes eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee >&2"],
}

# Ignores SIGTERM; starts a child that does too and a grandchild that leaves the process
# group and the session (setsid) and sleeps; writes their pids; hangs.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sleeper = "import os, time; os.setsid(); time.sleep(120)"
grandchild = subprocess.Popen([sys.executable, "-c", sleeper])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {grandchild.pid}")
time.sleep(120)
"""

BIG_REPLY = """
import sys
sys.stdin.read()
sys.stdout.write("BEGIN" + "x" * 3_000_000 + "END")
"""

BIG_SCRIPT_REPLY = """
import json, sys
json.load(sys.stdin)
print(json.dumps({"status": "success", "output": "BEGIN" + "x" * 3_000_000 + "END"}))
"""

LOGS_THEN_RESULT = """
import json, sys
json.load(sys.stdin)
for i in range(20_000):
    print(f"progress line {i}: still working")
print(json.dumps({"status": "success", "output": "the result"}))
"""

PRINT_ENV = """
import json, os, sys
sys.stdin.read()
print(json.dumps(dict(os.environ)))
"""

ECHO_SECRETS_AND_FAIL = """
import os, sys
sys.stdin.read()
sys.stderr.write(f"auth failed with {os.environ.get('ANTHROPIC_API_KEY')} ")
sys.stderr.write(f"and {os.environ.get('SERVICE_TOKEN')}\\n")
sys.exit(1)
"""

SCRIPT_ECHOES_SECRET = """
import json, os, sys
json.load(sys.stdin)
print(json.dumps({"status": "failed", "error": "bad token " + os.environ["SERVICE_TOKEN"]}))
"""


def executor_for(agent: AgentConfig) -> TaskExecutor:
    return TaskExecutor(AgentRegistry([agent]))


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_flood_ends_at_the_timeout_in_bounded_memory(stream: str) -> None:
    command = FLOODS[stream]
    if shutil.which(command[0]) is None or shutil.which("yes") is None:
        pytest.skip("needs yes and sh")
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(command)],
        capture_output=True,
        text=True,
        timeout=60,  # before the fix the call never returned
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen: dict[str, Any] = json.loads(done.stdout)
    assert seen["status"] == "failed"
    assert "did not finish within 2s" in seen["error"]
    assert seen["elapsed_s"] < 8, seen
    # before the fix: 0.9 GB after 15 s, and growing
    assert seen["peak_mb"] - seen["baseline_mb"] < 100, seen


async def test_a_child_ignoring_sigterm_and_a_setsid_grandchild_end_at_the_timeout(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    agent = AgentConfig(
        "ext",
        "custom",
        interface="cli",
        command=[*write_program("stubborn.py", STUBBORN), str(pidfile)],
        timeout=2.0,
    )
    started = time.monotonic()
    async with executor_for(agent) as executor:
        result = await executor.execute(TASK)
    assert time.monotonic() - started < 8
    assert result.status is ExecutionStatus.FAILED
    assert "did not finish within 2s" in (result.error or "")
    child, grandchild = map(int, pidfile.read_text().split())
    assert wait_gone(child), "the child that ignores SIGTERM outlived the timeout"
    assert wait_gone(grandchild), "the setsid grandchild outlived the timeout"


async def test_a_reply_over_the_cap_is_cut_with_a_marker_and_the_option_raises_it(
    write_program: Program,
) -> None:
    argv = write_program("big.py", BIG_REPLY)
    total = len("BEGIN") + 3_000_000 + len("END")
    agent = AgentConfig("ext", "custom", interface="cli", command=argv)
    async with executor_for(agent) as executor:
        result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    output = result.output or ""
    dropped = total - DEFAULT_MAX_OUTPUT_BYTES
    assert f"[... truncated: {dropped} bytes ...]" in output
    assert output.startswith("BEGINxxx")
    assert output.endswith("xxxEND")
    assert len(output) < DEFAULT_MAX_OUTPUT_BYTES + 100
    assert result.finish_reason == "length"

    raised = AgentConfig(
        "ext",
        "custom",
        interface="cli",
        command=argv,
        provider_options={"max_output_bytes": 4_000_000},
    )
    async with executor_for(raised) as executor:
        result = await executor.execute(TASK)
    assert result.output == "BEGIN" + "x" * 3_000_000 + "END"
    assert result.finish_reason == "stop"


async def test_a_script_reply_over_the_cap_is_cut_and_the_option_raises_it(
    write_program: Program,
) -> None:
    argv = write_program("big_script.py", BIG_SCRIPT_REPLY)
    agent = AgentConfig("ext", "custom", interface="script", command=argv)
    async with executor_for(agent) as executor:
        result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    output = result.output or ""
    assert f"[... truncated: {3_000_008 - DEFAULT_MAX_OUTPUT_BYTES} bytes ...]" in output
    assert output.startswith("BEGINxxx")
    assert output.endswith("xxxEND")
    assert result.finish_reason == "length"

    raised = AgentConfig(
        "ext",
        "custom",
        interface="script",
        command=argv,
        provider_options={"max_output_bytes": 4_000_000},
    )
    async with executor_for(raised) as executor:
        result = await executor.execute(TASK)
    assert result.output == "BEGIN" + "x" * 3_000_000 + "END"


async def test_a_script_may_log_more_than_the_cap_before_its_result(
    write_program: Program,
) -> None:
    agent = AgentConfig(
        "ext",
        "custom",
        interface="script",
        command=write_program("chatty.py", LOGS_THEN_RESULT),
        provider_options={"max_output_bytes": 1000},
    )
    async with executor_for(agent) as executor:
        result = await executor.execute(TASK)
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "the result"


def _project(command: list[str], interface: str = "cli", **options: Any) -> str:
    agent = {"type": "custom", "interface": interface, "command": command, "options": options}
    return json.dumps(  # JSON is YAML: the ${VAR} references stay as written
        {
            "project": "hostile",
            "agents": {"ext": agent},
            "tasks": [{"id": "T1", "title": "Answer", "agent": "ext"}],
        }
    )


async def test_a_command_sees_only_the_minimal_environment_and_what_it_names(
    write_program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    text = _project(
        write_program("env.py", PRINT_ENV),
        env={"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}", "CLAUDE_MODEL": "sonnet"},
    )
    project = parse_project_file(text).resolve()
    async with TaskExecutor(project.agents) as executor:
        result = await executor.execute(project.tasks[0])
    assert result.status is ExecutionStatus.SUCCESS, result.error
    seen = json.loads(result.output or "")
    named = {"ANTHROPIC_API_KEY", "CLAUDE_MODEL"}
    assert set(seen) <= {*PASSED_VARIABLES, *named, MARKER_VARIABLE}, sorted(seen)
    assert seen["ANTHROPIC_API_KEY"] == CANARIES["ANTHROPIC_API_KEY"]
    assert seen["CLAUDE_MODEL"] == "sonnet"
    for name, value in CANARIES.items():
        if name != "ANTHROPIC_API_KEY":
            assert value not in (result.output or ""), name


async def test_secrets_a_command_was_given_are_masked_in_its_errors(
    write_program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARIES["ANTHROPIC_API_KEY"])
    literal = "literal-service-token-4242"  # written in the file, in no variable of ours
    text = _project(
        write_program("leak.py", ECHO_SECRETS_AND_FAIL),
        env={"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}", "SERVICE_TOKEN": literal},
    )
    project = parse_project_file(text).resolve()
    async with TaskExecutor(project.agents) as executor:
        result = await executor.execute(project.tasks[0])
    assert result.status is ExecutionStatus.FAILED
    error = result.error or ""
    assert "auth failed with *** and ***" in error, error
    assert CANARIES["ANTHROPIC_API_KEY"] not in error
    assert literal not in error

    script = parse_project_file(
        _project(
            write_program("leak_script.py", SCRIPT_ECHOES_SECRET),
            interface="script",
            env={"SERVICE_TOKEN": "another-literal-token-777"},
        )
    ).resolve()
    async with TaskExecutor(script.agents) as executor:
        result = await executor.execute(script.tasks[0])
    assert result.status is ExecutionStatus.FAILED
    assert "script reported failure: bad token ***" in (result.error or ""), result.error


def test_the_project_file_example_reads() -> None:
    """The form the documentation shows for giving ``claude -p`` its key."""
    text = textwrap.dedent(
        """
        project: p
        agents:
          claude-code:
            type: custom
            interface: cli
            command: [claude, -p, --output-format, text]
            options: {env: {ANTHROPIC_API_KEY: "${ANTHROPIC_API_KEY}"}, max_output_bytes: 4000000}
        tasks: [{id: T1, title: t, agent: claude-code}]
        """
    )
    project = parse_project_file(text).resolve(environ={"ANTHROPIC_API_KEY": "sk-ant-x-123456"})
    agent = project.agents.get("claude-code")
    llm = TaskExecutor(project.agents).get_llm(agent)
    assert llm.env == {"ANTHROPIC_API_KEY": "sk-ant-x-123456"}  # type: ignore[attr-defined]
    assert llm.max_output_bytes == 4_000_000  # type: ignore[attr-defined]


async def test_the_task_timeout_ends_a_flood_and_its_processes_too(
    write_program: Program, tmp_path: Path
) -> None:
    """No agent timeout: the task's own timeout (its deadline) ends the command."""
    flood = """
import os, subprocess, sys
sleeper = "import os, time; os.setsid(); time.sleep(120)"
grandchild = subprocess.Popen([sys.executable, "-c", sleeper])
with open(sys.argv[1], "w") as f:
    f.write(str(grandchild.pid))
while True:
    os.write(1, b"y" * 65536)
"""
    pidfile = tmp_path / "pid"
    agent = AgentConfig(
        "ext", "custom", interface="cli", command=[*write_program("f.py", flood), str(pidfile)]
    )
    started = time.monotonic()
    async with TaskExecutor(AgentRegistry([agent]), task_timeouts={"T1": 2.0}) as executor:
        result = await executor.execute(TASK)
    assert time.monotonic() - started < 8
    assert result.status is ExecutionStatus.FAILED
    assert "did not finish within" in (result.error or ""), result.error
    assert wait_gone(int(pidfile.read_text()))
