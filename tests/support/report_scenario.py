"""A real project run for the report and telemetry tests: a project file, FakeLlm agents, two runs.

``record_scenario`` writes a project file of ``n`` tasks over three agents, loads it with
``load_project``, drives ``ProjectOrchestrator`` twice (the second run resumes the first) and
records both runs into a ``StateStore`` through ``StoreObserver``. Scripted on purpose:

* an LLM-level retry: one task's first call is rate limited (429), the retry succeeds;
* a task that fails in run 1 (its dependents are blocked) and succeeds when run 2 retries it;
* a task that fails in both runs, leaving its dependents blocked;
* a fallback: claude (no retries: ``options: {retry: {max_attempts: 1}}``) fails with a 529
  and the executor falls back to gpt; both attempts are recorded, each with its agent;
* costs: two agents have a ``price`` (the executor's :class:`PriceBook`); the third has none,
  so its cost stays unknown;
* task text that tries to inject script into the HTML report.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coditect_core.errors import (
    LlmContentFilterError,
    LlmRateLimitError,
    LlmRequestError,
    LlmServerError,
)
from coditect_core.llm_abstractions import FakeLlm
from coditect_core.llm_abstractions.pricing import Price, PriceBook
from coditect_core.llm_abstractions.registry import register_llm, unregister_llm
from coditect_core.orchestration import (
    ProjectOrchestrator,
    TaskExecutor,
)
from coditect_core.project import load_project
from coditect_core.store import StateStore
from coditect_core.store.observer import StoreObserver, run_status

PROVIDER = "report-scenario"
SCRIPT_TITLE = "<script>alert(1)</script>"
IMG_TITLE = "<img src=x onerror=\"document.documentElement.dataset.pwned='img'\">"
SCRIPT_TEXT = "</pre><script>document.documentElement.dataset.pwned='pre'</script>"
MODELS = {"claude": "claude-sonnet-4-5", "gpt": "gpt-4o-mini", "local": "smollm2-135m"}
#: USD per million tokens (input, output); "local" has none: its cost is unknown.
PRICES = {"claude": (3.0, 15.0), "gpt": (0.15, 0.60)}
_TASK_ID = re.compile(r"# Task (\S+):")


@dataclass
class Scenario:
    """What the scripted agents do, and what happened (for the tests to check against)."""

    rate_limited: str = ""
    fail_once: str = ""
    fail_always: str = ""
    fallback: str = ""
    run: int = 1
    calls: dict[str, int] = field(default_factory=dict)
    latency: float = 0.03

    def reply(self, agent: str, messages: list[dict[str, str]]) -> str:
        tid = _TASK_ID.search(messages[-1]["content"]).group(1)
        n = self.calls[tid] = self.calls.get(tid, 0) + 1
        if tid == self.rate_limited and n == 1:
            raise LlmRateLimitError("rate limited (scripted)", retry_after=0)
        if tid == self.fail_once and self.run == 1:
            raise LlmRequestError("400 bad request: the prompt was refused (scripted)")
        if tid == self.fail_always:
            raise LlmContentFilterError("the provider filtered the reply (scripted)")
        if tid == self.fallback and agent == "claude":
            raise LlmServerError("529 overloaded (scripted)", status_code=529)
        words = " ".join(f"w{i}" for i in range(10 + (sum(map(ord, tid)) % 40)))
        return f"Result of {tid} by {agent}: {words}"

    def delay(self, messages: list[dict[str, str]]) -> float:
        tid = _TASK_ID.search(messages[-1]["content"]).group(1)
        return self.latency * (1 + sum(map(ord, tid)) % 5)


class ScenarioLlm(FakeLlm):
    """FakeLlm whose replies and latency come from the :class:`Scenario`."""

    provider = PROVIDER

    def __init__(self, *args: Any, scenario: Scenario, agent: str, **kwargs: Any) -> None:
        super().__init__(*args, default=lambda m: scenario.reply(agent, m), **kwargs)
        self.scenario = scenario

    async def _generate(self, client: Any, messages: Any, params: Any) -> Any:
        await asyncio.sleep(self.scenario.delay(messages))
        return await super()._generate(client, messages, params)


def _graph(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    sizes: list[int] = []
    left = n
    while left > 0:
        size = min(left, rng.randint(4, 9) if n <= 100 else rng.randint(20, 70))
        sizes.append(size)
        left -= size
    tasks: list[dict[str, Any]] = []
    levels: list[list[str]] = []
    agents = ["claude", "gpt", "local"]
    k = 0
    for level, size in enumerate(sizes):
        ids = []
        for i in range(size):
            k += 1
            tid = f"T{k:03d}" if n > 99 else f"T{k:02d}"
            deps: list[str] = []
            if level:
                previous = levels[level - 1]
                deps.append(previous[i % len(previous)])
                earlier = [t for lv in levels for t in lv]
                for _ in range(rng.randint(0, 2)):
                    dep = rng.choice(earlier)
                    if dep not in deps:
                        deps.append(dep)
            tasks.append(
                {
                    "id": tid,
                    "title": f"Step {k}: {rng.choice(['Design', 'Build', 'Test', 'Document'])} "
                    f"part {k} of the executor refactor",
                    "description": f"Do part {k}. Deliver code and a short note.",
                    "agent": agents[k % 3],
                    "dependencies": deps,
                }
            )
            ids.append(tid)
        levels.append(ids)
    return tasks


def write_project(path: Path, n: int = 50) -> tuple[Path, Scenario]:
    """Write the project file (agents on the scenario provider); the scenario picks its tasks."""
    tasks = _graph(n)
    scenario = Scenario()
    dependents: dict[str, int] = {}
    for t in tasks:
        for d in t["dependencies"]:
            dependents[d] = dependents.get(d, 0) + 1
    roots = [t for t in tasks if not t["dependencies"]]
    inner = [t for t in tasks if t["dependencies"] and dependents.get(t["id"])]
    roots[1]["title"] = SCRIPT_TITLE
    roots[2]["title"] = IMG_TITLE
    roots[2]["description"] = SCRIPT_TEXT
    scenario.rate_limited = roots[0]["id"]
    scenario.fail_once = inner[0]["id"]
    scenario.fail_always = inner[len(inner) // 2]["id"]
    fallback = next(t for t in tasks[len(tasks) // 2 :] if t["agent"] == "claude")
    scenario.fallback = fallback["id"]
    project = {
        "project": "report-demo",
        "description": "The plan's executor refactor, as a 50-task graph (scripted agents).",
        "defaults": {"agent": "local", "max_concurrency": 4},
        "agents": {
            name: {
                "type": "custom",
                "provider": PROVIDER,
                "model": model,
                **(
                    {"fallbacks": ["gpt"], "options": {"retry": {"max_attempts": 1}}}
                    if name == "claude"
                    else {}
                ),
            }
            for name, model in MODELS.items()
        },
        "tasks": tasks,
    }
    path.write_text(yaml.safe_dump(project, sort_keys=False, allow_unicode=True))
    return path, scenario


@dataclass
class Recorded:
    project_file: Path
    state: Path
    scenario: Scenario
    statuses: list[str]
    """How each run ended, as recorded."""


async def record_scenario(
    directory: Path, n: int = 50, *, latency: float = 0.03, concurrency: int = 4
) -> Recorded:
    """Write the project, run it twice on the scripted agents, record both runs."""
    project_file, scenario = write_project(directory / "project.yaml", n)
    scenario.latency = latency
    project = load_project(project_file)
    for config in project.agents:
        config.provider_options.update(scenario=scenario, agent=config.name)
    register_llm(PROVIDER, ScenarioLlm, replace=True)
    state = directory / ".coditect" / "state.db"
    statuses = []
    try:
        prices = PriceBook({name: Price(*price) for name, price in PRICES.items()})
        executor = TaskExecutor(project.agents, default_agent="local", prices=prices)
        orchestrator = ProjectOrchestrator(executor=executor, name=project.name)
        orchestrator.add_tasks(project.tasks)
        with StateStore.open(state) as store:
            observer: StoreObserver | None = None
            for run_number in (1, 2):
                scenario.run = run_number
                run = await store.begin_run(project.name, options={"max_concurrency": concurrency})
                if observer is None:
                    observer = StoreObserver(store, run.run_id)
                    orchestrator.add_observer(observer)
                observer.run_id = run.run_id
                await observer.define(orchestrator)
                summary = await orchestrator.run(max_concurrency=concurrency)
                statuses.append(run_status(summary))
                await store.finish_run(run.run_id, statuses[-1])
        await orchestrator.aclose()
    finally:
        unregister_llm(PROVIDER)
    return Recorded(project_file, state, scenario, statuses)
