"""Reaching a Ray cluster, for :mod:`.ray`: which one, whether it lets this driver in, what it has.

Which cluster: the address given (``--ray-address``, ``RayRunner(address)``), else
``RAY_ADDRESS``, else none, which means a Ray of the run's own, started for it
(``ray.init(address="local")``), whatever Ray's files say about clusters started earlier. (A
bare ``ray.init()`` would join the cluster that ``ray start`` last recorded in
``ray_current_cluster`` under Ray's temp dir, and retry for minutes when it is gone.)

Before ``ray.init`` joins a cluster, :func:`check_cluster` asks it, within a deadline, what
``ray.init`` finds out slowly (it retries a refused driver for about 20 s, and a dead address for
minutes) or says in words meant for Ray's developers: whether anything answers at the address
(:class:`~coditect_core.errors.ClusterUnreachableError`), whether the cluster lets this driver
in (:class:`~coditect_core.errors.ClusterAuthenticationError`, naming the variables to set),
and whether it runs this driver's Ray and Python
(:class:`~coditect_core.errors.ClusterVersionError`, naming both). It does the first steps of
``ray.init`` itself (resolve the address, load the token, open a GCS client, read the cluster's
metadata) through Ray's internal modules; where a Ray version lacks one of them, the check does
what it can and leaves the rest to ``ray.init``, whose errors :func:`connect_error` maps to the
same types.

The callers import ``ray`` (the ``[ray]`` extra) and pass it in.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import (
    ClusterAuthenticationError,
    ClusterConnectionError,
    ClusterUnreachableError,
    ClusterVersionError,
)

__all__ = [
    "ClusterInfo",
    "NodeInfo",
    "check_cluster",
    "cluster_address",
    "connect_error",
    "log_cluster_messages",
    "nodes",
]

logger = logging.getLogger(__name__)

TOKEN_HINT = (
    "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token (print it with "
    "`ray get-auth-token` on the head node)"
)
_RAY_RESOURCE = {"num_cpus": "CPU", "num_gpus": "GPU"}


@dataclass(frozen=True)
class NodeInfo:
    """One live node of the cluster: its id, address, whether it is the head, and its total
    resources (``CPU``, ``GPU``, ``memory`` in bytes, custom ones)."""

    node_id: str
    address: str
    head: bool
    resources: Mapping[str, float]

    def fits(self, demand: Mapping[str, float]) -> bool:
        """Whether one request (or actor) asking ``demand`` (``num_cpus``, ``num_gpus``) can
        ever run here: the node has at least that much in total."""
        return all(
            self.resources.get(_RAY_RESOURCE[key], 0.0) >= amount
            for key, amount in demand.items()
            if amount
        )


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster as this driver found it: ``address`` (host:port, as Ray resolved it), the Ray
    and Python versions it runs (None when it did not say) and this driver's, and, once
    connected, its live nodes."""

    address: str
    ray_version: str | None
    python_version: str | None
    driver: tuple[str, str]
    nodes: tuple[NodeInfo, ...] = field(default=())


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``; None (also for ``"local"``)
    means a Ray of the run's own."""
    chosen = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    return None if chosen in ("", "local") else chosen


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _auth_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's ``AuthenticationError`` (Ray >= 2.52), else nothing."""
    error = getattr(ray.exceptions, "AuthenticationError", None)
    return (error,) if error is not None else ()


def _refused(where: str) -> str:
    """Why a cluster with token authentication refused this driver, and what to set."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return (
            f"the Ray cluster at {where} refused this driver: it has token authentication on, "
            f"and this driver sent no token; {TOKEN_HINT}"
        )
    return (
        f"the Ray cluster at {where} refused this driver's token (RAY_AUTH_TOKEN, else the "
        "file RAY_AUTH_TOKEN_PATH names, else ~/.ray/auth_token): set RAY_AUTH_TOKEN to that "
        "cluster's token (print it with `ray get-auth-token` on its head node)"
    )


def _resolve(address: str) -> str:
    """``address`` as ``ray.init`` resolves it: ``auto`` to ``RAY_ADDRESS`` or the cluster
    ``ray start`` recorded, a loopback host to this machine's address."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # another Ray: ray.init resolves it
        return address
    try:
        return canonicalize_bootstrap_address(address) or address
    except ConnectionError as error:  # auto, and no cluster recorded or running here
        raise ClusterUnreachableError(
            f"no Ray cluster found for address {address!r}: {_first_line(error)}",
            address=address,
        ) from None
    except ValueError:
        raise ClusterUnreachableError(
            f"{address!r} is not a Ray address: expected HOST:PORT (or auto)", address=address
        ) from None


def _host_port(target: str, address: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachableError(
            f"{address!r} is not a Ray address: expected HOST:PORT (or auto)", address=address
        )
    return host.strip("[]"), int(port)


def _knock(host: str, port: int, where: str, timeout: float) -> None:
    """Something listens at ``host:port``, or :class:`ClusterUnreachableError` (within
    ``timeout``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise ClusterUnreachableError(
            f"no Ray cluster at {where}: nothing listens there (connection refused)",
            address=where,
        ) from None
    except TimeoutError:
        raise ClusterUnreachableError(
            f"no Ray cluster at {where}: no answer within {timeout:g}s", address=where
        ) from None
    except OSError as error:
        raise ClusterUnreachableError(
            f"no Ray cluster at {where}: {error.strerror or error}", address=where
        ) from None


def _load_token(ray: Any, address: str, where: str) -> None:
    """What ``ray.init`` does first: with ``RAY_AUTH_MODE=token``, find the token (a driver in
    token mode without one would otherwise abort inside Ray's C++ client)."""
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray without token authentication
        return
    if address == "auto":  # as ray.init: auto turns token mode on when a token is at hand
        setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        setup.ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    except _auth_errors(ray):
        raise ClusterAuthenticationError(
            f"RAY_AUTH_MODE=token, but this driver has no token for the Ray cluster at {where}: "
            "set RAY_AUTH_TOKEN to the cluster's token (print it with `ray get-auth-token` on "
            "the head node), or put it in ~/.ray/auth_token",
            address=where,
        ) from None


def _ask_gcs(ray: Any, target: str, where: str, deadline: float, timeout: float) -> dict[str, Any]:
    """Open a GCS client on ``target`` (on a thread, waited for until ``deadline``) and read
    the cluster's metadata (``ray_version``, ``python_version``); ``{}`` when this Ray cannot
    say."""
    try:
        from ray._common.usage.usage_lib import get_cluster_metadata
        from ray._raylet import GcsClient  # type: ignore[attr-defined]  # not in Ray's stub
    except ImportError:  # another Ray: ray.init finds out
        return {}
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            client = GcsClient(address=target)
        except Exception as error:  # handed to the waiting thread
            outcome["error"] = error
            return
        try:
            outcome["metadata"] = get_cluster_metadata(client) or {}
        except Exception as error:  # not recorded: ray.init checks the versions itself
            logger.debug("the Ray cluster's metadata could not be read: %s", error)
            outcome["metadata"] = {}

    thread = threading.Thread(target=ask, name="coditect-ray-check", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():  # left to finish on its own (it gives up after Ray's own timeout)
        raise ClusterUnreachableError(
            f"no Ray cluster answered at {where} within {timeout:g}s (something listens there, "
            "but it is not a Ray head node, or it is still starting)",
            address=where,
        )
    error = outcome.get("error")
    if error is None:
        return dict(outcome["metadata"])
    if isinstance(error, _auth_errors(ray)):
        raise ClusterAuthenticationError(_refused(where), address=where)
    if isinstance(error, ray.exceptions.RayError | ConnectionError | OSError | RuntimeError):
        raise ClusterUnreachableError(
            f"no Ray cluster answers at {where}: {_first_line(error)}", address=where
        )
    logger.debug("the Ray connection check could not run (%r): left to ray.init", error)
    return {}


def _same_versions(info: ClusterInfo, where: str) -> None:
    """:class:`ClusterVersionError` unless the cluster runs this driver's Ray, and its Python
    to the level Ray requires (``RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL``, default ``patch``)."""
    if info.ray_version is None or info.python_version is None:
        return
    ray_version, python_version = info.driver
    level = os.environ.get("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", "patch")
    parts = 2 if level == "minor" else 3
    same_python = info.python_version.split(".")[:parts] == python_version.split(".")[:parts]
    if info.ray_version == ray_version and same_python:
        return
    fixes = []
    if info.ray_version != ray_version:
        fixes.append(f"install Ray {info.ray_version} here (pip install 'ray=={info.ray_version}')")
    if not same_python:
        fixes.append(f"run the driver on Python {info.python_version}")
    raise ClusterVersionError(
        f"the Ray cluster at {where} runs Ray {info.ray_version} on Python "
        f"{info.python_version}, and this driver has Ray {ray_version} on Python "
        f"{python_version}; the driver and every node need the same: {' and '.join(fixes)}, "
        "or start the cluster with this driver's versions",
        address=where,
        cluster=(info.ray_version, info.python_version),
        driver=info.driver,
    )


def check_cluster(ray: Any, address: str, timeout: float) -> ClusterInfo:
    """Whether the cluster at ``address`` answers, lets this driver in and runs its Ray and
    Python, all within ``timeout`` seconds; its :class:`ClusterInfo` (without nodes), else a
    :class:`~coditect_core.errors.ClusterConnectionError` that says why."""
    deadline = time.monotonic() + timeout
    target = _resolve(address)
    where = target if target == address else f"{target} (address {address})"
    host, port = _host_port(target, address)
    _knock(host, port, where, timeout)
    _load_token(ray, address, where)
    metadata = _ask_gcs(ray, target, where, deadline, timeout)
    info = ClusterInfo(
        target,
        metadata.get("ray_version"),
        metadata.get("python_version"),
        driver=(ray.__version__, platform.python_version()),
    )
    _same_versions(info, where)
    return info


def connect_error(ray: Any, address: str, error: BaseException) -> ClusterConnectionError:
    """The error to raise when ``ray.init(address=...)`` failed with ``error``: Ray says why
    only in its messages, which are read here, at the boundary, and nowhere else."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    auth = _auth_errors(ray)
    if any(isinstance(e, auth) or "InvalidAuthToken" in str(e) for e in chain):
        return ClusterAuthenticationError(_refused(address), address=address)
    mismatch = next((e for e in chain if "Version mismatch" in str(e)), None)
    if mismatch is not None:  # Ray's message names both versions, one per line
        said = " ".join(line.strip() for line in str(mismatch).splitlines() if line.strip())
        return ClusterVersionError(
            f"the Ray cluster at {address} runs another version than this driver ({said}); "
            "the driver and every node need the same Ray and Python",
            address=address,
        )
    if isinstance(error, ConnectionError):
        return ClusterUnreachableError(
            f"no Ray cluster answers at {address}: {_first_line(error)}", address=address
        )
    return ClusterConnectionError(
        f"cannot connect to the Ray cluster at {address}: {_first_line(error)}", address=address
    )


def nodes(ray: Any) -> tuple[NodeInfo, ...]:
    """The live nodes of the cluster this process is connected to, the head first."""
    found = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = dict(node.get("Resources") or {})
        found.append(
            NodeInfo(
                node_id=str(node.get("NodeID", "")),
                address=str(node.get("NodeManagerAddress", "")),
                head="node:__internal_head__" in resources,
                resources={k: float(v) for k, v in resources.items() if not k.startswith("node:")},
            )
        )
    return tuple(sorted(found, key=lambda node: not node.head))  # the head first


def log_cluster_messages() -> Callable[[], None]:
    """Send the messages a Ray driver gets from the cluster (a node marked dead, a worker
    killed) to this module's log as warnings, instead of the driver's standard output, where
    ``coditect run --json`` writes its document. Returns what undoes it.

    Ray prints them from a thread of its own through ``ray._private.worker.print_to_stdstream``
    (as ``pid`` ``"raylet"``), whatever ``log_to_driver`` says; that function is wrapped here
    for as long as this runner's connection lasts. Worker logs (``log_to_driver=True``) pass
    through as before."""
    try:
        from ray._private import worker
    except ImportError:
        return lambda: None
    original = getattr(worker, "print_to_stdstream", None)
    if original is None:  # another Ray: left as it is
        return lambda: None

    def to_log(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            original(data, ignore_prefix)
            return
        for line in data.get("lines") or []:
            logger.warning("from the Ray cluster: %s", str(line).strip())

    worker.print_to_stdstream = to_log

    def restore() -> None:
        if worker.print_to_stdstream is to_log:
            worker.print_to_stdstream = original

    return restore
