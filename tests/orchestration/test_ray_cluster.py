"""``coditect`` on a real Ray cluster of two nodes on this machine, started as the README says.

The cluster (``tests/support/ray_nodes.py``): ``ray start --head --block`` and ``ray start
--address ... --block``, token authentication on, one CPU each, every node a child process that
this module ends by its pid (never ``ray stop``), in a temp dir and on ports of its own. The
drivers are ``coditect`` processes with the README's variables (``RAY_AUTH_MODE=token``,
``RAY_AUTH_TOKEN``), or without them.

Which node made a request: each node's ``ray start`` has its own ``OPENAI_BASE_URL`` (a path on
one stub: ``/head/v1`` or ``/node/v1``), and the project's agent names no ``base_url``, so the
OpenAI client a worker builds sends to its node's path.

The test that ends the second node mid-run comes last: the module's cluster has one node after it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import coditect_argv, fake_project
from ray_nodes import RayNodes, free_port
from stub_server import StubServer

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="Ray is not installed: pip install 'coditect-core[ray]'",
    ),
    pytest.mark.slow,
]

KEY = "sk-test-0123456789"
TASK_ID = re.compile(r"# Task (T\d+)")


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(latency=0.2) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(stub: StubServer) -> Iterator[RayNodes]:
    with RayNodes(cpus_per_node=1) as nodes:
        nodes.start_head(env={"OPENAI_BASE_URL": f"{stub.url}/head/v1"})
        nodes.add_node(env={"OPENAI_BASE_URL": f"{stub.url}/node/v1"})
        yield nodes


def _project(folder: Path, tasks: int, **agents: dict[str, Any]) -> Path:
    """``tasks`` tasks in layers of 8 (each needs one task of the layer before), on agent
    ``gpt`` (OpenAI, no base_url: each node's own) asking a quarter of a CPU per request."""
    gpt = {
        "type": "openai-gpt",
        "model": "gpt-4o-mini",
        "api_key": KEY,
        "timeout": 20,
        "resources": {"num_cpus": 0.25},
        "options": {"retry": {"max_attempts": 6, "initial_delay": 0.2, "max_delay": 1.0}},
    }
    spec = {
        "project": "on-a-cluster",
        "defaults": {"agent": "gpt", "max_concurrency": 8},
        "agents": {"gpt": gpt, **agents},
        "tasks": [
            {
                "id": f"T{i:02d}",
                "title": f"Step {i}",
                "description": f"Do step {i}.",
                **({"dependencies": [f"T{i - 8:02d}"]} if i >= 8 else {}),
            }
            for i in range(tasks)
        ],
    }
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _driver_env(cluster: RayNodes, *, token: bool = True, **extra: str) -> dict[str, str]:
    env = cluster.driver_env(token=token, COLUMNS="200", TERM="dumb", **extra)
    for name in ("FORCE_COLOR", "NO_COLOR"):
        env.pop(name, None)
    return env


def _coditect(*args: str | Path, env: dict[str, str], timeout: float = 110) -> Any:
    return subprocess.run(
        [*coditect_argv(), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _requests_by_task(stub: StubServer) -> dict[str, list[str]]:
    """Task id -> the path prefix (``/head`` or ``/node``) of each of its requests, in order."""
    out: dict[str, list[str]] = {}
    for request in list(stub.requests):
        found = TASK_ID.search(request.body["messages"][-1]["content"])
        assert found, request.body
        out.setdefault(found.group(1), []).append(request.path.split("/v1/")[0])
    return out


def test_a_40_task_project_runs_on_both_nodes(
    cluster: RayNodes, stub: StubServer, tmp_path: Path
) -> None:
    stub.clear()
    project = _project(tmp_path, 40)
    done = _coditect(
        "run", project, "--ray-address", cluster.address, "--json", env=_driver_env(cluster)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["counts"]["completed"] == 40
    by_task = _requests_by_task(stub)
    assert sorted(by_task) == [f"T{i:02d}" for i in range(40)]
    assert all(len(paths) == 1 for paths in by_task.values()), by_task  # one request each
    assert stub.reply_count == 40
    seen = Counter(paths[0] for paths in by_task.values())
    assert set(seen) == {"/head", "/node"}, seen  # requests from both nodes


def test_doctor_checks_the_cluster_and_where_each_agent_fits(
    cluster: RayNodes, tmp_path: Path
) -> None:
    import ray

    gpu = {"type": "openai-gpt", "model": "m", "api_key": KEY, "resources": {"num_gpus": 1}}
    project = _project(tmp_path, 2, gpu=gpu)
    spec = yaml.safe_load(project.read_text(encoding="utf-8"))
    spec["tasks"][1]["agent"] = "gpu"
    project.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    done = _coditect(
        "doctor", project, "--ray-address", cluster.address, "--json", env=_driver_env(cluster)
    )
    assert done.returncode == 1, done.stderr[-3000:]  # the gpu agent fits nowhere
    report = json.loads(done.stdout)["ray"]
    assert report["connected"] is True
    assert report["cluster"]["ray"] == report["driver"]["ray"] == ray.__version__
    assert len(report["nodes"]) == 2
    assert sum(node["head"] for node in report["nodes"]) == 1
    assert all(node["resources"]["CPU"] == 1 for node in report["nodes"])
    fits = {a["agent"]: a for a in report["agents"]}
    assert fits["gpt"]["needs"] == {"num_cpus": 0.25}
    assert len(fits["gpt"]["nodes"]) == 2
    assert fits["gpu"]["nodes"] == []
    assert any("gpu" in p and "GPU" in p for p in report["problems"]), report["problems"]

    spec["agents"].pop("gpu")
    spec["tasks"][1].pop("agent")
    project.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    done = _coditect("doctor", project, "--ray-address", cluster.address, env=_driver_env(cluster))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 nodes" in done.stdout


def test_a_driver_without_the_token_is_refused_before_anything_runs(
    cluster: RayNodes, stub: StubServer, tmp_path: Path
) -> None:
    stub.clear()
    project = _project(tmp_path, 3)
    started = time.monotonic()
    done = _coditect(
        "run", project, "--ray-address", cluster.address, env=_driver_env(cluster, token=False)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "refused this driver" in message, message
    assert "RAY_AUTH_MODE=token" in message
    assert "RAY_AUTH_TOKEN" in message
    assert "ray get-auth-token" in message
    assert time.monotonic() - started < 30  # not Ray's 20 retries and more
    assert not (tmp_path / ".coditect").exists()  # no state written
    assert stub.request_count == 0  # nothing ran

    wrong = _driver_env(cluster, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    done = _coditect("run", project, "--ray-address", cluster.address, env=wrong)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refused this driver's token" in " ".join(done.stderr.split())
    assert not (tmp_path / ".coditect").exists()
    assert stub.request_count == 0


def test_a_stale_ray_current_cluster_is_not_joined(cluster: RayNodes, tmp_path: Path) -> None:
    """A cluster that ``ray start`` recorded is gone: without an address the run starts a Ray of
    its own and finishes; with that dead address it fails within the connection timeout."""
    ray_tmp = cluster.root / "stale"  # short: Ray's socket paths must fit in 107 bytes
    dead = f"127.0.0.1:{free_port()}"
    (ray_tmp / "ray").mkdir(parents=True)
    (ray_tmp / "ray" / "ray_current_cluster").write_text(dead)
    (ray_tmp / "home").mkdir()  # the run's own Ray writes its token there
    env = _driver_env(cluster, token=False, RAY_TMPDIR=str(ray_tmp), HOME=str(ray_tmp / "home"))
    project = fake_project(tmp_path)

    done = _coditect("run", project, "--runner", "ray", "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["counts"]["completed"] == 7

    started = time.monotonic()
    done = _coditect("run", project, "--ray-address", dead, "--restart", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Ray cluster at" in done.stderr
    assert "connection refused" in done.stderr
    assert time.monotonic() - started < 30


# --------------------------------------------------------------------- without a cluster


def test_no_address_means_a_ray_of_the_runs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from coditect_core.orchestration.runners._ray_cluster import cluster_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(None) is None
    assert cluster_address("local") is None
    assert cluster_address(" 10.0.0.1:6379 ") == "10.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert cluster_address(None) == "10.0.0.2:6379"
    assert cluster_address("auto") == "auto"


def test_nothing_at_the_address_fails_at_once_and_says_so() -> None:
    from coditect_core.errors import ClusterUnreachableError
    from coditect_core.orchestration.runners.ray import RayRunner

    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterUnreachableError, match="nothing listens there"):
        RayRunner(dead, connect_timeout=5).check()
    assert time.monotonic() - started < 5
    with pytest.raises(ClusterUnreachableError, match="not a Ray address"):
        RayRunner("no-port-here", connect_timeout=5).check()


def test_something_that_is_not_ray_fails_within_the_connection_timeout() -> None:
    import socket

    from coditect_core.errors import ClusterUnreachableError
    from coditect_core.orchestration.runners.ray import RayRunner

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("", 0))  # every interface: Ray resolves 127.0.0.1 to this host's address
        silent.listen()
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError, match="within 2s"):
            RayRunner(f"127.0.0.1:{silent.getsockname()[1]}", connect_timeout=2).check()
        assert time.monotonic() - started < 6


def test_a_version_mismatch_names_both_versions() -> None:
    from coditect_core.errors import ClusterVersionError
    from coditect_core.orchestration.runners._ray_cluster import (
        ClusterInfo,
        _same_versions,
        connect_error,
    )

    info = ClusterInfo("10.0.0.1:6379", "2.52.0", "3.11.7", driver=("2.60.0", "3.11.7"))
    with pytest.raises(ClusterVersionError) as raised:
        _same_versions(info, "10.0.0.1:6379")
    message = str(raised.value)
    assert "runs Ray 2.52.0 on Python 3.11.7" in message
    assert "this driver has Ray 2.60.0 on Python 3.11.7" in message
    assert "pip install 'ray==2.52.0'" in message
    assert (raised.value.cluster, raised.value.driver) == (("2.52.0", "3.11.7"), info.driver)
    other_python = ClusterInfo("h:1", "2.60.0", "3.12.1", driver=("2.60.0", "3.11.7"))
    with pytest.raises(ClusterVersionError, match=r"run the driver on Python 3\.12\.1"):
        _same_versions(other_python, "h:1")
    _same_versions(ClusterInfo("h:1", "2.60.0", "3.11.7", driver=("2.60.0", "3.11.7")), "h:1")

    import ray

    said_by_ray = RuntimeError(
        "Version mismatch: The cluster was started with:\n    Ray: 2.52.0\n    Python: 3.11.7\n"
        "This process on node 10.0.0.2 was started with:\n    Ray: 2.60.0\n    Python: 3.11.7\n"
    )
    error = connect_error(ray, "10.0.0.1:6379", said_by_ray)
    assert isinstance(error, ClusterVersionError)
    assert "Ray: 2.52.0" in str(error)
    assert "Ray: 2.60.0" in str(error)


def test_ray_init_refusing_the_token_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    from coditect_core.errors import ClusterAuthenticationError, ClusterUnreachableError
    from coditect_core.orchestration.runners._ray_cluster import connect_error

    refused = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    refused.__cause__ = RuntimeError(
        "Failed to connect to GCS. Last connection error: ... ray.exceptions."
        "AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing"
    )
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    error = connect_error(ray, "10.0.0.1:6379", refused)
    assert isinstance(error, ClusterAuthenticationError)
    assert "sent no token" in str(error)
    assert "RAY_AUTH_MODE=token" in str(error)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "refused this driver's token" in str(connect_error(ray, "h:1", refused))
    gone = connect_error(ray, "h:1", ConnectionError("Failed to connect to Ray cluster at h:1"))
    assert isinstance(gone, ClusterUnreachableError)


# --------------------------------------------------------------------- last: a node lost


def test_a_node_lost_mid_run_has_its_requests_retried_on_the_head(
    cluster: RayNodes, stub: StubServer, tmp_path: Path
) -> None:
    """Last in this module: it ends the cluster's second node."""
    from coditect_core.store import StateStore

    stub.clear()
    stub.latency = 1.5  # requests stay in flight long enough to be lost
    project = _project(tmp_path, 24)
    driver = subprocess.Popen(
        [*coditect_argv(), "run", str(project), "--ray-address", cluster.address, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_driver_env(cluster),
    )
    try:
        deadline = time.monotonic() + 90
        while sum(r.path.startswith("/node/") for r in list(stub.requests)) < 2:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the second node got no requests"
            time.sleep(0.05)
        cluster.nodes[1].crash()  # the node and the requests it holds
        out, err = driver.communicate(timeout=110)
    finally:
        stub.latency = 0.2
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err[-3000:]
    assert json.loads(out)["counts"]["completed"] == 24

    with StateStore.open(tmp_path / ".coditect" / "state.db", readonly=True) as store:
        attempts = store.attempts("on-a-cluster")
    by_task: dict[str, list[Any]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, []).append(attempt)
    assert len(by_task) == 24
    for task_id, tried in by_task.items():
        assert [a.status for a in tried].count("succeeded") == 1, (task_id, tried)
        assert tried[-1].status == "succeeded"
    lost = {
        task_id: [a for a in tried if a.status == "failed"]
        for task_id, tried in by_task.items()
        if any(a.status == "failed" for a in tried)
    }
    assert lost, ("no request was lost with the node", _requests_by_task(stub), err[-3000:])
    for failed in lost.values():
        for attempt in failed:
            assert "the Ray worker running this request died" in (attempt.error or "")
    requests = _requests_by_task(stub)
    for task_id in lost:
        assert requests[task_id][-1] == "/head", (task_id, requests[task_id])
