"""The cli and script interfaces of TaskExecutor against real small programs the tests write."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_helpers import wait_gone

from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ExecutionStatus,
    TaskExecutor,
)
from coditect_core.orchestration.script_protocol import parse_script_result

Program = Callable[[str, str], list[str]]
KEY = "sk-canary-script-9876543210"

CLI_AGENT = """
import sys
prompt = sys.stdin.read()
title = next(line for line in prompt.splitlines() if line.startswith("# Task "))
print(f"agent {sys.argv[1]} did: {title}")
"""

CLI_FAILS = """
import sys
sys.stdin.read()
print("partial output")
sys.stderr.write("Error: not logged in. Run `agent login` first.\\n")
sys.exit(1)
"""

HANG_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(sys.argv[1], "w") as f:
    f.write(str(child.pid))
time.sleep(120)
"""

# A legacy execute_*.py script: reads the task JSON, answers with the result JSON.
SCRIPT_OK = """
import json, sys
task = json.load(sys.stdin)
with open(sys.argv[1], "w") as f:
    json.dump(task, f)
print("loading model...")  # log lines before the JSON are tolerated
print(json.dumps({
    "status": "success",
    "output": f"did {task['task_id']}: {task['title']} using {task['model']}",
    "model": "legacy-model-1",
    "usage": {"input_tokens": 120, "output_tokens": 30},
}))
"""

SCRIPT_CONFIG_ERROR = """
import json, sys
json.load(sys.stdin)
print(json.dumps({"status": "failed", "error": "GEMINI_API_KEY is not set"}))
sys.exit(2)
"""

SCRIPT_BAD_TASK = """
import sys
sys.stdin.read()
sys.stderr.write("task has no description\\n")
sys.exit(3)
"""

SCRIPT_MALFORMED = """
import sys
sys.stdin.read()
print("{'status': 'success', 'output': 'single quotes are not JSON'")
"""

SCRIPT_REPORTS_FAILURE = """
import json, sys
json.load(sys.stdin)
print(json.dumps({"status": "failed", "error": "model refused", "tokens_used": 7}))
"""


def executor_for(agent: AgentConfig) -> TaskExecutor:
    return TaskExecutor(AgentRegistry([agent]))


TASK = AgentTask(
    "T3",
    "Modify _execute_api",
    "Use the abstraction.",
    agent="ext",
    deliverables=["async _execute_api"],
)


async def test_cli_agent_gets_the_prompt_on_stdin(write_program: Program) -> None:
    agent = AgentConfig(
        "ext",
        "custom",
        interface="cli",
        command=[*write_program("a.py", CLI_AGENT), "{model}"],
        model="m-7",
    )
    executor = executor_for(agent)
    result = await executor.execute(TASK, upstream={"T2": "factory done"})
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "agent m-7 did: # Task T3: Modify _execute_api"
    assert result.model == "m-7"
    assert result.interface == "cli"
    await executor.aclose()


async def test_cli_agent_failure_carries_the_end_of_stderr(write_program: Program) -> None:
    agent = AgentConfig("ext", "custom", interface="cli", command=write_program("f.py", CLI_FAILS))
    result = await executor_for(agent).execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "exited with status 1" in (result.error or "")
    assert "not logged in. Run `agent login` first." in (result.error or "")


async def test_cli_agent_timeout_kills_it_and_its_children(
    write_program: Program, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    agent = AgentConfig(
        "ext",
        "custom",
        interface="cli",
        command=[*write_program("h.py", HANG_WITH_CHILD), str(pidfile)],
        timeout=1.0,
    )
    result = await executor_for(agent).execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "did not finish within 1s; it was killed" in (result.error or "")
    assert wait_gone(int(pidfile.read_text()))


async def test_script_protocol_success(write_program: Program, tmp_path: Path) -> None:
    seen = tmp_path / "payload.json"
    path = Path(write_program("execute_legacy.py", SCRIPT_OK)[1])
    agent = AgentConfig(
        "ext",
        "custom",
        interface="script",
        command=[str(path), str(seen)],  # a .py path runs with this interpreter
        model="gemini-2.5-pro",
        api_key=KEY,
    )
    result = await executor_for(agent).execute(TASK, upstream={"T2": "factory done"})
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert result.output == "did T3: Modify _execute_api using gemini-2.5-pro"
    assert result.model == "legacy-model-1"
    assert result.usage is not None
    assert result.usage.to_dict() == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
    }
    payload_text = seen.read_text()
    assert KEY not in payload_text
    payload = json.loads(payload_text)
    assert payload["task_id"] == "T3"
    assert payload["deliverables"] == ["async _execute_api"]
    assert payload["context"] == [{"task_id": "T2", "title": "T2", "output": "factory done"}]
    assert "# Task T3: Modify _execute_api" in payload["prompt"]
    assert payload["messages"][0]["role"] == "system"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            SCRIPT_CONFIG_ERROR,
            "[script] script configuration error (exit 2): GEMINI_API_KEY is not set",
        ),
        (
            SCRIPT_BAD_TASK,
            "[script] script the script rejected the task (exit 3): task has no description",
        ),
        (SCRIPT_MALFORMED, "[script] the script printed malformed JSON on stdout"),
        (SCRIPT_REPORTS_FAILURE, "[script] script reported failure: model refused"),
    ],
)
async def test_script_protocol_failures(write_program: Program, source: str, expected: str) -> None:
    agent = AgentConfig("ext", "custom", interface="script", command=write_program("s.py", source))
    result = await executor_for(agent).execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert (result.error or "").startswith(expected), result.error


async def test_script_timeout_is_a_failed_result(write_program: Program, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    agent = AgentConfig(
        "ext",
        "custom",
        interface="script",
        command=[*write_program("h.py", HANG_WITH_CHILD), str(pidfile)],
        timeout=1.0,
    )
    result = await executor_for(agent).execute(TASK)
    assert result.status is ExecutionStatus.FAILED
    assert "did not finish within 1s" in (result.error or "")
    assert wait_gone(int(pidfile.read_text()))


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "ok", "error"),
    [
        (0, b'{"status": "ok", "result": "r"}', b"", True, None),
        (0, b'{"output": {"files": ["a.py"]}}', b"", True, None),
        (0, b"", b"boom", False, "the script printed nothing on stdout"),
        (0, b"[1, 2]", b"", False, "must be an object, not list"),
        (0, b'{"status": "weird", "output": "x"}', b"", False, "unknown status 'weird'"),
        (0, b'{"status": "success"}', b"", False, "gave no output"),
        (
            1,
            b'{"status": "failed"}',
            b"Traceback...\nValueError: x",
            False,
            "script execution error (exit 1): Traceback...\nValueError: x",
        ),
        (-9, b"", b"", False, "script was killed by signal SIGKILL"),
        (7, b"not json", b"", False, "script exited with status 7"),
    ],
)
def test_parse_script_result(
    code: int, stdout: bytes, stderr: bytes, ok: bool, error: str | None
) -> None:
    outcome = parse_script_result(code, stdout, stderr)
    assert outcome.ok is ok
    if error is None:
        assert outcome.error is None
    else:
        assert error in (outcome.error or ""), outcome.error


def test_parse_script_result_reads_token_counts_in_every_spelling() -> None:
    top = parse_script_result(
        0, b'{"output": "x", "prompt_tokens": 3, "completion_tokens": 4}', b""
    )
    assert top.usage is not None
    assert top.usage.total_tokens == 7
    total_only = parse_script_result(0, b'{"output": "x", "tokens": {"tokens_used": 9}}', b"")
    assert total_only.usage is not None
    assert total_only.usage.total_tokens == 9
    assert parse_script_result(0, b'{"output": "x"}', b"").usage is None
    assert parse_script_result(0, b'{"output": "x", "tokens_used": true}', b"").usage is None
