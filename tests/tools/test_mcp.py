"""McpToolset against real MCP servers (tests/support/mcp_server.py, written with the mcp SDK's
own server side) over stdio and streamable HTTP: listing, calls, isError results, the allow-list
and the prefix; and each failure (a command not found, a server that crashes or hangs at start,
a hung call, a server that dies mid-run) a clear ToolsetError naming the server within a bounded
time, with its processes gone."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect_core.errors import ToolsetError
from coditect_core.secrets import MASK
from coditect_core.tools.base import ToolResult
from coditect_core.tools.mcp import McpServerSpec, McpToolset

pytestmark = pytest.mark.timeout(120)

SERVER = str(Path(__file__).parents[1] / "support" / "mcp_server.py")
SECRET = "s3cret-value-for-the-test-9f2c"


def stdio(mode: str = "stdio", **options: object) -> McpServerSpec:
    return McpServerSpec("demo", command=sys.executable, args=(SERVER, mode), **options)  # type: ignore[arg-type]


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` no longer exists (a zombie counts as gone) within ``within``s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


async def test_stdio_server_lists_and_calls_its_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider-key-never-given-to-servers")
    spec = stdio(env={"GREETING": "hello"}, cwd=str(tmp_path), max_result_chars=300)
    async with McpToolset(spec) as toolset:
        tools = {tool.name: tool for tool in toolset.tools()}
        assert "demo__add" in tools
        assert "demo__sleep" in tools
        assert not [name for name in tools if "dotted" in name]  # a name no provider takes
        add = tools["demo__add"]
        assert add.description == "Add two numbers."
        assert add.parameters["type"] == "object"
        assert set(add.parameters["properties"]) == {"a", "b"}

        assert await toolset.call("demo__add", {"a": 2, "b": 40}) == ToolResult("42")
        failed = await toolset.call("demo__fail", {"message": "the disk is full"})
        assert failed.is_error
        assert "the disk is full" in failed.content
        bad = await toolset.call("demo__add", {"a": "x"})
        assert bad.is_error
        assert "a" in bad.content
        unknown = await toolset.call("add", {})
        assert unknown.is_error
        assert "unknown tool 'add'" in unknown.content

        picture = await toolset.call("demo__picture", {})
        assert picture.content.startswith("a red dot:\n[image: image/png")
        big = await toolset.call("demo__big", {"n": 500})
        assert big.truncated
        assert big.content.startswith("y" * 300 + "\n[... truncated: 200 more")

        assert (await toolset.call("demo__env", {"name": "GREETING"})).content == "hello"
        assert (await toolset.call("demo__env", {"name": "OPENAI_API_KEY"})).content == "<unset>"
        assert (await toolset.call("demo__env", {"name": "PATH"})).content != "<unset>"
        assert (await toolset.call("demo__cwd", {})).content == str(tmp_path)

        both = await asyncio.gather(
            asyncio.create_task(toolset.call("demo__add", {"a": 1, "b": 1})),
            asyncio.create_task(toolset.call("demo__echo", {"text": "in parallel"})),
        )
        assert [r.content for r in both] == ["2", "in parallel"]


async def test_allow_list_and_prefix() -> None:
    async with McpToolset(stdio(tools=("add", "echo"), prefix="m_")) as toolset:
        assert sorted(t.name for t in toolset.tools()) == ["m_add", "m_echo"]
        assert (await toolset.call("m_echo", {"text": "hi"})).content == "hi"
        refused = await toolset.call("m_pid", {})  # the server has it; the allow-list not
        assert refused.is_error
        assert "unknown tool" in refused.content

    async with McpToolset(stdio(prefix="")) as toolset:
        assert "add" in {t.name for t in toolset.tools()}


async def test_an_allowed_tool_whose_prefixed_name_is_too_long() -> None:
    spec = McpServerSpec("s" * 60, command=sys.executable, args=(SERVER, "stdio"), tools=("echo",))
    with pytest.raises(ToolsetError) as caught:
        await McpToolset(spec).open()
    assert f"MCP server '{'s' * 60}' tool 'echo' cannot be offered: tool name" in str(caught.value)
    assert "is not valid: use 1 to 64 letters" in str(caught.value)


async def test_a_tool_not_on_the_server_is_named_at_open() -> None:
    started = time.monotonic()
    toolset = McpToolset(stdio(tools=("add", "deploy")))
    with pytest.raises(ToolsetError) as caught:
        await toolset.open()
    message = str(caught.value)
    assert caught.value.toolset == "demo"
    assert "'demo'" in message
    assert "'deploy'" in message
    assert "'add'" not in message.split("offers")[0]
    assert "it offers: add, big, child_pid, cwd, dotted.name, echo" in message
    assert not message.startswith("MCP server 'demo' did not start")
    assert time.monotonic() - started < 60
    assert not toolset.is_open
    await toolset.aclose()  # safe after a failed open


async def test_aclose_stops_the_server_process() -> None:
    toolset = McpToolset(stdio())
    await toolset.open()
    pid = int((await toolset.call("demo__pid", {})).content)
    assert not gone(pid, within=0.1)
    await toolset.aclose()
    assert gone(pid)
    await toolset.aclose()  # twice is fine
    with pytest.raises(ToolsetError, match="'demo' is not open"):
        await toolset.call("demo__pid", {})


async def test_aclose_kills_what_the_server_left_in_its_process_group() -> None:
    toolset = McpToolset(stdio("spawn"))
    await toolset.open()
    pid = int((await toolset.call("demo__pid", {})).content)
    child = int((await toolset.call("demo__child_pid", {})).content)
    assert child > 0
    assert not gone(child, within=0.1)
    await toolset.aclose()
    assert gone(pid)
    assert gone(child)


async def test_open_and_close_from_different_tasks() -> None:
    toolset = McpToolset(stdio(tools=("pid",)))
    first = asyncio.create_task(toolset.open())
    await asyncio.sleep(0)  # the first one is starting the server
    await toolset.open()  # waits for it (one server)
    assert [t.name for t in toolset.tools()] == ["demo__pid"]
    await first
    pid = int((await toolset.call("demo__pid", {})).content)
    await asyncio.create_task(toolset.aclose())
    assert gone(pid)
    assert not toolset.is_open


async def test_command_not_found() -> None:
    spec = McpServerSpec("ghost", command="no-such-mcp-server-xyz")
    with pytest.raises(ToolsetError) as caught:
        await McpToolset(spec).open()
    assert str(caught.value) == (
        "MCP server 'ghost' did not start: command not found: 'no-such-mcp-server-xyz'"
    )
    assert caught.value.toolset == "ghost"


async def test_a_server_that_crashes_at_start_shows_its_stderr_masked() -> None:
    started = time.monotonic()
    with pytest.raises(ToolsetError) as caught:
        await McpToolset(stdio("crash", env={"TEST_MCP_TOKEN": SECRET})).open()
    message = str(caught.value)
    assert message.startswith("MCP server 'demo' did not start: it closed the connection")
    assert "stderr ends with" in message
    assert "starting the test server" in message
    assert f"fatal: cannot log in with {MASK}" in message
    assert SECRET not in message
    assert time.monotonic() - started < 30


async def test_a_server_that_hangs_at_start_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(ToolsetError) as caught:
        await McpToolset(stdio("hang", startup_timeout=1.5)).open()
    assert str(caught.value).startswith("MCP server 'demo' did not start: no answer within 1.5s")
    assert "hanging before the handshake" in str(caught.value)
    assert time.monotonic() - started < 20


async def test_a_caller_cancelled_while_a_server_starts_leaves_no_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    toolset = McpToolset(stdio("hang", env={"TEST_MCP_PIDFILE": str(pidfile)}))
    opening = asyncio.create_task(toolset.open())
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.05)
    pid = int(pidfile.read_text())
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert gone(pid)
    assert not toolset.is_open


async def test_a_hung_call_times_out_and_closes_the_session() -> None:
    toolset = McpToolset(stdio(call_timeout=1.0))
    await toolset.open()
    try:
        pid = int((await toolset.call("demo__pid", {})).content)
        started = time.monotonic()
        with pytest.raises(ToolsetError) as caught:
            await toolset.call("demo__sleep", {"seconds": 600})
        assert str(caught.value) == (
            "MCP server 'demo' tool 'sleep' did not answer within 1s; the session is closed"
        )
        assert time.monotonic() - started < 15
        assert gone(pid)
        with pytest.raises(ToolsetError, match="'demo' tool 'sleep' did not answer within 1s"):
            await toolset.call("demo__add", {"a": 1, "b": 2})  # at once, saying why
    finally:
        await toolset.aclose()


async def test_a_server_that_dies_mid_run() -> None:
    toolset = McpToolset(stdio("die-after-first"))
    async with toolset:
        pid = int((await toolset.call("demo__pid", {})).content)
        assert gone(pid, within=30)  # it exits 0.2s after its first answer
        started = time.monotonic()
        with pytest.raises(ToolsetError) as caught:
            await toolset.call("demo__add", {"a": 1, "b": 2})
        assert str(caught.value).startswith("MCP server 'demo' is gone: it closed the connection")
        assert time.monotonic() - started < 10
        with pytest.raises(ToolsetError, match="'demo'"):
            await toolset.call("demo__add", {"a": 1, "b": 2})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http_server() -> tuple[subprocess.Popen[bytes], str]:
    """The test server over streamable HTTP on 127.0.0.1, listening."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError("the MCP test server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise AssertionError("the MCP test server does not listen") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The test server over streamable HTTP (started once for this module)."""
    process, url = start_http_server()
    try:
        yield url
    finally:
        stop(process)


async def test_streamable_http_server(http_server: str) -> None:
    spec = McpServerSpec(
        "web", url=http_server, headers={"Authorization": f"Bearer {SECRET}"}, tools=("add", "fail")
    )
    async with McpToolset(spec) as toolset:
        assert sorted(t.name for t in toolset.tools()) == ["web__add", "web__fail"]
        assert (await toolset.call("web__add", {"a": 20, "b": 22})).content == "42"
        failed = await toolset.call("web__fail", {"message": "no such row"})
        assert failed.is_error
        assert "no such row" in failed.content


async def test_an_http_server_that_dies_mid_run() -> None:
    process, url = start_http_server()
    try:
        async with McpToolset(McpServerSpec("web", url=url, call_timeout=30)) as toolset:
            assert (await toolset.call("web__add", {"a": 1, "b": 2})).content == "3"
            process.kill()
            process.wait()
            started = time.monotonic()
            with pytest.raises(ToolsetError) as caught:
                await toolset.call("web__add", {"a": 1, "b": 2})
            assert str(caught.value).startswith("MCP server 'web' is gone: "), caught.value
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.1)  # this task was not cancelled by the SDK's task group
    finally:
        stop(process)


async def test_an_http_server_that_is_not_there() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    spec = McpServerSpec("web", url=url, headers={"X-Api-Key": SECRET}, startup_timeout=3)
    started = time.monotonic()
    with pytest.raises(ToolsetError) as caught:
        await McpToolset(spec).open()
    assert str(caught.value).startswith(
        "MCP server 'web' did not start: ConnectError: All connection attempts failed"
    )
    assert SECRET not in str(caught.value)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give either 'command' (a stdio server) or 'url' (an HTTP server)"),
        ({"command": "x", "url": "http://h/mcp"}, "give either 'command'"),
        ({"url": "ftp://h"}, "'url' must start with http:// or https://"),
        ({"command": "x", "startup_timeout": 0}, "'startup_timeout' must be a positive number"),
        ({"command": "x", "prefix": "a.b"}, "prefix 'a.b' is not valid"),
    ],
)
def test_spec_is_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ToolsetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        McpServerSpec("srv", **options)  # type: ignore[arg-type]
    with pytest.raises(ToolsetError, match="MCP server name 'a b' is not valid"):
        McpServerSpec("a b", command="x")


def test_importing_the_tools_package_does_not_import_the_sdk() -> None:
    code = (
        "import sys, coditect_core.tools, coditect_core.tools.mcp\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'mcp_types'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
