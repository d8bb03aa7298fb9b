"""A Ray cluster of several nodes on this machine, started as the README says: ``ray start
--head --block`` on the head, ``ray start --address HEAD --block`` on each other node, token
authentication on, the token made with ``ray get-auth-token --generate``.

Each node is a child process leading a session of its own, ended by its pid (SIGTERM to ``ray
start``, then SIGKILL to whatever is left in its session, workers included): never ``ray
stop``, which ends every Ray process on the machine (other people's test runs included).
Everything else is private to one :class:`RayNodes` too, so that two runs on one machine never
meet: a temp dir holding Ray's temp dir (``RAY_TMPDIR``, where
``ray_current_cluster`` is written), the head's home (whose ``~/.ray/auth_token`` is this
cluster's token) and the drivers' home (no token file: a driver has the token from its
environment or not at all); free ports for everything Ray would otherwise put on fixed ones; one
CPU and a small object store per node.

    with RayNodes() as cluster:
        cluster.start_head()
        cluster.add_node(env={"OPENAI_BASE_URL": ...})
        subprocess.run([...], env=cluster.driver_env())
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RayNode", "RayNodes", "free_port", "ray_command"]

START_TIMEOUT = 90.0  # seconds a node may take to start on a loaded 2-core machine
END_TIMEOUT = 10.0  # seconds a node gets to end after SIGTERM, before SIGKILL
OBJECT_STORE_BYTES = 100 * 1024 * 1024
# What a node or driver must not inherit from the process that starts it (a test run may have
# set them, or Ray's own ray.init in this process: it sets RAY_AUTH_MODE=token).
_RAY_VARIABLES = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_command() -> list[str]:
    """The ``ray`` command of this Python's environment."""
    script = Path(sys.executable).with_name("ray")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@dataclass
class RayNode:
    """One ``ray start --block`` process (the leader of its session) and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self) -> None:
        """SIGTERM to ``ray start`` (it ends its node's processes; a SIGTERM to all of them at
        once would leave it waiting), then SIGKILL to whatever is left of its session."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(END_TIMEOUT)
        self.crash()

    def crash(self) -> None:
        """SIGKILL to every process of the node, at once, as when its machine dies: those of
        its session (``ray start`` leads a session of its own; Ray puts each worker in a
        process group of its own, in that session)."""
        for _ in range(5):  # again, for a process started meanwhile
            members = _session(self.pid)
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (Linux: read from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == sid and _alive(int(entry)):
                    members.append(int(entry))
    return members


def _alive(pid: int) -> bool:
    """Not a zombie (an ended process its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


class RayNodes:
    """A head node and other nodes, on this machine, with token authentication."""

    def __init__(self, cpus_per_node: int = 1) -> None:
        self.cpus_per_node = cpus_per_node
        base = "/tmp" if os.path.isdir("/tmp") else None  # Ray's socket paths must stay short
        self.root = Path(tempfile.mkdtemp(prefix="coditect-ray-", dir=base))
        self.ray_tmp = self.root / "r"
        self.head_home = self.root / "head-home"
        self.driver_home = self.root / "driver-home"
        for folder in (self.ray_tmp, self.head_home, self.driver_home):
            folder.mkdir()
        self.port = free_port()
        self.token = ""
        self.nodes: list[RayNode] = []

    @property
    def address(self) -> str:
        """The head's address, as the README writes it (``HEAD_IP:PORT``)."""
        return f"127.0.0.1:{self.port}"

    def _env(self, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _RAY_VARIABLES}
        env.update(HOME=str(home), RAY_TMPDIR=str(self.ray_tmp), PYTHONUNBUFFERED="1")
        env.update(extra or {})
        return env

    def driver_env(self, *, token: bool = True, **extra: str) -> dict[str, str]:
        """The environment of a driver (``coditect run``): the README's two variables with
        ``token``, else none of them (and no token file in its home either)."""
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token} if token else {}
        return self._env(self.driver_home, {**auth, **extra})

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> RayNode:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    *ray_command(),
                    "start",
                    *args,
                    "--block",
                    f"--num-cpus={self.cpus_per_node}",
                    f"--object-store-memory={OBJECT_STORE_BYTES}",
                    f"--dashboard-agent-listen-port={free_port()}",
                    "--min-worker-port=0",
                    "--max-worker-port=0",
                    "--disable-usage-stats",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own session: its processes are found by its pid
            )
        node = RayNode(name, process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Ray runtime started" in text:
                return node
            if not node.alive():
                raise RuntimeError(f"ray start ({name}) exited {process.returncode}:\n{text}")
            time.sleep(0.2)
        raise RuntimeError(f"ray start ({name}) not ready in {START_TIMEOUT:g}s:\n{text}")

    def start_head(self, env: dict[str, str] | None = None) -> RayNode:
        """``ray get-auth-token --generate`` then ``RAY_AUTH_MODE=token ray start --head``."""
        made = subprocess.run(
            [*ray_command(), "get-auth-token", "--generate"],
            env=self._env(self.head_home),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        self.token = made.stdout.strip()
        assert self.token, made.stderr
        return self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
            ],
            self._env(self.head_home, {"RAY_AUTH_MODE": "token", **(env or {})}),
        )

    def add_node(self, env: dict[str, str] | None = None) -> RayNode:
        """``RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... ray start --address HEAD``, as on another
        machine (its home holds no token file: the token comes from the variable)."""
        home = self.root / f"node{len(self.nodes)}-home"
        home.mkdir()
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        return self._start(
            f"node{len(self.nodes)}",
            [f"--address={self.address}"],
            self._env(home, {**auth, **(env or {})}),
        )

    def close(self) -> None:
        """End every node (other nodes first, the head last) and remove the temp dir."""
        for node in reversed(self.nodes):
            node.end()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RayNodes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
