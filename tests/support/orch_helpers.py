"""Process checks shared by the orchestration tests."""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, within: float = 5.0) -> bool:
    """Poll (bounded) until ``pid`` is gone."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.02)
    return process_gone(pid)


class Tracker:
    """Counts calls in flight per task, for concurrency and ordering checks."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.starts: dict[str, list[float]] = {}
        self.ends: dict[str, float] = {}
        self.clock = 0  # a logical clock: every start and end ticks it

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def enter(self, task_id: str) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.starts.setdefault(task_id, []).append(self.tick())

    def leave(self, task_id: str) -> None:
        self.active -= 1
        self.ends[task_id] = self.tick()


def task_id_of(messages: list[dict[str, str]]) -> str:
    """The task id in a prompt built by coditect_core.orchestration.prompts."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    return user.split("\n", 1)[0].removeprefix("# Task ").split(":", 1)[0]
