"""Helpers of the reliability tests: the stub as a process, a stub that timestamps arrivals,
and agents of the three providers pointed at a stub."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stub_server import Action, StubServer

from coditect_core.llm_abstractions.retry import RetryPolicy
from coditect_core.orchestration import AgentConfig

TESTS = Path(__file__).resolve().parent
KEY = "sk-reliability-test-key-0123456789"
MODELS = {"gpt": "gpt-4o-mini", "claude": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
TYPES = {"gpt": "openai-gpt", "claude": "anthropic-claude", "gemini": "google-gemini"}
FORMATS = {"gpt": "openai", "claude": "anthropic", "gemini": "gemini"}


def base_url(agent: str, url: str) -> str:
    """The base URL of ``agent``'s provider on the stub at ``url``."""
    return {"gpt": f"{url}/v1", "claude": url, "gemini": f"{url}/"}[agent]


def stub_agent(
    agent: str,
    url: str,
    *,
    retry: RetryPolicy | None = None,
    fallbacks: list[str] | None = None,
    timeout: float | None = None,
) -> AgentConfig:
    """An agent of ``agent``'s provider (gpt, claude or gemini) talking to the stub."""
    return AgentConfig(
        agent,
        TYPES[agent],
        model=MODELS[agent],
        api_key=KEY,
        base_url=base_url(agent, url),
        timeout=timeout,
        fallbacks=fallbacks or [],
        provider_options={"retry": retry} if retry is not None else {},
    )


class StubProcess:
    """``tests/support/stub_server.py`` run as its own process, controlled over HTTP."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, data: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(data).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self.get("/_stub/stats")

    def requests(self) -> list[dict[str, Any]]:
        return self.get("/_stub/requests")


@contextmanager
def stub_process(*args: str, log: Path | None = None) -> Iterator[StubProcess]:
    """Start the stub process with ``args`` (e.g. ``"--fault-rate", "0.3"``); stop it after."""
    err = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "stub_server.py"), "--port", "0", "--print-port", *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit(), f"the stub did not start: {line!r}"
        yield StubProcess(proc, int(line))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if log is not None:
            err.close()  # type: ignore[union-attr]


class TimedStub(StubServer):
    """A stub that notes when each API request arrived (``arrivals``: monotonic seconds,
    with the format and the action it got), for rate checks made at the server's side."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrivals: list[tuple[float, str, str]] = []

    def _next_action(self) -> Action:
        action = super()._next_action()
        record = self.requests[-1] if self.requests else None
        self.arrivals.append((time.monotonic(), record.format if record else "?", action.kind))
        return action


def max_in_window(times: list[float], window: float) -> int:
    """The most arrivals in any half-open window ``[t, t + window)`` (it is enough to start
    windows at arrivals)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best
