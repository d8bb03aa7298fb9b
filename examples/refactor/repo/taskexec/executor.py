"""TaskExecutor before the refactor: each API agent runs a script of its own in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .agents import AgentConfig, AgentRegistry, AgentType

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@dataclass
class ExecutionResult:
    task_id: str
    agent: str
    status: str = "pending"
    output: str | None = None
    error: str | None = None


class TaskExecutor:
    def __init__(self, registry: AgentRegistry) -> None:
        self.registry = registry

    def _get_execution_script(self, agent: AgentConfig) -> Path:
        names = {
            AgentType.GEMINI: "execute_gemini.py",
            AgentType.CLAUDE: "execute_claude.py",
            AgentType.GPT: "execute_gpt.py",
            AgentType.ECHO: "execute_echo.py",
        }
        return SCRIPTS / names[agent.agent_type]

    def _execute_api(self, task_id: str, prompt: str, agent: AgentConfig) -> ExecutionResult:
        result = ExecutionResult(task_id, agent.name)
        script = self._get_execution_script(agent)
        done = subprocess.run(
            [sys.executable, str(script), prompt], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            result.status, result.output = "success", done.stdout.strip()
        else:
            result.status, result.error = "failed", done.stderr.strip() or "script failed"
        return result

    def execute(self, task_id: str, prompt: str, agent_name: str) -> ExecutionResult:
        return self._execute_api(task_id, prompt, self.registry.get(agent_name))
