"""The project file's ``mcp_servers:``: declared once, given to agents by name, resolved for the
agents a run uses (``${VAR}`` expanded, secrets registered, an unset variable named by field),
and turned into McpToolsets for the agent loop. Broken declarations are cases in
tests/support/broken_projects/ (mcp_*.yaml, unknown_mcp_server.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError, ToolsetError
from coditect_core.project import load_project, parse_project_file
from coditect_core.secrets import mask
from coditect_core.tools.mcp import DEFAULT_CALL_TIMEOUT, McpServerSpec, McpToolset

PROJECT = """\
mcp_servers:
  files:
    command: "${MCP_PYTHON:-python3}"
    args: [server.py, --root, "${HOME_DIR:-/srv}"]
    env: {GITHUB_TOKEN: "${GH_TEST_TOKEN}", MODE: fast}
    cwd: tools
    tools: [read, search]
    prefix: fs_
    startup_timeout: 5
  web:
    url: "https://mcp.example.invalid/mcp"
    headers: {Authorization: "Bearer ${WEB_TEST_KEY}"}
    call_timeout: 9.5
  unused:
    url: "${NEVER_SET_URL}"
agents:
  coder: {type: local, mcp_servers: [files, web]}
  plain: {type: local}
tasks:
  - {id: T1, title: Code, agent: coder}
  - {id: T2, title: Plain, agent: plain}
"""

ENV = {"GH_TEST_TOKEN": "ghp-test-token-0123456789", "WEB_TEST_KEY": "web-key-abcdef123456"}


def test_servers_of_the_used_agents_are_resolved(tmp_path: Path) -> None:
    path = tmp_path / "project.yaml"
    path.write_text(PROJECT)
    project = load_project(path, environ=ENV)
    assert sorted(project.mcp_servers) == ["files", "web"]  # 'unused' is nobody's
    files = project.mcp_servers["files"]
    assert files == McpServerSpec(
        "files",
        command="python3",
        args=("server.py", "--root", "/srv"),
        env={"GITHUB_TOKEN": "ghp-test-token-0123456789", "MODE": "fast"},
        cwd=str(tmp_path.resolve() / "tools"),
        tools=("read", "search"),
        prefix="fs_",
        startup_timeout=5,
    )
    web = project.mcp_servers["web"]
    assert web.url == "https://mcp.example.invalid/mcp"
    assert web.headers == {"Authorization": "Bearer web-key-abcdef123456"}
    assert (web.call_timeout, files.call_timeout) == (9.5, DEFAULT_CALL_TIMEOUT)
    assert web.tool_prefix == "web__"
    assert project.agent_settings["coder"].mcp_servers == ("files", "web")
    assert project.agent_settings["plain"].mcp_servers == ()

    toolsets = project.mcp_toolsets("coder")
    assert [type(t) for t in toolsets] == [McpToolset, McpToolset]
    assert [t.spec for t in toolsets] == [files, web]
    assert project.mcp_toolsets("plain") == []

    # the expanded header and the token are secrets from now on
    text = "Bearer web-key-abcdef123456 and ghp-test-token-0123456789"
    assert "web-key" not in mask(text)
    assert "ghp-test" not in mask(text)


def test_an_unset_variable_of_a_used_server_names_the_field() -> None:
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(PROJECT, "p.yaml").resolve(environ={"GH_TEST_TOKEN": "x" * 12})
    error = caught.value
    assert (error.line, error.field) == (12, "mcp_servers.web.headers.Authorization")
    assert "environment variable WEB_TEST_KEY is not set" in str(error)
    assert "MCP server 'web' of agent 'coder' runs task 'T1'" in str(error)
    assert "x" * 12 not in str(error)


def test_a_run_without_the_agent_needs_no_variable_of_its_servers() -> None:
    project = parse_project_file(PROJECT, "p.yaml").resolve(only=["T2"], environ={})
    assert project.mcp_servers == {}


def test_a_fallback_agent_gets_its_servers_unless_their_variables_are_unset() -> None:
    text = PROJECT.replace(
        "  coder: {type: local, mcp_servers: [files, web]}",
        "  coder: {type: local, mcp_servers: [files], fallbacks: [helper]}\n"
        "  helper: {type: local, mcp_servers: [web, unused]}",
    )
    project = parse_project_file(text, "p.yaml").resolve(only=["T1"], environ=ENV)
    assert sorted(project.mcp_servers) == ["files", "web"]  # unused: NEVER_SET_URL is unset
    assert [t.spec.name for t in project.mcp_toolsets("coder")] == ["files"]
    with pytest.raises(ToolsetError, match="MCP server 'unused' of agent 'helper' is not avail"):
        project.mcp_toolsets("helper")


def test_one_server_on_demand() -> None:
    project_file = parse_project_file(PROJECT, "p.yaml")
    with pytest.raises(ProjectFileError, match="NEVER_SET_URL is not set"):
        project_file.mcp_server("unused", environ={})
    spec = project_file.mcp_server("unused", environ={"NEVER_SET_URL": "http://127.0.0.1:1/mcp"})
    assert spec.url == "http://127.0.0.1:1/mcp"


@pytest.mark.parametrize(
    ("server", "field", "message"),
    [
        ("{command: srv, url: 'http://h/mcp'}", "mcp_servers.s", "give either 'command'"),
        ("{}", "mcp_servers.s", "give either 'command'"),
        ("{url: 'http://h/mcp', args: [x]}", "mcp_servers.s.args", "only used with 'command'"),
        ("{url: 'ftp://h'}", "mcp_servers.s.url", "url must start with http:// or https://"),
        ("{command: srv, prefix: 'a.b'}", "mcp_servers.s.prefix", "prefix 'a.b' may use only"),
        ("{command: srv, tools: [a, a]}", "mcp_servers.s.tools[1]", "tool 'a' is listed twice"),
        ("{command: srv, startup_timeout: 0}", "mcp_servers.s.startup_timeout", "greater than 0"),
        ("{command: srv, args: ['${BAD']}", "mcp_servers.s.args[0]", "malformed variable"),
    ],
)
def test_bad_server_declarations(server: str, field: str, message: str) -> None:
    text = (
        f"mcp_servers:\n  s: {server}\n"
        "agents:\n  a: {type: local}\ntasks:\n  - {id: T, title: t}\n"
    )
    with pytest.raises(ProjectFileError) as caught:
        parse_project_file(text, "p.yaml")
    assert caught.value.field == field
    assert message in str(caught.value)


def test_an_agent_listing_a_server_twice() -> None:
    text = PROJECT.replace("mcp_servers: [files, web]", "mcp_servers: [web, web]")
    with pytest.raises(ProjectFileError, match="MCP server 'web' is listed twice") as caught:
        parse_project_file(text, "p.yaml")
    assert caught.value.field == "agents.coder.mcp_servers[1]"
