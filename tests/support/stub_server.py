"""A loopback HTTP server speaking the OpenAI, Anthropic and Gemini wire formats, with faults.

Endpoints (shapes in :mod:`stub_wire`): ``POST /v1/chat/completions``, ``POST /v1/messages``,
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``. The
default reply is ``"stub reply to: <first 40 chars of the last user message>"`` with plausible
token counts. Every request is recorded (``requests``) and counted (``request_count``,
``reply_count`` for replies sent in full, ``fault_counts`` by kind, ``connections_opened``).

Faults, two ways:

* scripted: ``server.script(status(429, retry_after=0.1), reply("ok"))``, one action per request
  in arrival order (``reply``, ``status``, ``hang``, ``reset``, ``malformed``, ``truncate``);
* random: ``StubServer(fault_rate=0.3, seed=7)`` draws from :data:`FAULT_KINDS` per request.

Use it as a context manager (it runs on its own thread and event loop, so sync and async
callers alike can use it), through the ``stub_server`` pytest fixture, or as a process::

    python tests/support/stub_server.py --port 0 --print-port [--fault-rate 0.3 --seed 7]

which prints the port on the first line of stdout and serves until SIGINT/SIGTERM. A process is
controlled over HTTP: ``GET /_stub/stats``, ``GET /_stub/requests``, ``POST /_stub/script``
(a JSON list of actions), ``POST /_stub/faults`` (``{"rate", "seed"}``), ``POST /_stub/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from stub_wire import (
    error_body,
    error_headers,
    malformed_body,
    reply_body,
    reply_events,
    reply_for,
    route,
)

__all__ = [
    "FAULT_KINDS",
    "Action",
    "RecordedRequest",
    "StubServer",
    "hang",
    "malformed",
    "reply",
    "reset",
    "status",
    "truncate",
]

FAULT_KINDS = ("rate_limit", "server_error", "hang", "reset", "malformed", "truncate")
"""The random faults; ``"html"`` (a proxy's 502 page) is drawn only when asked for by name."""

_HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"


@dataclass(frozen=True, slots=True)
class Action:
    """What the server does with one request. Build one with the functions below."""

    kind: str
    text: str | None = None
    finish_reason: str | None = None
    code: int = 200
    message: str | None = None
    error_code: str | None = None
    headers: dict[str, str] | None = None
    body: Any = None
    retry_after: float | None = None
    seconds: float = 0.0
    clean: bool = False
    tool_calls: list[dict[str, Any]] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        return cls(**data)


def reply(
    text: str | None = None,
    finish_reason: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Action:
    """A normal reply; ``finish_reason`` is neutral (stop, length, content_filter, tool_calls)
    or raw. ``tool_calls``: ``{"name", "arguments", "id"?}`` each, in the vendor's shape
    (:mod:`stub_wire`)."""
    return Action("reply", text=text, finish_reason=finish_reason, tool_calls=tool_calls)


def status(
    code: int,
    message: str | None = None,
    *,
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    retry_after: float | None = None,
) -> Action:
    """An HTTP error with a vendor-shaped body (or ``body`` verbatim) and extra ``headers``."""
    return Action(
        "status",
        code=code,
        message=message,
        error_code=error_code,
        headers=headers,
        body=body,
        retry_after=retry_after,
    )


def hang(seconds: float) -> Action:
    """Say nothing for ``seconds`` (or until the client hangs up), then reply normally."""
    return Action("hang", seconds=seconds)


def reset() -> Action:
    """Drop the connection with a TCP reset, without any response."""
    return Action("reset")


def malformed() -> Action:
    """A 200 whose body (or first stream event) is not valid JSON."""
    return Action("malformed")


def truncate(clean: bool = False) -> Action:
    """Send about half the body (or half the stream events), then drop the connection.

    ``clean=True`` ends a stream properly after half its events (as a proxy that gives up
    might), so that only the missing end events tell that it was cut short.
    """
    return Action("truncate", clean=clean)


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    format: str | None = None
    action: str = "reply"
    received_at: float = field(default_factory=time.time)  # Unix time the request was read


class _Closed(Exception):
    """The connection is gone (reset, truncated, or the client left)."""


@dataclass
class StubServer:
    """The server. ``latency`` delays every reply; ``stream_delay`` separates stream events."""

    host: str = "127.0.0.1"
    port: int = 0
    fault_rate: float = 0.0
    seed: int | None = None
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    hang_seconds: float = 5.0
    fault_retry_after: float = 0.01
    latency: float = 0.0
    stream_delay: float = 0.0
    record: bool = True
    cache_read_tokens: int = 0  # every reply says this many prompt tokens were cache reads
    cache_write_tokens: int = 0  # ... and this many cache writes (up to the prompt's count)

    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    request_count: int = field(default=0, init=False)
    reply_count: int = field(default=0, init=False)
    connections_opened: int = field(default=0, init=False)
    fault_counts: Counter[str] = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        self._queue: deque[Action] = deque()
        self._rng = random.Random(self.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic's base URL; Gemini's with a slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """The OpenAI base URL, ending in ``/v1``."""
        return f"{self.url}/v1"

    def script(self, *actions: Action) -> None:
        """Queue actions, consumed one per request, before any random fault."""
        self._queue.extend(actions)

    def set_faults(self, rate: float, seed: int | None = None) -> None:
        """Switch the random fault mode (rate 0 turns it off)."""
        self.fault_rate = rate
        self._rng = random.Random(seed if seed is not None else self.seed)

    def clear(self) -> None:
        """Forget recorded requests, counters and queued actions."""
        self._queue.clear()
        self.requests.clear()
        self.request_count = self.reply_count = self.connections_opened = 0
        self.fault_counts.clear()

    @property
    def open_connections(self) -> int:
        """Connections being served now (a client gone is no longer counted once the server
        has seen it leave)."""
        return len(self._conns)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.request_count,
            "replies": self.reply_count,
            "connections": self.connections_opened,
            "faults": dict(self.fault_counts),
            "queued": len(self._queue),
        }

    # ------------------------------------------------------------------ lifecycle

    async def start_async(self) -> None:
        """Listen on the running loop (for a process that is only the server)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, backlog=2048, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def start(self) -> StubServer:
        """Serve on a background thread with its own event loop; returns once listening."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as error:  # reported to the starting thread
                errors.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="stub-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections_opened += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            writer.transport.abort()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; False when the connection should close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = await self._read_chunked(reader)
        else:
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
        keep_alive = headers.get("connection", "").lower() != "close"
        parts = urlsplit(target)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if parts.path.startswith("/_stub/"):
            await self._control(writer, method, parts.path, body)
            return keep_alive
        self.request_count += 1
        found = route(method, parts.path)
        record = RecordedRequest(method, parts.path, dict(parse_qsl(parts.query)), headers, body)
        if self.record:
            self.requests.append(record)
        if found is None or not isinstance(body, dict):
            code = 404 if found is None else 400
            await self._send_json(writer, code, {"error": {"message": f"stub: no route {target}"}})
            return keep_alive
        fmt, path_model, stream = found
        record.format = fmt
        stream = stream or body.get("stream") is True
        action = self._next_action()
        record.action = action.kind
        if action.kind != "reply":
            self.fault_counts[action.kind] += 1
        if action.kind == "hang":
            await self._hang(reader, action.seconds)
            action = reply()
        if self.latency:
            await asyncio.sleep(self.latency)
            if reader.at_eof() or writer.is_closing():  # the client hung up meanwhile:
                raise _Closed  # nothing is sent, so nothing is counted as sent
        if action.kind == "status":
            await self._send_status(writer, fmt, action)
            return keep_alive
        if action.kind == "reset":
            self._reset(writer)
            raise _Closed
        if action.kind == "html":  # what a proxy in front of the API sends when it is down
            await self._send(writer, 502, _HTML_502, "text/html")
            return keep_alive
        if action.kind == "malformed":
            ctype = "text/event-stream" if stream else "application/json"
            await self._send(writer, 200, malformed_body(fmt, stream), ctype, chunked=stream)
            return keep_alive
        answer = reply_for(
            fmt,
            body,
            path_model,
            action.text,
            action.finish_reason,
            cache=(self.cache_read_tokens, self.cache_write_tokens),
            tool_calls=action.tool_calls,
        )
        seq = self.request_count
        if stream:
            events = reply_events(fmt, answer, seq, body)
            if action.kind == "truncate":
                half = events[: max(1, len(events) // 2)]
                await self._send_events(writer, half, end=action.clean, count=False)
                if action.clean:
                    return keep_alive
                self._reset(writer)
                raise _Closed
            await self._send_events(writer, events)
        else:
            data = json.dumps(reply_body(fmt, answer, seq)).encode()
            if action.kind == "truncate":
                head_bytes = self._head(200, "application/json", len(data))
                writer.write(head_bytes + data[: len(data) // 2])
                await writer.drain()
                self._reset(writer)
                raise _Closed
            await self._send(writer, 200, data, "application/json", count=True)
        return keep_alive

    def _next_action(self) -> Action:
        if self._queue:
            with contextlib.suppress(IndexError):
                return self._queue.popleft()
        if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            kind = self._rng.choice(self.fault_kinds)
            if kind == "rate_limit":
                return status(429, retry_after=self.fault_retry_after)
            if kind == "server_error":
                return status(500)
            if kind == "hang":
                return hang(self.hang_seconds)
            return Action(kind)
        return Action("reply")

    async def _hang(self, reader: asyncio.StreamReader, seconds: float) -> None:
        """Wait ``seconds``, but stop early (closing) if the client hangs up meanwhile."""
        eof = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({eof}, timeout=seconds)
        if done:
            raise _Closed
        eof.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await eof

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            out += await reader.readexactly(size + 2)
            del out[-2:]

    @staticmethod
    def _head(
        code: int, ctype: str, length: int | None, extra: dict[str, str] | None = None
    ) -> bytes:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Overloaded" if code == 529 else "Unknown"
        lines = [f"HTTP/1.1 {code} {phrase}", f"content-type: {ctype}", "server: coditect-stub"]
        lines.append(
            f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
        )
        for name, value in (extra or {}).items():
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        data: bytes,
        ctype: str,
        extra: dict[str, str] | None = None,
        chunked: bool = False,
        count: bool = False,
    ) -> None:
        if count:  # before the write: the client may have it before drain() returns
            self.reply_count += 1
        if chunked:
            writer.write(self._head(code, ctype, None, extra) + self._chunk(data) + b"0\r\n\r\n")
        else:
            writer.write(self._head(code, ctype, len(data), extra) + data)
        await writer.drain()

    async def _send_json(self, writer: asyncio.StreamWriter, code: int, data: Any) -> None:
        await self._send(writer, code, json.dumps(data).encode(), "application/json")

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    async def _send_events(
        self,
        writer: asyncio.StreamWriter,
        events: list[bytes],
        end: bool = True,
        count: bool = True,
    ) -> None:
        """Write ``events`` as chunks; ``end`` finishes the body, ``count`` counts a reply."""
        head = self._head(200, "text/event-stream", None, {"cache-control": "no-cache"})
        if count:  # before the write: the client may have it before drain() returns
            self.reply_count += 1
        if not self.stream_delay:
            tail = b"0\r\n\r\n" if end else b""
            writer.write(head + b"".join(self._chunk(e) for e in events) + tail)
            await writer.drain()
            return
        writer.write(head)
        for event in events:
            writer.write(self._chunk(event))
            await writer.drain()
            await asyncio.sleep(self.stream_delay)
        if end:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _send_status(self, writer: asyncio.StreamWriter, fmt: str, action: Action) -> None:
        extra = error_headers(fmt, action.retry_after)
        extra.update(action.headers or {})
        if action.body is None:
            body = error_body(
                fmt, action.code, action.message, action.error_code, action.retry_after
            )
            data = json.dumps(body).encode()
        elif isinstance(action.body, bytes | str):
            data = action.body.encode() if isinstance(action.body, str) else action.body
        else:
            data = json.dumps(action.body).encode()
        await self._send(writer, action.code, data, "application/json", extra)

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _control(
        self, writer: asyncio.StreamWriter, method: str, path: str, body: Any
    ) -> None:
        if path == "/_stub/stats":
            await self._send_json(writer, 200, self.stats())
        elif path == "/_stub/requests":
            await self._send_json(writer, 200, [asdict(r) for r in self.requests])
        elif path == "/_stub/script" and method == "POST" and isinstance(body, list):
            self.script(*(Action.from_dict(item) for item in body))
            await self._send_json(writer, 200, self.stats())
        elif path == "/_stub/faults" and method == "POST" and isinstance(body, dict):
            self.set_faults(float(body.get("rate", 0.0)), body.get("seed"))
            await self._send_json(writer, 200, self.stats())
        elif path == "/_stub/reset" and method == "POST":
            self.clear()
            await self._send_json(writer, 200, self.stats())
        else:
            await self._send_json(writer, 404, {"error": {"message": f"stub: no control {path}"}})


def main(argv: list[str] | None = None) -> int:
    """Run the stub as a process until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--print-port", action="store_true", help="print the port on stdout")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS))
    parser.add_argument("--hang-seconds", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--stream-delay", type=float, default=0.0)
    parser.add_argument("--no-record", action="store_true", help="keep no request log")
    args = parser.parse_args(argv)
    server = StubServer(
        host=args.host,
        port=args.port,
        fault_rate=args.fault_rate,
        seed=args.seed,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        hang_seconds=args.hang_seconds,
        latency=args.latency,
        stream_delay=args.stream_delay,
        record=not args.no_record,
    )

    async def serve() -> None:
        await server.start_async()
        if args.print_port:
            sys.stdout.write(f"{server.port}\n")
            sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop_async()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
