"""``NullRecorder``: the state store's write interface, keeping nothing (for runs without state).
Exported by :mod:`..store`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..orchestration.resume import SuccessRecord
from .records import AttemptOutcome, RunInfo

__all__ = ["NullRecorder"]


class NullRecorder:
    """The store's write interface, keeping nothing: for runs without state."""

    path = None

    def __init__(self) -> None:
        self._next_id = 0

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def begin_run(self, project: str, **_: Any) -> RunInfo:
        return RunInfo(self._id(), project, time.time())

    async def finish_run(self, run_id: int, status: str = "succeeded") -> None:
        return None

    async def define_tasks(self, run_id: int, hashes: Mapping[str, str], *_: Any) -> None:
        return None

    async def task_started(self, run_id: int, task_id: str, **_: Any) -> int:
        return self._id()

    async def attempt_started(self, run_id: int, task_id: str, **_: Any) -> int:
        return self._id()

    async def attempt_finished(self, attempt_id: int, outcome: AttemptOutcome) -> None:
        return None

    async def task_finished(self, run_id: int, task_id: str, status: Any, **_: Any) -> None:
        return None

    async def tool_called(self, attempt_id: int, call: Any) -> None:
        return None

    async def set_task_status(self, run_id: int, task_id: str, status: Any, **_: Any) -> None:
        return None

    async def load_succeeded(self, project: str) -> dict[str, SuccessRecord]:
        return {}

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        return None
