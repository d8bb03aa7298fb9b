"""The project file's agent loop fields: an agent's ``tools:`` (checked without importing,
errors naming the field), its bounds with their defaults, and the project's ``workspace:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError
from coditect_core.project import parse_project_file, read_project_file

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


def test_tools_and_bounds_reach_the_agent_with_defaults() -> None:
    project = parse_project_file(agent_with("tools: [mypkg.tools:lookup]")).resolve(environ={})
    coder = project.agents.get("coder")
    assert coder.tools == ["mypkg.tools:lookup"]  # not imported at load
    assert (coder.max_turns, coder.max_tool_calls) == (20, 100)
    assert (coder.tool_timeout, coder.max_parallel_tools) == (60.0, 4)
    text = agent_with(
        "tools: [a.b:c]\nmax_turns: 5\nmax_tool_calls: 9\ntool_timeout: 2.5\nmax_parallel_tools: 1"
    )
    coder = parse_project_file(text).resolve(environ={}).agents.get("coder")
    assert (coder.max_turns, coder.max_tool_calls, coder.tool_timeout) == (5, 9, 2.5)
    assert coder.max_parallel_tools == 1


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("tools: [rm_everything]", "agents.coder.tools[0]", "unknown tool 'rm_everything'"),
        ("tools: ['pkg.mod:']", "agents.coder.tools[0]", "is not an import path"),
        ("tools: [a.b:c, a.b:c]", "agents.coder.tools[1]", "listed twice"),
        ("max_turns: 0", "agents.coder.max_turns", "greater than 0"),
        ("tool_timeout: -1", "agents.coder.tool_timeout", "greater than 0"),
        (
            "interface: hybrid\nreviewer: coder2\ntools: [a.b:c]",
            "agents.coder.tools",
            "only used by interface api",
        ),
    ],
)
def test_a_bad_tools_field_is_refused_naming_it(extra: str, field: str, message: str) -> None:
    text = agent_with(extra)
    if "coder2" in extra:
        text = text.replace("tasks:", "  coder2: {type: openai-gpt, api_key: x}\ntasks:")
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text, "p.yaml")
    assert field in str(caught.value)
    assert message in str(caught.value)


def test_workspace_defaults_to_the_project_folder_and_is_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "coditect.yaml"
    path.write_text(agent_with(""))
    assert read_project_file(path).resolve(environ={}).workspace == tmp_path.resolve()
    path.write_text("workspace: src/app\n" + agent_with(""))
    assert read_project_file(path).resolve(environ={}).workspace == tmp_path.resolve() / "src/app"
