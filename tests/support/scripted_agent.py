"""A scripted tool-calling model a project file can name, for runs in child processes.

``ScriptedLlm`` is a :class:`FakeLlm` whose answers come from its options, per task::

    agents:
      coder:
        type: custom
        provider: scripted            # registered by run_scripted() below
        tools: [read_file, write_file]
        options:
          tasks:
            T1:                        # the task whose prompt starts "# Task T1:"
              - calls: [{name: write_file, arguments: {path: a.py, content: "A = 1\\n"}}]
              - text: done

The turn answered is the number of assistant messages in the conversation so far (so a resumed
conversation goes on where it stopped); past the script's end it answers ``done``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coditect_core.llm_abstractions.messages import Message
from coditect_core.llm_abstractions.testing import FakeLlm
from coditect_core.llm_abstractions.tool_types import ToolCall

__all__ = ["ScriptedLlm", "scripted_argv", "scripted_env"]

_TASK = re.compile(r"^# Task (\S+):", re.M)


class ScriptedLlm(FakeLlm):
    """Answers each task's conversation from ``tasks`` (task id -> list of turns)."""

    def __init__(
        self, *, tasks: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(default=self._answer, **kwargs)  # type: ignore[arg-type]
        self.scripts = {tid: list(turns) for tid, turns in (tasks or {}).items()}

    def _answer(self, messages: list[Message]) -> Any:
        task_id = ""
        for message in messages:
            if message["role"] == "user":
                found = _TASK.search(message["content"])
                if found:
                    task_id = found.group(1)
                    break
        turn = sum(1 for m in messages if m["role"] == "assistant")
        script = self.scripts.get(task_id, [])
        if turn >= len(script):
            return "done"
        step = script[turn]
        if "calls" in step:
            return [
                ToolCall(f"call-{task_id}-{turn}-{i}", c["name"], dict(c.get("arguments", {})))
                for i, c in enumerate(step["calls"])
            ]
        return str(step.get("text", "done"))


_BOOT = (
    "import sys\n"
    "from coditect_core.llm_abstractions.registry import register_llm\n"
    "register_llm('scripted', 'scripted_agent:ScriptedLlm')\n"
    "from coditect_core.cli.main import main\n"
    "sys.argv = ['coditect', *sys.argv[1:]]\n"
    "main()\n"
)


def scripted_argv() -> list[str]:
    """The argv of a child ``coditect`` that knows the ``scripted`` provider (this module on
    its ``PYTHONPATH``: pass :func:`scripted_env`)."""
    return [sys.executable, "-c", _BOOT]


def scripted_env(**extra: str) -> dict[str, str]:
    """The environment of :func:`scripted_argv`'s child: this folder importable, plain output."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    env.update({"COLUMNS": "200", "TERM": "dumb"}, **extra)
    return env
