"""A small real MCP server (the ``mcp`` SDK's own ``MCPServer``) for the MCP client's tests.

    python mcp_server.py MODE [PORT]

MODE: ``stdio`` or ``http`` (streamable HTTP on 127.0.0.1:PORT, path /mcp) serve the tools below;
``crash`` writes to stderr and exits at once; ``hang`` never answers the handshake (stdio; its
pid written to ``$TEST_MCP_PIDFILE`` if set);
``die-after-first`` (stdio) exits shortly after answering its first tool call; ``spawn`` (stdio)
first starts a ``sleep`` child that outlives it unless its process group is killed.

Tools: ``add(a, b)``, ``echo(text)``, ``fail(message)`` (an ``isError`` result), ``pid()``,
``env(name)`` (a variable of its environment, or ``<unset>``), ``cwd()``, ``big(n)``,
``sleep(seconds)`` (hangs in a call), ``picture()`` (text and an image), ``dotted.name``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "stdio"

if MODE == "crash":
    print("starting the test server", file=sys.stderr)
    print(f"fatal: cannot log in with {os.environ.get('TEST_MCP_TOKEN', '')}", file=sys.stderr)
    sys.exit(3)

if MODE == "hang":
    if os.environ.get("TEST_MCP_PIDFILE"):
        with open(os.environ["TEST_MCP_PIDFILE"], "w") as pidfile:
            pidfile.write(str(os.getpid()))
    print("hanging before the handshake", file=sys.stderr, flush=True)
    time.sleep(3600)  # never reads stdin

if MODE == "spawn":
    import subprocess

    SLEEPER = subprocess.Popen(["sleep", "300"]).pid

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402
from mcp_types import ImageContent, TextContent  # noqa: E402

server = MCPServer("test-server", log_level="WARNING")
calls = 0


def _counted() -> None:
    global calls
    calls += 1
    if MODE == "die-after-first" and calls == 1:
        threading.Timer(0.2, os._exit, (7,)).start()  # sync tools run in a worker thread


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    _counted()
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    _counted()
    return text


@server.tool()
def fail(message: str) -> str:
    """Always fails (an isError result)."""
    _counted()
    raise ToolError(message)


@server.tool()
def pid() -> int:
    """This server's process id."""
    _counted()
    return os.getpid()


@server.tool()
def child_pid() -> int:
    """The pid of the ``sleep`` child of the ``spawn`` mode (0 in the others)."""
    return SLEEPER if MODE == "spawn" else 0


@server.tool()
def env(name: str) -> str:
    """A variable of this server's environment."""
    _counted()
    return os.environ.get(name, "<unset>")


@server.tool()
def cwd() -> str:
    """This server's working directory."""
    _counted()
    return os.getcwd()


@server.tool()
def big(n: int) -> str:
    """n characters."""
    _counted()
    return "y" * n


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    _counted()
    await asyncio.sleep(seconds)
    return "awake"


@server.tool()
def picture() -> list[TextContent | ImageContent]:
    """Some text and an image."""
    _counted()
    return [
        TextContent(type="text", text="a red dot:"),
        ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
    ]


@server.tool(name="dotted.name")
def dotted() -> str:
    """A name no model provider accepts."""
    return "dotted"


if __name__ == "__main__":
    if MODE == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
