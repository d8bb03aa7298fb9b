"""Durable agent loops: a real ``coditect run`` subprocess is SIGKILLed while a tool call of its
agent loop runs; the next run goes on from the recorded turns. Completed model turns are not
requested again, and a tool call whose result was recorded is not run again (the model's
requests and the tool's runs are counted in a log, as a stub server would count them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from coditect_core.store import StateStore

DRIVER = """
import json
import os
from pathlib import Path

from coditect_core.cli.main import main
from coditect_core.llm_abstractions.registry import register_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall

LOG = Path(os.environ["LOOP_LOG"])


def script(messages):
    turn = sum(1 for m in messages if m["role"] == "assistant") + 1
    with LOG.open("a") as log:
        log.write(f"request {turn}\\n")
    if turn <= 3:
        return [ToolCall(f"c{turn}", "step", {"n": turn})]
    return "done after 3 steps"


class Scripted(FakeLlm):
    provider = "scripted-tools"

    def __init__(self, *args, **kwargs):
        kwargs["default"] = script
        super().__init__(*args, **kwargs)


register_llm("scripted-tools", Scripted)
main()
"""

TOOLS = '''
import json
import os
import time
from pathlib import Path


def step(n: int) -> str:
    """Take step n."""
    log = Path(os.environ["LOOP_LOG"])
    with log.open("a") as out:
        out.write(f"tool start {n}\\n")
    if n == 2 and Path(os.environ["LOOP_HANG"]).exists():
        time.sleep(120)
    with log.open("a") as out:
        out.write(f"tool done {n}\\n")
    return f"step {n} ok"
'''

PROJECT = """\
project: loopkill
agents:
  bot:
    type: custom
    provider: scripted-tools
    tools: ["steps_mod:step"]
    tool_timeout: 300
tasks:
  - {id: T1, title: three steps}
"""


def test_a_loop_killed_mid_tool_resumes_from_its_recorded_turns(tmp_path: Path) -> None:
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "steps_mod.py").write_text(TOOLS)
    (tmp_path / "coditect.yaml").write_text(PROJECT)
    log, hang = tmp_path / "calls.log", tmp_path / "hang"
    hang.touch()
    env = {**os.environ, "LOOP_LOG": str(log), "LOOP_HANG": str(hang)}
    command = [sys.executable, str(tmp_path / "driver.py"), "run", "coditect.yaml"]
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while "tool start 2" not in (log.read_text() if log.exists() else ""):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the loop never reached its second tool call"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert log.read_text().splitlines() == [
        "request 1",
        "tool start 1",
        "tool done 1",
        "request 2",
        "tool start 2",
    ]
    hang.unlink()
    second = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr
    lines = log.read_text().splitlines()
    # the second run: turn 2's call (no recorded result) runs again, then turns 3 and 4;
    # turns 1 and 2 are not requested again, and step 1 (its result recorded) does not run again
    assert lines[5:] == [
        "tool start 2",
        "tool done 2",
        "request 3",
        "tool start 3",
        "tool done 3",
        "request 4",
    ]
    assert [line for line in lines if line.startswith("request")] == [
        "request 1",
        "request 2",
        "request 3",
        "request 4",
    ]
    with StateStore.open(tmp_path / ".coditect" / "state.db", readonly=True) as store:
        (task,) = store.snapshot("loopkill").tasks
        assert (task.status, task.output) == ("completed", "done after 3 steps")
        turns = [a.turn for a in store.attempts("loopkill", task_id="T1") if a.turn]
        assert turns == [1, 2, 3]
        calls = store.tool_calls("loopkill", task_id="T1")
        assert [(c.call_id, c.result) for c in calls] == [
            ("c1", "step 1 ok"),
            ("c2", "step 2 ok"),
            ("c3", "step 3 ok"),
        ]

    # seeing it: show prints the conversation turn by turn; report and --json carry it
    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(tmp_path / "driver.py"), *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = cli("show", "coditect.yaml", "T1")
    for n in (1, 2, 3):
        assert f"turn {n}" in shown
        assert f'step({{"n": {n}}})' in shown
        assert f"-> step {n} ok" in shown
    as_json = json.loads(cli("show", "coditect.yaml", "T1", "--json"))
    turns = [a for a in as_json["attempts"] if a.get("turn")]
    assert [t["tool_calls"][0]["result"] for t in turns] == [f"step {n} ok" for n in (1, 2, 3)]
    markdown = cli("report", "coditect.yaml", "--format", "md")
    assert "## Agent loops" in markdown
    assert "| `T1` | bot | 3 | 3 | 0 | step |" in markdown
    report = json.loads(cli("report", "coditect.yaml", "--json"))
    (task_row,) = report["tasks"]
    assert (task_row["figures"]["tool_turns"], task_row["figures"]["tool_calls"]) == (3, 3)
    # turn 1, turn 2, the attempt in flight at the kill, turn 3 (first of its run), the answer
    assert [a["kind"] for a in task_row["attempts"]] == ["first", "turn", "turn", "first", "turn"]
    assert [a.get("turn") for a in task_row["attempts"]] == [1, 2, None, 3, None]
    html = cli("report", "coditect.yaml", "--format", "html")
    assert 'id="loops"' in html
    assert "step 3 ok" in html
