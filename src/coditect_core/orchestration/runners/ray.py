"""``RayRunner``: every model request runs on a Ray cluster; everything else stays on the driver.

What runs where:

* On the driver, as on one machine: the orchestrator (what runs and when, the run's
  ``max_concurrency``, budgets, the single writer of the durable state) and the executor (prompt
  building, retries, fallbacks, timeouts, each agent's rate limits and 429 pauses, costs).
* On the cluster: each request to a model, one Ray task per request. An agent backed by a heavy
  model (type ``local`` or ``meta-llama``, or any agent named in ``actor_agents``) gets one Ray
  actor, created on its first request and reused by every later one, so its model is loaded once
  per actor. A worker keeps the LLMs it built, so an agent's client (its connection pool) is
  made once per worker process.

Because every limit is applied on the driver before a request is sent, caps, rate limits and
budgets hold across the cluster exactly as on one machine. ``resources`` (per agent:
``num_cpus``, ``num_gpus``) place the agent's tasks, or its actor (default: 1 CPU, Ray's
default). ``cli`` and ``script`` agents run their commands on the driver, and ``interactive``
ones make no call at all.

The executor builds each agent's request pipeline on the driver on top of :meth:`RayRunner.open`,
which gives a :class:`RayLlm`: its one request is sent to Ray with the agent's :class:`LlmSpec`
(class and settings), from which the worker builds the real LLM once. The driver still builds
the real LLM too, never to call it, so that settings are checked and the key looked up as on one
machine. Before the first request, :meth:`RayRunner.warm_up` builds the agents' clients on the
workers, as the local runner imports the SDKs before a run.

A request whose worker process (or actor, or node) dies fails with a retryable
:class:`LlmConnectionError` that says so: the executor retries it like a dropped connection (on
another worker; an actor is restarted by Ray, up to ``max_actor_restarts`` times), so the
attempt history records the lost request (an :class:`LlmWorkerLostError`), and the task's
result notes it too: ``metadata["ray"] = {"lost_calls": n, "lost": [...]}``. Cancelling a
request cancels its Ray task.

API keys reach workers inside the pickled LLM spec, put in the object store under an anonymous id,
as :class:`~coditect_core.secrets.Secret` values whose ``repr`` is masked: never in
a task or actor name, a runtime environment (which Ray's dashboard shows) or a log line. With
``send_keys=False`` no key leaves the driver: each worker then reads the provider's variable
(``OPENAI_API_KEY``...) from its own environment, set on the node before its ``ray start``.

Which cluster: ``address``, else ``RAY_ADDRESS``, else a Ray of the run's own, started on this
machine (``address="local"``: never the cluster that ``ray start`` recorded earlier, which may be
gone). A cluster is checked before it is joined, within ``connect_timeout``
(:mod:`._ray_cluster`); a cluster with token authentication (Ray >= 2.52; on by default for new
clusters in recent Ray) lets the driver in when it has ``RAY_AUTH_MODE=token`` and the
cluster's token (``RAY_AUTH_TOKEN``, or ``~/.ray/auth_token``).

``ray`` is imported on first use only (the ``[ray]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import platform
import time
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import (
    CoditectError,
    LlmConfigurationError,
    LlmResponseError,
    LlmTimeoutError,
    LlmWorkerLostError,
    RunnerError,
)
from ...llm_abstractions.base_llm import (
    BaseLlm,
    CallParams,
    LlmResponse,
    StreamState,
    output_modes_of,
)
from ...llm_abstractions.messages import Message, Messages, normalize_messages
from ...llm_abstractions.output import OutputMode
from ...llm_abstractions.spec import LlmSpec
from ..agent_registry import AgentConfig, AgentInterface, AgentType
from ._ray_cluster import (
    ClusterInfo,
    check_cluster,
    cluster_address,
    connect_error,
    log_cluster_messages,
    nodes,
)
from ._worker import AgentActor, run_llm_call, warm_worker
from .base import Runner

if TYPE_CHECKING:
    from ..executor import TaskExecutor

__all__ = ["HEAVY_MODEL_TYPES", "ClusterInfo", "RayLlm", "RayRunner"]

logger = logging.getLogger(__name__)

HEAVY_MODEL_TYPES = frozenset({AgentType.LOCAL, AgentType.META_LLAMA})
"""Agent types whose requests run in a per-agent actor (the model is loaded once per actor)."""

INSTALL_HINT = "pip install 'coditect-core[ray]'"
_RESOURCE_KEYS = ("num_cpus", "num_gpus")
_CLOSE_TIMEOUT = 10.0  # seconds the actors get to close their clients before they are killed
_WARM_WORKERS = 16  # at most this many worker processes are warmed up before the first request
_WARM_HOLD = 0.5  # seconds a warm-up task keeps its worker, so that the others go elsewhere
_TIMEOUT_GRACE = 5.0  # seconds the driver waits past a request's timeout for the worker's answer
CONNECT_TIMEOUT = 20.0
"""Seconds a driver gives a cluster to answer, let it in and say its versions (the default)."""


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise RunnerError(f"the ray runner needs Ray: {INSTALL_HINT}") from error


def _resource_options(value: Any) -> dict[str, float]:
    """``{"num_cpus": ..., "num_gpus": ...}`` from a mapping or an object with those fields."""
    if value is None:
        return {}
    out: dict[str, float] = {}
    for key in _RESOURCE_KEYS:
        got = value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)
        if got is not None:
            if isinstance(got, bool) or not isinstance(got, int | float) or got < 0:
                raise RunnerError(f"resources: {key} must be a number >= 0, got {got!r}")
            out[key] = got
    return out


def _tool_options(params: CallParams) -> dict[str, Any]:
    """A call's ``tools`` and ``tool_choice`` as keyword arguments again (those it has)."""
    options: dict[str, Any] = {}
    if params.tools:
        options["tools"] = list(params.tools)
    if params.tool_choice is not None:
        options["tool_choice"] = params.tool_choice
    return options


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class RayLlm(BaseLlm):
    """An agent's LLM whose requests run on Ray: in a worker, or in the agent's actor.

    Made by :meth:`RayRunner.open`. ``local`` is the same LLM built on the driver (settings
    checked, key looked up), never called; its settings are this one's. It may be ``None`` when
    it cannot be built here but can be where the requests run (a model file on the GPU nodes
    only, a key only in the workers' environment). A request's timeout (and deadline) holds on
    the driver too: past it (and a grace period for the worker's own timeout to answer), the Ray
    request is cancelled.
    """

    api_key_env = ()

    def __init__(
        self,
        runner: RayRunner,
        agent: str,
        spec: LlmSpec,
        *,
        on_actor: bool,
        local: BaseLlm | None,
    ) -> None:
        self.provider = spec.cls.provider
        self.supports_tools = spec.cls.supports_tools
        if local is not None:
            super().__init__(
                local.model,
                timeout=local.timeout,
                base_url=local.base_url,
                max_tokens=local.max_tokens,
                temperature=local.temperature,
                retry=local.retry,
            )
        else:  # the settings as given (the real class was not built here)
            settings = spec.settings
            super().__init__(
                spec.model or spec.cls.default_model or f"{self.provider}-default",
                timeout=settings.get("timeout"),
                base_url=settings.get("base_url"),
                max_tokens=settings.get("max_tokens"),
                temperature=settings.get("temperature"),
                retry=settings.get("retry"),
            )
        self.runner = runner
        self.agent = agent
        self.spec = spec
        self.on_actor = on_actor
        self._box: list[Any] = []  # [ObjectRef of the spec], once put in the object store

    async def request_async(
        self, messages: Messages, *, deadline: float | None = None, **kwargs: Any
    ) -> LlmResponse:
        msgs = normalize_messages(messages, provider=self.provider)
        timeout = kwargs.get("timeout", self.timeout)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LlmTimeoutError("the deadline passed first", provider=self.provider)
            timeout = left if timeout is None else min(timeout, left)
            kwargs = {**kwargs, "timeout": timeout}
        try:
            async with asyncio.timeout(None if timeout is None else timeout + _TIMEOUT_GRACE):
                return await self.runner.send(self, msgs, kwargs)
        except TimeoutError:
            raise LlmTimeoutError(
                f"no answer within {timeout:g}s", provider=self.provider
            ) from None

    def output_modes(self) -> tuple[OutputMode, ...]:
        """The typed-output modes of the provider class the requests run on."""
        return output_modes_of(self.spec.cls)

    def box(self) -> list[Any]:
        """``[ObjectRef of the spec]``: put in Ray's object store once, passed by reference."""
        if not self._box:
            self._box.append(self.runner.put(self.spec))
        return self._box

    def prepare(self) -> None:
        """Nothing to make on the driver: the clients live where the requests run."""

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        raise NotImplementedError("a RayLlm's requests go through request_async")

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        response = await self.request_async(
            messages,
            model=params.model,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            **_tool_options(params),
            **params.options,
        )  # one delta: the whole reply
        state.usage, state.finish_reason, state.model = (
            response.usage,
            response.finish_reason,
            response.model,
        )
        state.tool_calls = list(response.tool_calls)
        yield response.text

    def __repr__(self) -> str:
        where = "actor" if self.on_actor else "tasks"
        return f"RayLlm({self.spec.cls.__name__}, agent={self.agent!r}, on={where})"


class RayRunner(Runner):
    """Sends requests to the Ray cluster at ``address`` (else ``RAY_ADDRESS``), else to a Ray of
    its own, started for the run on this machine (never a cluster Ray's files recorded earlier).
    If Ray is already initialised in this process, that connection is used and left open;
    otherwise :meth:`start` calls ``ray.init`` (with ``init_options``) and :meth:`aclose` shuts it
    down. Before joining a cluster, :meth:`check` makes sure, within ``connect_timeout`` seconds,
    that it answers, lets this driver in (token authentication) and runs this driver's Ray and
    Python, and says which of these failed (:class:`~coditect_core.errors.ClusterConnectionError`).
    Worker logs are not copied to the driver's terminal unless ``init_options`` says
    ``log_to_driver=True``.
    """

    name: ClassVar[str] = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        resources: Mapping[str, Any] | None = None,
        actor_agents: Collection[str] = (),
        send_keys: bool = True,
        max_actor_restarts: int = 3,
        actor_restart_timeout: float = 120.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_actor_restarts < 0:
            raise RunnerError("max_actor_restarts must be >= 0")
        if connect_timeout <= 0:
            raise RunnerError("connect_timeout must be > 0")
        self.address = address
        self.resources = {name: _resource_options(v) for name, v in (resources or {}).items()}
        self.actor_agents = frozenset(actor_agents)
        self.send_keys = send_keys
        self.max_actor_restarts = max_actor_restarts
        self.actor_restart_timeout = actor_restart_timeout
        self.connect_timeout = connect_timeout
        self.init_options = dict(init_options or {})
        self.cluster: ClusterInfo | None = None
        """The cluster as :meth:`check` found it (None before, and for a Ray of its own)."""
        self._ray: Any = None
        self._owns_ray = False
        self._unlog: Callable[[], None] | None = None  # undoes log_cluster_messages()
        self._task_fn: Any = None
        self._warm_fn: Any = None
        self._actor_cls: Any = None
        self._task_fns: dict[str, Any] = {}
        self._actors: dict[str, Any] = {}
        self._suspect: set[str] = set()  # actors that lost a request: check before reusing
        self._warm: weakref.WeakKeyDictionary[TaskExecutor, asyncio.Future[None]] = (
            weakref.WeakKeyDictionary()
        )  # each executor's warm-up, started once
        self._system_errors: tuple[type[BaseException], ...] = ()

    def __repr__(self) -> str:
        where = cluster_address(self.address) or "local"
        return f"RayRunner(address={where!r}, actors={sorted(self._actors)!r})"

    # ------------------------------------------------------------------ connection

    def check(self) -> None:
        """Ray is installed, and the cluster to join (``address``, else ``RAY_ADDRESS``), if
        any, answers, lets this driver in and runs its Ray and Python: all within
        ``connect_timeout`` seconds, without joining it. Raises
        :class:`~coditect_core.errors.ClusterUnreachableError`,
        :class:`~coditect_core.errors.ClusterAuthenticationError` (naming the variables to
        set) or :class:`~coditect_core.errors.ClusterVersionError` (naming both versions).
        Without an address there is nothing to reach: :meth:`start` starts the run's own Ray."""
        ray = _import_ray()
        address = cluster_address(self.address)
        if address is not None and not ray.is_initialized():
            self.cluster = check_cluster(ray, address, self.connect_timeout)

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, **self.init_options}
            address = cluster_address(self.address)
            if address is None:  # a Ray of this run's own, whatever Ray recorded earlier
                options.setdefault("address", "local")
            else:  # checked first: bounded, and the failure said in the user's terms
                self.cluster = check_cluster(ray, address, self.connect_timeout)
                options["address"] = self.cluster.address
            logger.info("connecting to Ray (%s)", address or "a Ray of this run's own")
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                if address is None:
                    raise RunnerError(f"cannot start Ray on this machine: {error}") from error
                raise connect_error(ray, address, error) from error
            self._owns_ray = True
            self._unlog = log_cluster_messages()
        exc = ray.exceptions
        self._system_errors = (
            exc.WorkerCrashedError,
            exc.RayActorError,
            exc.NodeDiedError,
            exc.ObjectLostError,
            exc.LocalRayletDiedError,
        )
        self._task_fn = ray.remote(max_retries=0)(run_llm_call)
        self._warm_fn = ray.remote(max_retries=0)(warm_worker)
        self._actor_cls = ray.remote(AgentActor)
        self._ray = ray
        return ray

    async def aclose(self) -> None:
        """Kill the agent actors; shut Ray down if this runner started it."""
        ray, self._ray = self._ray, None
        if ray is None:
            return
        actors, self._actors = list(self._actors.values()), {}
        self._task_fns.clear()
        self._suspect.clear()
        if actors:
            closing = asyncio.gather(
                *(actor.aclose.remote() for actor in actors), return_exceptions=True
            )
            try:
                await asyncio.wait_for(closing, _CLOSE_TIMEOUT)
            except TimeoutError:
                logger.warning("agent actors did not close their clients in time; killing them")
            for actor in actors:
                ray.kill(actor, no_restart=True)
        if self._owns_ray:
            self._owns_ray = False
            await asyncio.to_thread(ray.shutdown)
            unlog, self._unlog = self._unlog, None
            if unlog is not None:
                unlog()

    # ------------------------------------------------------------------ placement

    def uses_actor(self, agent: AgentConfig) -> bool:
        """Whether ``agent``'s requests run in its actor (heavy model) rather than as tasks."""
        if agent.name in self.actor_agents:
            return True
        if agent.interface not in (AgentInterface.API, AgentInterface.HYBRID):
            return False
        kind = agent.agent_type
        if kind is AgentType.CUSTOM and agent.provider:
            try:
                kind = AgentType(agent.provider)
            except ValueError:
                return False
        return kind in HEAVY_MODEL_TYPES

    def actor(self, agent: str | AgentConfig) -> Any:
        """The Ray actor handle of ``agent`` (created on first use)."""
        name = agent if isinstance(agent, str) else agent.name
        handle = self._actors.get(name)
        if handle is None:
            self._connect()
            options = self.demand(name)
            handle = self._actor_cls.options(
                max_restarts=self.max_actor_restarts, max_task_retries=0, **options
            ).remote(name)
            self._actors[name] = handle
            logger.info("started the Ray actor of agent %s (%s)", name, options)
        return handle

    def demand(self, agent: str) -> dict[str, float]:
        """What one request of ``agent`` (or its actor) reserves on a node: its ``resources``,
        else one CPU (Ray's default)."""
        return {"num_cpus": 1, **self.resources.get(agent, {})}

    def _task_for(self, agent: str) -> Any:
        fn = self._task_fns.get(agent)
        if fn is None:
            fn = self._task_fns[agent] = self._task_fn.options(**self.demand(agent))
        return fn

    def describe(self) -> ClusterInfo:
        """The cluster this runner sends requests to, connected (:meth:`start` without the
        warm-up): its address, Ray and Python versions, and live nodes with their resources."""
        ray = self._connect()
        info = self.cluster or ClusterInfo(
            str(ray.get_runtime_context().gcs_address),
            ray.__version__,
            platform.python_version(),
            driver=(ray.__version__, platform.python_version()),
        )
        return dataclasses.replace(info, nodes=nodes(ray))

    def open(self, agent: AgentConfig, spec: LlmSpec) -> BaseLlm:
        """A :class:`RayLlm` for ``agent``: its requests go to Ray with ``spec``.

        The real LLM is built here first, as on one machine, so that bad settings and a missing
        key are reported here; except that an agent on an actor may need what only its nodes
        have (a model file), and with ``send_keys=False`` the key is the workers' to find.
        """
        on_actor = self.uses_actor(agent)
        try:
            local = spec.build()
        except LlmConfigurationError:
            if not (on_actor or not self.send_keys):
                raise
            local = None
        key = None
        if self.send_keys:  # the key found here (given, or from this environment) travels
            key = spec.api_key or (local.api_key if local is not None else None)
        return RayLlm(
            self, agent.name, dataclasses.replace(spec, api_key=key), on_actor=on_actor, local=local
        )

    def put(self, value: Any) -> Any:
        """``value`` in Ray's object store; its reference."""
        return self._connect().put(value)

    # ------------------------------------------------------------------ execution

    async def start(self, executor: TaskExecutor | None = None) -> None:
        """Connect to the cluster (or start a local one; this blocks while Ray starts), and
        warm ``executor``'s agents up there (:meth:`warm_up`), once."""
        self._connect()
        if executor is not None:
            await self._warmed(executor)

    async def _warmed(self, executor: TaskExecutor) -> None:
        """Wait for the warm-up of ``executor``'s agents (started by the first caller)."""
        warm = self._warm.get(executor)
        if warm is None:
            warm = self._warm[executor] = asyncio.ensure_future(self.warm_up(executor))
        await asyncio.shield(warm)

    async def warm_up(self, executor: TaskExecutor) -> None:
        """Before the first request: on as many worker processes as the cluster has CPUs (at
        most 16), build the agents' LLMs and clients (the SDK imports). A request then costs the
        same from the first one on, and a rate limit paced on the driver is not bunched by
        workers still starting. Actors are left to their first request (an agent no task uses
        holds no CPU or GPU). Failures are left to the requests to report."""
        ray = self._connect()
        boxes: list[list[Any]] = []
        for agent in executor.registry.list(enabled_only=True):
            if agent.interface not in (AgentInterface.API, AgentInterface.HYBRID):
                continue
            if self.uses_actor(agent):
                continue
            try:
                llm = executor.get_llm(agent)
            except (CoditectError, ValueError, OSError, ImportError) as error:
                logger.debug("agent %s not warmed up: %s", agent.name, error)
                continue
            if isinstance(llm, RayLlm):
                boxes.append(llm.box())
        if not boxes:
            return
        cpus = int(ray.cluster_resources().get("CPU", 1))
        warming = [
            self._warm_fn.remote(boxes, _WARM_HOLD) for _ in range(max(1, min(cpus, _WARM_WORKERS)))
        ]
        done = await asyncio.gather(*warming, return_exceptions=True)
        pids = {pid for pid in done if isinstance(pid, int)}
        logger.info("warmed %d Ray worker(s) up for %d LLM(s)", len(pids), len(boxes))

    async def send(
        self, llm: RayLlm, messages: list[Message], kwargs: dict[str, Any]
    ) -> LlmResponse:
        """One request of ``llm`` on the cluster: its answer, or the error it raised there."""
        ray = self._connect()
        box = llm.box()
        agent = llm.agent
        if llm.on_actor:
            handle = await self._actor_ready(agent)
            ref = handle.generate.remote(box, messages, kwargs)
        else:
            ref = self._task_for(agent).remote(box, messages, kwargs)
        try:
            outcome = await ref
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
            raise
        except self._system_errors as error:
            raise self._lost(llm, error) from None
        except ray.exceptions.RayError as error:  # the worker code itself failed: a bug
            logger.error("a request of agent %s failed on Ray: %s", agent, error)
            raise LlmResponseError(
                f"the request failed on Ray: {_first_line(error)}",
                provider=llm.provider,
                retryable=False,
            ) from None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _lost(self, llm: RayLlm, error: BaseException) -> LlmWorkerLostError:
        """A request whose worker (or actor, or node) died: say so, and that it can be retried."""
        what = _first_line(error)
        where = f"actor of agent {llm.agent}" if llm.on_actor else "worker"
        if llm.on_actor:
            if isinstance(error, self._ray.exceptions.ActorDiedError):
                self._actors.pop(llm.agent, None)  # no restart left: a new actor next time
            else:
                self._suspect.add(llm.agent)
        logger.warning("the Ray %s running a request died: %s", where, what)
        return LlmWorkerLostError(
            f"the Ray {where} running this request died ({what}); it can be retried on "
            "another worker",
            lost=what,
            provider=llm.provider,
        )

    async def _actor_ready(self, agent: str) -> Any:
        """The agent's actor, after waiting for Ray to restart it if it lost a request."""
        handle = self.actor(agent)
        if agent not in self._suspect:
            return handle
        exc = self._ray.exceptions
        delay = 0.05
        try:
            async with asyncio.timeout(self.actor_restart_timeout):
                while True:
                    try:
                        await handle.__ray_ready__.remote()
                        break
                    except exc.ActorUnavailableError:  # restarting: requests fail fast meanwhile
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
        except (TimeoutError, exc.RayActorError) as why:
            logger.warning("the actor of agent %s did not come back (%s): replacing it", agent, why)
            self._actors.pop(agent, None)
            with contextlib.suppress(Exception):
                self._ray.kill(handle, no_restart=True)
            handle = self.actor(agent)
        self._suspect.discard(agent)
        return handle
