"""The one place a process-wide observer of model calls plugs in (tracing, metrics).

:meth:`BaseLlm.generate_async` and the streams of :meth:`BaseLlm.stream_content_async` report
each call here: when it starts, each attempt that failed (retried or not), and how it ended. With
no instrumentation installed, they report to a no-op. :mod:`coditect_core.telemetry` installs one
that makes OpenTelemetry spans; this package itself never imports OpenTelemetry.

An instrumentation is an object with one method, ``start_call(llm, messages, options, stream)``,
returning a :class:`CallObserver` for that call. The observer's ``current()`` context manager is
entered while the call runs, so that anything the call does (a nested call) happens inside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LlmError

if TYPE_CHECKING:
    from .base_llm import BaseLlm
    from .datatypes import LlmResponse
    from .messages import Message

__all__ = [
    "CallObserver",
    "Instrumentation",
    "install",
    "installed",
    "observed",
    "start_call",
    "uninstall",
]


class CallObserver(Protocol):
    """What an instrumentation hears of one call."""

    def current(self) -> contextlib.AbstractContextManager[None]:
        """Entered while the call runs."""
        ...

    def attempt_failed(self, error: LlmError, attempt: int) -> None:
        """An attempt of the call failed with ``error`` (it may be retried)."""

    def finished(self, response: LlmResponse) -> None:
        """The call succeeded with ``response``."""

    def failed(self, error: BaseException) -> None:
        """The call failed (after its retries) or was cancelled."""


class Instrumentation(Protocol):
    """A process-wide observer of model calls."""

    def start_call(
        self, llm: BaseLlm, messages: list[Message], options: Mapping[str, Any], stream: bool
    ) -> CallObserver:
        """A call of ``llm`` begins (``options``: the call's keyword arguments)."""
        ...


class _Unobserved:
    """The observer of every call while no instrumentation is installed."""

    def current(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def attempt_failed(self, error: LlmError, attempt: int) -> None:
        pass

    def finished(self, response: LlmResponse) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass


_UNOBSERVED = _Unobserved()
_installed: Instrumentation | None = None


def install(instrumentation: Instrumentation) -> None:
    """Report every later call to ``instrumentation`` (replacing any installed before)."""
    global _installed
    _installed = instrumentation


def uninstall() -> Instrumentation | None:
    """Stop reporting calls; returns the instrumentation that was installed."""
    global _installed
    previous, _installed = _installed, None
    return previous


def installed() -> Instrumentation | None:
    """The instrumentation calls are reported to, if any."""
    return _installed


def start_call(
    llm: BaseLlm, messages: list[Message], options: Mapping[str, Any], *, stream: bool
) -> CallObserver:
    """The observer of a call that begins now (a no-op one when nothing is installed)."""
    if _installed is None:
        return _UNOBSERVED
    return _installed.start_call(llm, messages, options, stream)


@contextlib.contextmanager
def observed(observer: CallObserver) -> Iterator[None]:
    """Run the body as the call ``observer`` watches: inside its context, failures reported."""
    with observer.current():
        try:
            yield
        except BaseException as error:
            observer.failed(error)
            raise
