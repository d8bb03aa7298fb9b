"""Approvals (issue 15) through real ``coditect`` subprocesses: an agent whose ``approve:`` lists
``run_command`` hands its task to a person at such a call (exit 3, the call not run, ``coditect
show`` displaying it); ``coditect task approve`` and the next run run the command (the file it
writes exists) and the loop goes on; ``coditect task reject --note`` and the next run send the
model an error result with the note (its next request contains it), the command never run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError
from coditect_core.project import parse_project_file

DRIVER = """
import json
import os
import sys
from pathlib import Path

from coditect_core.cli.main import main
from coditect_core.llm_abstractions.registry import register_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall

LOG = Path(os.environ["APPROVAL_LOG"])
WRITE = "open('made.txt', 'w').write('made')"


def script(messages):
    tools = [m["content"] for m in messages if m["role"] == "tool"]
    with LOG.open("a") as log:
        log.write(json.dumps(tools) + "\\n")
    if not tools:
        return [ToolCall("c1", "run_command", {"argv": [sys.executable, "-c", WRITE]})]
    return "final: " + tools[-1].replace(chr(10), " ")


class Scripted(FakeLlm):
    provider = "scripted-approval"

    def __init__(self, *args, **kwargs):
        kwargs["default"] = script
        super().__init__(*args, **kwargs)


register_llm("scripted-approval", Scripted)
main()
"""

PROJECT = f"""\
project: approvals
agents:
  bot:
    type: custom
    provider: scripted-approval
    tools: [read_file, run_command]
    allow_commands: [[{sys.executable}, -c]]
    approve: [run_command]
tasks:
  - {{id: T1, title: write a file}}
"""


class Cli:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "driver.py").write_text(DRIVER)
        (folder / "coditect.yaml").write_text(PROJECT)
        self.log = folder / "requests.log"
        self.env = {**os.environ, "APPROVAL_LOG": str(self.log), "COLUMNS": "400"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(self.folder / "driver.py"), *args],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=180,
            check=False,
        )  # fmt: skip

    def requests(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def waits(cli: Cli) -> None:
    """The first run: the call waits for a person; nothing ran."""
    run = cli("run", "coditect.yaml")
    assert run.returncode == 3, run.stdout + run.stderr
    assert not (cli.folder / "made.txt").exists()
    said = " ".join(run.stdout.split())
    assert "T1 waits for a person to approve run_command(" in said
    assert "coditect task approve coditect.yaml T1, or coditect task reject" in said
    shown = cli("show", "coditect.yaml", "T1")
    assert shown.returncode == 0, shown.stderr
    assert "awaiting_human" in shown.stdout
    assert "run_command(" in shown.stdout
    assert "made.txt" in shown.stdout  # the call's arguments
    assert "waiting for a person's approval" in shown.stdout
    again = cli("run", "coditect.yaml")  # no decision yet: it waits again, still not run
    assert again.returncode == 3, again.stdout + again.stderr
    assert not (cli.folder / "made.txt").exists()


def test_an_approved_call_runs_on_the_next_run(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    waits(cli)
    approved = cli("task", "approve", "coditect.yaml", "T1")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "approved run_command(" in approved.stdout
    run = cli("run", "coditect.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "made.txt").read_text() == "made"
    last = cli.requests()[-1]
    assert len(last) == 1
    assert "exit code: 0" in last[0]
    shown = cli("show", "coditect.yaml", "T1").stdout
    assert "completed" in shown
    assert "approved by a person" in shown
    assert "approved by hand: run_command(" in shown  # the task's history
    report = json.loads(cli("report", "coditect.yaml", "--json").stdout)
    (row,) = report["tasks"]
    assert row["figures"]["tool_calls"] == 1  # the call ran once; its approval is no run
    assert cli("task", "approve", "coditect.yaml", "T1").returncode != 0  # nothing waits now


def test_a_rejected_call_is_an_error_result_the_model_sees(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    waits(cli)
    rejected = cli("task", "reject", "coditect.yaml", "T1", "--note", "no writes please")
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    run = cli("run", "coditect.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / "made.txt").exists()
    assert cli.requests()[-1] == ["rejected by a person: no writes please"]
    shown = cli("show", "coditect.yaml", "T1").stdout
    assert "final: rejected by a person: no writes please" in shown


def test_approve_names_only_the_agents_tools() -> None:
    text = PROJECT.replace("approve: [run_command]", "approve: [delete_file]")
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text, "p.yaml")
    assert "agents.bot.approve[0]" in str(caught.value)
    assert "'delete_file' is not one of the agent's tools" in str(caught.value)


def test_approve_may_name_an_mcp_servers_tool_by_its_prefix() -> None:
    text = PROJECT.replace("approve: [run_command]", "approve: [m_add]\n    mcp_servers: [demo]")
    text = text.replace("agents:", "mcp_servers:\n  demo: {command: srv, prefix: m_}\nagents:")
    parse_project_file(text, "p.yaml")  # accepted
    with pytest.raises(ProjectFileError, match=r"agents\.bot\.approve\[0\]"):
        parse_project_file(text.replace("[m_add]", "[demo__add]"), "p.yaml")
