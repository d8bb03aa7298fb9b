"""One MCP server as a source of tools: :class:`McpToolset` over the official ``mcp`` SDK (the
``[mcp]`` extra), declared by an :class:`McpServerSpec`.

Two transports: *stdio* (a command started as a child process, in its own process group, with a
minimal environment plus the ``env`` the spec gives: never the provider keys of this process)
and *streamable HTTP* (a ``url`` and ``headers``). Once the SDK has stopped a stdio server, what
it left in its process group (a child it started) is killed. The SDK is imported here only, when
a server is opened, so ``import coditect_core.tools`` does not load it.

The session lives in an :class:`~contextlib.AsyncExitStack` entered by :meth:`McpToolset.open`
and closed by :meth:`McpToolset.aclose`; both must run in the same asyncio task (the SDK's anyio
cancel scopes demand it: PITFALLS, "Attempted to exit cancel scope in a different task").
:meth:`McpToolset.call` may run from any task.

Failures of the server as a whole are :class:`~coditect_core.errors.ToolsetError` naming the
server, bounded in time: a command that is not found, a server that exits or hangs at start
(``startup_timeout``; for stdio the last lines of its stderr are in the message, masked), a call
that does not answer within ``call_timeout`` (the session is then given up), a server that died
mid-run. A tool's own failure (``isError``, a JSON-RPC error for one call) is an error
:class:`~.base.ToolResult` the model can react to. Header values and the values of secret-named
environment variables are masked wherever text leaves (:mod:`coditect_core.secrets`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any, Literal, TextIO, cast

from ..errors import LlmRequestError, ToolsetError
from ..llm_abstractions.tool_types import TOOL_NAME_PATTERN, Tool
from ..secrets import Scrubber, is_secret_key, is_secret_variable
from .base import DEFAULT_MAX_RESULT_CHARS, ToolResult, Toolset, truncate_text

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "McpServerSpec",
    "McpToolset",
]

logger = logging.getLogger(__name__)

DEFAULT_STARTUP_TIMEOUT = 30.0
"""Seconds a server has to start, answer the handshake and list its tools."""

DEFAULT_CALL_TIMEOUT = 120.0
"""Seconds one tool call may take before the server is given up as hung."""

STDERR_TAIL_LINES = 15
"""How many of a failed stdio server's last stderr lines an error shows."""

_STDERR_TAIL_BYTES = 8192
_STOP_GRACE = 15.0  # seconds the session task has to stop the server (the SDK needs ~4 at most)
_SERVER_NAME = TOOL_NAME_PATTERN  # a server's name goes into tool names: the same rule


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """How to reach one MCP server and which of its tools to offer.

    Exactly one of ``command`` (stdio: ``args``, ``env``, ``cwd``) or ``url`` (streamable HTTP:
    ``headers``). ``tools`` is an allow-list of the server's tool names (``None``: all of them);
    ``prefix`` goes before each tool name (``None``: ``"<name>__"``; ``""``: none).
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] | None = None
    prefix: str | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    max_result_chars: int = DEFAULT_MAX_RESULT_CHARS

    def __post_init__(self) -> None:
        def bad(message: str) -> ToolsetError:
            return ToolsetError(f"MCP server {self.name!r}: {message}", toolset=self.name)

        if not isinstance(self.name, str) or not _SERVER_NAME.match(self.name):
            raise ToolsetError(
                f"MCP server name {self.name!r} is not valid: use 1 to 64 letters, digits, _ or -",
                toolset=str(self.name),
            )
        if (self.command is None) == (self.url is None):
            raise bad("give either 'command' (a stdio server) or 'url' (an HTTP server)")
        if self.command is not None and not self.command.strip():
            raise bad("'command' is empty")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise bad("'url' must start with http:// or https://")
        for label, value in (
            ("startup_timeout", self.startup_timeout),
            ("call_timeout", self.call_timeout),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise bad(f"{label!r} must be a positive number of seconds, not {value!r}")
        if self.max_result_chars < 1:
            raise bad("'max_result_chars' must be at least 1")
        if self.prefix and not TOOL_NAME_PATTERN.match(self.prefix):
            raise bad(f"prefix {self.prefix!r} is not valid: use letters, digits, _ or -")

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` (a command) or ``http`` (a URL)."""
        return "stdio" if self.command is not None else "http"

    @property
    def tool_prefix(self) -> str:
        """What goes before each of the server's tool names (default ``"<name>__"``)."""
        return f"{self.name}__" if self.prefix is None else self.prefix

    def secrets(self) -> list[str]:
        """The values to mask in anything said about this server: every header value, and the
        values of secret-named environment variables (``*_TOKEN``, ``api_key``...)."""
        values = list(self.headers.values())
        values += [v for k, v in self.env.items() if is_secret_variable(k) or is_secret_key(k)]
        return values


class McpToolset(Toolset):
    """The tools of one MCP server (:class:`McpServerSpec`), each named ``<prefix><tool>``.

    ``async with McpToolset(spec) as tools:`` opens the session, lists the tools and checks the
    allow-list; leaving it stops the server (its processes are gone).

    The SDK's transport and session are anyio context managers whose task groups must be
    entered and left by one task, and whose failures cancel that task. So the session lives in
    a task of its own (:meth:`_serve`): it enters an :class:`~contextlib.AsyncExitStack`, says it
    is ready, waits to be told to stop, and closes the stack itself. The task that calls
    :meth:`open` and :meth:`aclose` (any task; the same one with ``async with``) only waits for
    it, and a transport that crashes (an HTTP server gone) ends that task, not the caller's.
    """

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._scrubber = Scrubber(spec.secrets())
        self._runner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._ready: asyncio.Future[None] | None = None
        self._session: Any = None
        self._stderr: IO[bytes] | None = None
        self._tools: list[Tool] = []
        self._names: dict[str, str] = {}  # offered name -> the server's name
        self._broken: str | None = None
        self._groups: list[int] = []  # process groups of the stdio server (its pid: own group)
        self._opening = asyncio.Lock()

    @classmethod
    def from_spec(cls, spec: McpServerSpec) -> McpToolset:
        """The toolset of the server ``spec`` declares (not open yet)."""
        return cls(spec)

    @property
    def is_open(self) -> bool:
        """Whether a session is open (and not given up)."""
        runner = self._runner
        return (
            self._session is not None
            and self._broken is None
            and runner is not None
            and not runner.done()
        )

    def __repr__(self) -> str:
        return f"McpToolset({self.name!r}, {self.spec.transport})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the server (or connect to it), do the handshake and list its tools, within
        ``startup_timeout``. :class:`ToolsetError` naming the server if it cannot (nothing is
        left running then). A second call while it opens waits for the first."""
        async with self._opening:
            if self._runner is None:
                await self._open()

    async def _open(self) -> None:
        sdk = _import_sdk(self.name)
        self._broken = None
        self._stop = asyncio.Event()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ready = ready
        self._runner = asyncio.create_task(self._serve(sdk, ready), name=f"mcp-{self.name}")
        try:
            # the SDK's own request timeout comes first; this one bounds what it does not cover
            await asyncio.wait_for(asyncio.shield(ready), self.spec.startup_timeout + 5)
        except BaseException as error:
            tail = self._stderr_tail()
            await self.aclose()
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: asyncio would log it otherwise
            if isinstance(error, ToolsetError):
                raise self._masked(error) from None
            if isinstance(error, TimeoutError):
                reason = f"no answer within {self.spec.startup_timeout:g}s"
            elif isinstance(error, Exception):
                reason = self._reason(error, starting=True)
            else:
                raise  # the caller was cancelled: the server is stopped, the cancel goes on
            raise self._error(f"did not start: {reason}{tail}") from None
        logger.debug("MCP server %s: %d tools", self.name, len(self._tools))

    async def aclose(self) -> None:
        """Stop the session and the server (for stdio, its process group: the SDK stops it by
        closing its stdin, then SIGTERM, then SIGKILL). Safe to call twice, and after a failed
        :meth:`open`."""
        runner, stop = self._runner, self._stop
        self._runner = None
        self._session = None
        self._tools, self._names = [], {}
        try:
            if runner is not None and stop is not None:
                stop.set()
                await self._wait_stopped(runner)
        finally:
            _kill_groups(self._groups)
            self._close_stderr()

    async def _wait_stopped(self, runner: asyncio.Task[None]) -> None:
        """Wait for the session task to close its stack (cancelled if it is still starting, or
        stuck); shielded, so that a cancelled caller still leaves no server behind."""

        async def stopped() -> None:
            done, _ = await asyncio.wait({runner}, timeout=_STOP_GRACE)
            if not done:
                runner.cancel()
                await asyncio.wait({runner}, timeout=_STOP_GRACE)

        if self._ready is not None and not self._ready.done():
            runner.cancel()  # still starting: nothing to stop gently
        await asyncio.shield(stopped())

    async def _serve(self, sdk: _Sdk, ready: asyncio.Future[None]) -> None:
        """The session's own task: enter the stack, list the tools, wait for :meth:`aclose`,
        close the stack. Its failure before ready is :meth:`open`'s; after, it marks the
        toolset broken (the next call says so)."""
        assert self._stop is not None
        self._groups = []
        _spawned.set(self._groups)  # this task's own context: the SDK's spawn reports here
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._connect(stack, sdk)
                session = await stack.enter_async_context(
                    sdk.ClientSession(read, write, read_timeout_seconds=self.spec.startup_timeout)
                )
                await session.initialize()
                self._offer(await _list_all_tools(session))
                self._session = session
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as error:
            if not ready.done():
                leaf = _leaf(error)  # the SDK's task groups may have wrapped it
                ready.set_exception(leaf if isinstance(leaf, Exception) else _StartError("stopped"))
            elif not self._stop.is_set():
                self._broken = self._scrub(f"is gone: {self._reason(error)}{self._stderr_tail()}")
                logger.warning("MCP server %s %s", self.name, self._broken)
            if not isinstance(error, Exception | asyncio.CancelledError):
                raise
        finally:
            self._session = None
            _kill_groups(self._groups)

    async def _connect(self, stack: AsyncExitStack, sdk: _Sdk) -> tuple[Any, Any]:
        spec = self.spec
        if spec.command is not None:
            self._stderr = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed in aclose
            params = sdk.StdioServerParameters(
                command=spec.command,
                args=list(spec.args),
                env=dict(spec.env),  # over the SDK's minimal environment (PATH, HOME...)
                cwd=spec.cwd,
            )
            try:
                streams = await stack.enter_async_context(
                    sdk.stdio_client(params, errlog=cast(TextIO, self._stderr))
                )
            except FileNotFoundError:
                raise _StartError(f"command not found: {spec.command!r}") from None
            except PermissionError:
                raise _StartError(f"{spec.command!r} is not executable") from None
        else:
            assert spec.url is not None
            client = sdk.create_mcp_http_client(headers=dict(spec.headers))
            await stack.enter_async_context(client)
            streams = await stack.enter_async_context(
                sdk.streamable_http_client(spec.url, http_client=client)
            )
        return streams[0], streams[1]

    def _offer(self, listing: list[Any]) -> None:
        """The tools to offer: the allow-listed ones (all of them by default), prefixed."""
        offered = {str(t.name): t for t in listing}
        allowed = self.spec.tools
        if allowed is not None:
            missing = [n for n in allowed if n not in offered]
            if missing:
                have = ", ".join(sorted(offered)) or "none"
                raise self._error(
                    f"has no tool {', '.join(repr(n) for n in missing)} (its 'tools' allow-list); "
                    f"it offers: {have}"
                )
        tools: list[Tool] = []
        names: dict[str, str] = {}
        for name, mcp_tool in offered.items():
            if allowed is not None and name not in allowed:
                continue
            full = f"{self.spec.tool_prefix}{name}"
            schema = dict(mcp_tool.input_schema or {})
            schema.pop("title", None)
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            try:
                tool = Tool(name=full, description=mcp_tool.description or "", parameters=schema)
            except LlmRequestError as error:
                if allowed is not None:
                    raise self._error(f"tool {name!r} cannot be offered: {error}") from None
                logger.warning("MCP server %s: tool %r skipped: %s", self.name, name, error)
                continue
            tools.append(tool)
            names[full] = name
        self._tools, self._names = tools, names

    # -- tools --------------------------------------------------------------------------------

    def tools(self) -> list[Tool]:
        if self._session is None:
            raise self._error("is not open (use 'async with' or open() first)")
        return list(self._tools)

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Call tool ``name`` (its offered, prefixed name) within ``call_timeout``. The tool's
        own failure is an error result; a dead, hung or closed server is
        :class:`ToolsetError` (a hung one is then closed)."""
        session, runner = self._session, self._runner
        if self._broken is not None:
            raise self._error(self._broken)
        if session is None or runner is None or runner.done():
            raise self._error("is not open")
        server_name = self._names.get(name)
        if server_name is None:
            return ToolResult.error(f"unknown tool {name!r}")
        sdk = _import_sdk(self.name)
        request = asyncio.ensure_future(
            session.call_tool(
                server_name, dict(arguments), read_timeout_seconds=self.spec.call_timeout
            )
        )
        try:
            # the session task ending (its transport crashed) answers no request: do not wait
            await asyncio.wait({request, runner}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():
                request.cancel()
                with suppress(BaseException):
                    await request
        if request.cancelled():
            raise await self._give_up(self._broken or "is gone: its session ended")
        error = request.exception()
        if error is None:
            result = request.result()
            text, truncated = truncate_text(_content_text(result), self.spec.max_result_chars)
            return ToolResult(text, is_error=bool(result.is_error), truncated=truncated)
        if isinstance(error, sdk.MCPError) and error.code == sdk.REQUEST_TIMEOUT:
            raise await self._give_up(
                f"tool {server_name!r} did not answer within {self.spec.call_timeout:g}s; "
                "the session is closed"
            )
        if isinstance(error, sdk.MCPError) and error.code != sdk.CONNECTION_CLOSED:
            return ToolResult.error(self._scrub(f"{name} failed: {error.message}"))
        raise await self._give_up(
            self._broken or f"is gone: {self._reason(error)}{self._stderr_tail()}"
        )

    async def _give_up(self, reason: str) -> ToolsetError:
        """Mark the session unusable (later calls fail at once saying ``reason``), stop it, and
        give the error to raise."""
        self._broken = self._scrub(reason)
        await self.aclose()
        return self._error(reason)

    # -- messages -----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return self._scrubber.text(text) or ""

    def _error(self, message: str) -> ToolsetError:
        return ToolsetError(self._scrub(f"MCP server {self.name!r} {message}"), toolset=self.name)

    def _masked(self, error: ToolsetError) -> ToolsetError:
        return ToolsetError(self._scrub(str(error)), toolset=self.name, tool=error.tool)

    def _reason(self, error: BaseException, *, starting: bool = False) -> str:
        """What went wrong, in words (the SDK's errors mapped; exception groups unwrapped)."""
        error = _leaf(error)
        if isinstance(error, _StartError):
            return str(error)
        message = str(error) or type(error).__name__
        sdk = _sdk
        if sdk is not None and isinstance(error, sdk.MCPError):
            if error.code == sdk.REQUEST_TIMEOUT and starting:
                return f"no answer within {self.spec.startup_timeout:g}s"
            if error.code == sdk.CONNECTION_CLOSED:
                return "it closed the connection (it exited?)"
            return error.message
        return f"{type(error).__name__}: {message}"

    def _stderr_tail(self) -> str:
        """The last lines the stdio server wrote to stderr, as a suffix (``""`` if none)."""
        stream = self._stderr
        if stream is None:
            return ""
        try:
            fd = stream.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - _STDERR_TAIL_BYTES)
            data = os.pread(fd, size - start, start)  # the child shares the offset: no seek
        except (OSError, ValueError):
            return ""
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        if not lines:
            return ""
        tail = "\n  ".join(lines[-STDERR_TAIL_LINES:])
        return f"\n  its stderr ends with:\n  {tail}"

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            with suppress(OSError):
                self._stderr.close()
            self._stderr = None


class _StartError(Exception):
    """Why a server did not start, in words (the message is the whole reason)."""


def _leaf(error: BaseException) -> BaseException:
    """The exception that says what went wrong: the first real one inside exception groups
    (the SDK's task groups wrap them; cancellations are their echo)."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = [_leaf(e) for e in error.exceptions]
    ours = [e for e in leaves if isinstance(e, ToolsetError | _StartError)]
    real = [e for e in leaves if isinstance(e, Exception)]
    return (ours or real or leaves)[0]


def _content_text(result: Any) -> str:
    """A tool result's content as text: text parts joined, other parts described."""
    parts: list[str] = []
    for item in result.content or ():
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(item.text)
        elif kind in ("image", "audio"):
            size = len(getattr(item, "data", "") or "") * 3 // 4
            parts.append(f"[{kind}: {item.mime_type}, about {size} bytes, not shown]")
        elif kind == "resource":
            resource = item.resource
            text = getattr(resource, "text", None)
            if text is not None:
                parts.append(text)
            else:
                mime = getattr(resource, "mime_type", None) or "binary"
                parts.append(f"[resource {resource.uri}: {mime}, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {item.uri}]")
        else:
            parts.append(f"[{kind or 'unknown'} content, not shown]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


async def _list_all_tools(session: Any) -> list[Any]:
    """Every tool the server offers (following its pagination)."""
    listing = await session.list_tools()
    tools = list(listing.tools)
    cursor = listing.next_cursor
    seen: set[str] = set()
    while cursor and cursor not in seen:
        seen.add(cursor)
        from mcp_types import PaginatedRequestParams

        listing = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools += listing.tools
        cursor = listing.next_cursor
    return tools


_spawned: ContextVar[list[int] | None] = ContextVar("coditect_mcp_spawned", default=None)
"""Where the SDK's spawn of a stdio server reports the pid, in the session task's context."""


def _watch_spawns() -> None:
    """Make the SDK's stdio spawn report each server's pid to :data:`_spawned` (the SDK does not
    expose it). The server runs in a new session, so its pid is its process group: after the SDK
    has stopped the server, what it left in that group (a child it started) is killed too. The
    SDK's spawn is private: if it moves, this does nothing and only the SDK's own stop remains."""
    from mcp.client import stdio

    original = getattr(stdio, "_create_platform_compatible_process", None)
    if original is None or getattr(original, "_coditect_watch", False):
        return

    async def spawn(*args: Any, **kwargs: Any) -> Any:
        process = await original(*args, **kwargs)
        sink = _spawned.get()
        if sink is not None:
            sink.append(int(process.pid))
        return process

    spawn._coditect_watch = True  # type: ignore[attr-defined]
    stdio._create_platform_compatible_process = spawn


def _kill_groups(groups: list[int]) -> None:
    """SIGKILL each process group (a stdio server's, once it is stopped); then forget them."""
    killpg = getattr(os, "killpg", None)
    while groups:
        group = groups.pop()
        if killpg is not None:
            with suppress(ProcessLookupError, PermissionError):
                killpg(group, signal.SIGKILL)
                logger.debug("MCP: killed what was left in process group %d", group)


class _Sdk:
    """The parts of the ``mcp`` SDK this module uses, imported once, on first use."""

    def __init__(self) -> None:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        self.ClientSession = ClientSession
        self.StdioServerParameters = StdioServerParameters
        self.stdio_client = stdio_client
        self.streamable_http_client = streamable_http_client
        self.create_mcp_http_client = create_mcp_http_client
        self.MCPError = MCPError
        self.REQUEST_TIMEOUT = REQUEST_TIMEOUT
        self.CONNECTION_CLOSED = CONNECTION_CLOSED
        _watch_spawns()


_sdk: _Sdk | None = None


def _import_sdk(server: str) -> _Sdk:
    global _sdk
    if _sdk is None:
        try:
            _sdk = _Sdk()
        except ImportError:
            raise ToolsetError(
                f"MCP server {server!r}: the mcp SDK is not installed: "
                "pip install 'coditect-core[mcp]'",
                toolset=server,
            ) from None
    return _sdk
