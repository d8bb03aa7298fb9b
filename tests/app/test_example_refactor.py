"""examples/refactor/ offline: its project file (the plan's steps 4.1 to 4.7, each with the
repository's test suite as its check) run on a scripted agent that makes the refactor's real
edits with the file tools, in a copy of its repository made a git repository. Every step's
check passes, every change is merged in dependency order, and the integration branch holds the
refactored code whose tests pass."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from git_repos import git_out
from scripted_agent import scripted_argv, scripted_env

pytestmark = pytest.mark.timeout(300)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "refactor"


def edit(path: str, old: str, new: str) -> dict[str, Any]:
    return {
        "calls": [
            {"name": "edit_file", "arguments": {"path": path, "old_text": old, "new_text": new}}
        ]
    }


def write(path: str, content: str) -> dict[str, Any]:
    return {"calls": [{"name": "write_file", "arguments": {"path": path, "content": content}}]}


def delete(*paths: str) -> dict[str, Any]:
    return {"calls": [{"name": "delete_file", "arguments": {"path": p}} for p in paths]}


IMPORTS = "from .agents import AgentConfig, AgentRegistry, AgentType\n"
FACTORY = """    def __init__(self, registry: AgentRegistry) -> None:
        self.registry = registry
        self._llm_factory: dict[AgentType, type[BaseLlm]] = {
            AgentType.GEMINI: Gemini,
            AgentType.CLAUDE: Claude,
            AgentType.GPT: Gpt,
            AgentType.ECHO: EchoLlm,
        }
"""
OLD_API = (
    OLD
) = """    def _execute_api(self, task_id: str, prompt: str, agent: AgentConfig) -> ExecutionResult:
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
"""
NEW_API = """    async def _execute_api(
        self, task_id: str, prompt: str, agent: AgentConfig
    ) -> ExecutionResult:
        result = ExecutionResult(task_id, agent.name)
        llm = self._llm_factory[agent.agent_type](model=agent.model, api_key=agent.api_key)
        try:
            result.output = await llm.generate_content_async(prompt)
            result.status = "success"
        except Exception as error:
            result.status, result.error = "failed", str(error)
        return result

    async def execute(self, task_id: str, prompt: str, agent_name: str) -> ExecutionResult:
        return await self._execute_api(task_id, prompt, self.registry.get(agent_name))
"""
SCRIPT_METHOD = """    def _get_execution_script(self, agent: AgentConfig) -> Path:
        names = {
            AgentType.GEMINI: "execute_gemini.py",
            AgentType.CLAUDE: "execute_claude.py",
            AgentType.GPT: "execute_gpt.py",
            AgentType.ECHO: "execute_echo.py",
        }
        return SCRIPTS / names[agent.agent_type]

"""
ASYNC_TESTS = """import asyncio

import pytest
from taskexec.agents import AgentConfig, AgentRegistry, AgentType
from taskexec.executor import TaskExecutor


def registry() -> AgentRegistry:
    agents = AgentRegistry()
    agents.register(AgentConfig("echo", AgentType.ECHO))
    agents.register(AgentConfig("gpt", AgentType.GPT, model="gpt-4o-mini"))
    return agents


def test_an_echo_task_succeeds() -> None:
    result = asyncio.run(TaskExecutor(registry()).execute("T1", "hello", "echo"))
    assert (result.status, result.output) == ("success", "HELLO")


def test_a_network_agent_fails_here() -> None:
    result = asyncio.run(TaskExecutor(registry()).execute("T2", "hello", "gpt"))
    assert result.status == "failed"
    assert result.error


def test_the_registry_refuses_a_second_agent_of_one_name() -> None:
    agents = registry()
    with pytest.raises(ValueError, match="already registered"):
        agents.register(AgentConfig("echo", AgentType.ECHO))
"""
FACTORY_TESTS = """import asyncio

from taskexec.agents import AgentConfig, AgentRegistry, AgentType
from taskexec.executor import TaskExecutor
from taskexec.llms import Claude, EchoLlm, Gemini, Gpt


def test_every_agent_type_has_its_llm_class() -> None:
    factory = TaskExecutor(AgentRegistry())._llm_factory
    assert factory == {
        AgentType.GEMINI: Gemini,
        AgentType.CLAUDE: Claude,
        AgentType.GPT: Gpt,
        AgentType.ECHO: EchoLlm,
    }


def test_execute_api_awaits_the_llm() -> None:
    executor = TaskExecutor(AgentRegistry())
    agent = AgentConfig("echo", AgentType.ECHO)
    result = asyncio.run(executor._execute_api("T", "hi", agent))
    assert (result.status, result.output) == ("success", "HI")
"""

SCRIPTS: dict[str, list[dict[str, Any]]] = {
    "STEP-4.1": [
        edit(
            "taskexec/executor.py",
            IMPORTS,
            IMPORTS + "from .llms import BaseLlm, Claude, EchoLlm, Gemini, Gpt\n",
        ),
        {"text": "executor.py imports the LLM classes"},
    ],
    "STEP-4.2": [
        edit(
            "taskexec/executor.py",
            "    def __init__(self, registry: AgentRegistry) -> None:\n"
            "        self.registry = registry\n",
            FACTORY,
        ),
        {"text": "TaskExecutor._llm_factory maps every AgentType"},
    ],
    "STEP-4.3": [
        edit("taskexec/executor.py", OLD_API, NEW_API),
        {"text": "done"},  # the check fails: the tests still call execute() synchronously
        write("tests/test_executor.py", ASYNC_TESTS),
        edit(
            "taskexec/orchestrator.py",
            "        result = self.executor.execute(task_id, prompt, agent)\n",
            "        result = asyncio.run(self.executor.execute(task_id, prompt, agent))\n",
        ),
        edit(
            "taskexec/orchestrator.py",
            "from .executor import",
            "import asyncio\n\nfrom .executor import",
        ),
        {"text": "_execute_api awaits the LLM; tests updated"},
    ],
    "STEP-4.4": [
        edit(
            "taskexec/orchestrator.py",
            "    def execute_task(self, task_id: str, prompt: str, agent: str)"
            " -> ExecutionResult:\n"
            "        result = asyncio.run(self.executor.execute(task_id, prompt, agent))\n",
            "    async def execute_task(\n"
            "        self, task_id: str, prompt: str, agent: str\n"
            "    ) -> ExecutionResult:\n"
            "        result = await self.executor.execute(task_id, prompt, agent)\n",
        ),
        edit(
            "tests/test_orchestrator.py",
            '    result = orchestrator.execute_task("T1", "hello", "echo")\n',
            '    result = asyncio.run(orchestrator.execute_task("T1", "hello", "echo"))\n',
        ),
        edit(
            "tests/test_orchestrator.py",
            "from taskexec.agents",
            "import asyncio\n\nfrom taskexec.agents",
        ),
        {"text": "execute_task is async"},
    ],
    "STEP-4.5": [
        edit("taskexec/executor.py", SCRIPT_METHOD, ""),
        edit(
            "taskexec/executor.py",
            'SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"\n\n\n',
            "",
        ),
        delete(
            "scripts/execute_echo.py",
            "scripts/execute_gemini.py",
            "scripts/execute_claude.py",
            "scripts/execute_gpt.py",
        ),
        {"text": "_get_execution_script and the scripts are gone"},
    ],
    "STEP-4.6": [
        write(
            "docs/agent-review.md",
            "# AgentConfig review\n\nAgentConfig carries model, api_key, temperature and "
            "max_tokens: what the LLM classes need.\n",
        ),
        {"text": "AgentConfig is complete"},
    ],
    "STEP-4.7": [
        write("tests/test_llm_factory.py", FACTORY_TESTS),
        {"text": "the factory and _execute_api are tested"},
    ],
}


def test_the_example_runs_offline_and_refactors_its_repository(tmp_path: Path) -> None:
    work = tmp_path / "refactor"
    shutil.copytree(EXAMPLE, work)
    repo = work / "repo"
    git_out(repo, "init", "-q", "-b", "main")
    git_out(repo, "add", "-A")
    git_out(repo, "commit", "-qm", "before the refactor")
    spec = yaml.safe_load((work / "coditect.yaml").read_text())
    tools = spec["agents"]["claude"]["tools"]
    spec["agents"]["offline"] = {
        "type": "custom",
        "provider": "scripted",
        "tools": tools,
        "options": {"tasks": SCRIPTS},
    }
    spec["defaults"]["agent"] = "offline"
    for task in spec["tasks"]:  # the checks run this interpreter (it has pytest)
        task["checks"] = [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]]
    (work / "coditect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    done = subprocess.run(
        [*scripted_argv(), "run", str(work / "coditect.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=scripted_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert {t["status"] for t in result["tasks"]} == {"completed"}

    branch = "coditect/refactor-example"
    merges = git_out(repo, "rev-list", "--merges", branch).split()
    assert len(merges) == 7
    executor = git_out(repo, "show", f"{branch}:taskexec/executor.py")
    assert "async def _execute_api" in executor
    assert "_get_execution_script" not in executor
    assert "scripts/" not in git_out(repo, "ls-tree", "-r", "--name-only", branch)
    # the integration branch's code passes its tests
    check = tmp_path / "check"
    git_out(repo, "worktree", "add", "-q", str(check), branch)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=check,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout
    assert "6 passed" in tests.stdout
    # the checks: STEP-4.3's first answer was sent back once
    show = subprocess.run(
        [*scripted_argv(), "show", str(work / "coditect.yaml"), "STEP-4.3", "--json"],
        capture_output=True,
        text=True,
        env=scripted_env(),
        check=False,
    )
    checks = json.loads(show.stdout)["checks"]
    assert [c["passed"] for c in checks] == [False, True]
    assert git_out(repo, "status", "--porcelain") == ""
