"""The worker side of the Ray runner: one model request, made inside a Ray worker or actor.

Private to :mod:`.ray`. The driver sends an :class:`~coditect_core.llm_abstractions.spec.LlmSpec`
(the agent's LLM class and settings) once per agent, by object reference; a worker
builds the real LLM from it on first use and keeps it, so that an agent's client (and its
connection pool, or its loaded model) is made once per worker process and reused.

A request is one attempt: the worker's LLM makes no retries (the driver's executor drives them,
through the agent's limits), and a failure comes back as the :class:`LlmError` it is.

* A Ray *task* (:func:`run_llm_call`) is a plain function: the request's coroutine runs on one
  event loop per worker process, kept on a daemon thread, and the task waits for it.
  ``ray.cancel`` interrupts the wait with ``KeyboardInterrupt``; the request is cancelled then.
* An *agent actor* (:class:`AgentActor`) is an asyncio actor holding the LLMs of one agent for
  its whole life: an agent with a heavy model (``local``, ``meta-llama``) loads it once per actor.

The API key travels inside the spec as a :class:`~coditect_core.secrets.Secret` (masked
``repr``); building the LLM registers it with :mod:`coditect_core.secrets`, and this worker's log
handlers mask it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from ...errors import LlmError
from ...llm_abstractions.base_llm import BaseLlm, LlmResponse
from ...llm_abstractions.messages import Message
from ...llm_abstractions.spec import LlmSpec
from ...secrets import RedactingFilter

__all__ = ["AgentActor", "run_llm_call", "warm_worker"]

logger = logging.getLogger(__name__)

_CANCEL_CHECK_S = 0.2  # how soon a waiting task notices ray.cancel
_MAX_LLMS = 64  # LLM instances kept per worker process (least recently used dropped first)

Outcome = LlmResponse | LlmError


def _redact_worker_logs() -> None:
    """Mask secrets in whatever this worker process logs (Ray keeps worker logs in files)."""
    root = logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        root.addHandler(console)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


async def _request(llm: BaseLlm, messages: list[Message], kwargs: dict[str, Any]) -> Outcome:
    try:
        return await llm.request_async(messages, **kwargs)  # one request: the driver retries
    except LlmError as error:  # sent back as a value: Ray would wrap a raised one
        return error


class _Process:
    """This worker process's event loop thread and LLMs (by spec id, least recently used out)."""

    def __init__(self) -> None:
        _redact_worker_logs()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="coditect-ray-loop", daemon=True
        )
        self.thread.start()
        self.llms: OrderedDict[str, BaseLlm] = OrderedDict()
        self.lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, Outcome]) -> Outcome:
        """Run ``coro`` on the loop thread and wait; ``KeyboardInterrupt`` (ray.cancel) cancels."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            while True:
                # A timed wait: ray.cancel raises KeyboardInterrupt through interrupt_main(),
                # which only lands when this thread runs Python code again.
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    return future.result(timeout=_CANCEL_CHECK_S)
        except KeyboardInterrupt:
            future.cancel()
            raise

    def llm(self, ref: Any, fetch: Any) -> BaseLlm:
        """The LLM of spec ``ref``, built from ``fetch(ref)`` on first use."""
        key = ref.hex()
        with self.lock:
            llm = self.llms.get(key)
            if llm is not None:
                self.llms.move_to_end(key)
                return llm
            llm = self.llms[key] = fetch(ref).build()
            while len(self.llms) > _MAX_LLMS:
                _, old = self.llms.popitem(last=False)
                asyncio.run_coroutine_threadsafe(old.aclose(), self.loop)
            return llm


_process: _Process | None = None
_process_lock = threading.Lock()


def _this_process() -> _Process:
    global _process
    with _process_lock:
        if _process is None:
            _process = _Process()
        return _process


def run_llm_call(spec_box: list[Any], messages: list[Message], kwargs: dict[str, Any]) -> Outcome:
    """The body of one Ray task: one request of the LLM described by ``spec_box``.

    ``spec_box`` is ``[ObjectRef of an LlmSpec]`` (in a list, so that Ray passes the reference
    rather than the value: the spec is fetched once per worker process, not once per call).
    """
    import ray

    process = _this_process()
    llm = process.llm(spec_box[0], ray.get)
    return process.run(_request(llm, messages, kwargs))


async def _make_client(llm: BaseLlm) -> None:
    llm.prepare()  # the SDK import and the client, on the loop that will use them


def warm_worker(spec_boxes: list[list[Any]], hold: float) -> int:
    """Build the LLMs of ``spec_boxes`` and their clients in this worker process (the SDK
    imports happen now, not during a request), then hold the worker ``hold`` seconds so that
    the other warm-up tasks land on other workers. Returns this process's id."""
    import ray

    process = _this_process()
    for box in spec_boxes:
        try:
            process.run(_make_client(process.llm(box[0], ray.get)))  # type: ignore[arg-type]
        except Exception as error:  # the request will report it
            logger.debug("warm-up of an LLM failed: %s", error)
    time.sleep(hold)
    return os.getpid()


class AgentActor:
    """One agent's home on the cluster: its LLMs, and so its loaded model, live as long as it.

    Requests run concurrently on the actor's event loop (a local model still serialises them on
    its own worker thread). ``stats()`` tells which process it is and how much it did.
    """

    def __init__(self, agent: str) -> None:
        _redact_worker_logs()
        self.agent = agent
        self.llms: dict[str, BaseLlm] = {}
        self.calls = 0

    async def _llm(self, ref: Any) -> BaseLlm:
        key = ref.hex()
        llm = self.llms.get(key)
        if llm is None:
            spec: LlmSpec = await ref
            llm = self.llms.get(key)  # another request may have built it meanwhile
            if llm is None:
                llm = self.llms[key] = spec.build()
        return llm

    async def generate(
        self, spec_box: list[Any], messages: list[Message], kwargs: dict[str, Any]
    ) -> Outcome:
        """One request of the LLM described by ``spec_box``, in this actor."""
        llm = await self._llm(spec_box[0])
        self.calls += 1
        return await _request(llm, messages, kwargs)

    def stats(self) -> dict[str, Any]:
        """``{"agent", "pid", "calls", "llms"}`` of this actor (since its last restart)."""
        return {
            "agent": self.agent,
            "pid": os.getpid(),
            "calls": self.calls,
            "llms": len(self.llms),
        }

    async def aclose(self) -> None:
        """Close the LLMs' clients (before the actor is killed)."""
        llms = list(self.llms.values())
        self.llms.clear()
        await asyncio.gather(*(llm.aclose() for llm in llms), return_exceptions=True)
