"""The built-in tools from a project file (tools/toolset.py's groups, issue 14 + 15): an agent's
``tools: [read_file, list_files]`` gives the model exactly those tools, confined to the
project's workspace; ``run_command`` runs only with ``allow_commands`` (checked with the field
named), which reaches the command toolset through the agent's config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect_core.app.session import build_executor
from coditect_core.errors import ProjectFileError
from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall
from coditect_core.orchestration import ExecutionStatus
from coditect_core.project import parse_project_file, read_project_file


def _script(messages: list[Message]) -> str | list[ToolCall]:
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return [ToolCall("c1", "read_file", {"path": "notes/hello.txt"})]
    return "the file says: " + results[-1]["content"]


class ReadsAFile(FakeLlm):
    provider = "reads-a-file"

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["default"] = _script
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _provider() -> Iterator[None]:
    register_llm("reads-a-file", ReadsAFile, replace=True)
    yield
    unregister_llm("reads-a-file")


PROJECT = """\
project: wiring
agents:
  bot:
    type: custom
    provider: reads-a-file
    tools: [read_file, list_files]
tasks:
  - {id: T1, title: read the notes}
"""


async def test_builtin_read_tools_from_the_project_file_read_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "hello.txt").write_text("hello from the workspace\n")
    path = tmp_path / "coditect.yaml"
    path.write_text(PROJECT)
    project = read_project_file(path).resolve(environ={})
    executor = build_executor(project)
    result = await executor.execute(project.task("T1"))
    assert result.status is ExecutionStatus.SUCCESS, result.error
    assert "hello from the workspace" in (result.output or "")
    fake = executor.get_llm("bot")
    first = fake.calls[0]  # type: ignore[attr-defined]
    assert sorted(tool.name for tool in first.params.tools) == ["list_files", "read_file"]
    (call,) = result.metadata["agent_loop"]["calls"]
    assert (call["name"], call["is_error"]) == ("read_file", False)


BASE = """\
agents:
  coder:
    type: openai-gpt
    api_key: sk-test
{extra}
tasks: [{{id: T1, title: a}}]
"""


def agent_with(extra: str) -> str:
    return BASE.format(extra="\n".join(f"    {line}" for line in extra.splitlines()))


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("tools: [run_command]", "agents.coder.allow_commands", "needs allow_commands"),
        (
            "tools: [read_file]\nallow_commands: [pytest]",
            "agents.coder.allow_commands",
            "only used with the tool run_command",
        ),
        (
            "tools: [run_command]\nallow_commands: ['python \"-c']",
            "agents.coder.allow_commands[0]",
            "cannot be split into words",
        ),
        ("tools: [run_command]\nallow_commands: [[]]", "agents.coder.allow_commands[0]", ""),
    ],
)
def test_allow_commands_is_checked_naming_the_field(extra: str, field: str, message: str) -> None:
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(agent_with(extra), "p.yaml")
    assert field in str(caught.value)
    assert message in str(caught.value)


def test_allow_commands_and_require_sandbox_reach_the_agent() -> None:
    text = agent_with(
        "tools: [run_command]\nallow_commands: ['python -m pytest', [ruff, check]]\n"
        "require_sandbox: true"
    )
    coder = parse_project_file(text).resolve(environ={}).agents.get("coder")
    assert coder.allow_commands == ["python -m pytest", ["ruff", "check"]]
    assert coder.require_sandbox is True
    plain = parse_project_file(agent_with("")).resolve(environ={}).agents.get("coder")
    assert plain.require_sandbox is False
