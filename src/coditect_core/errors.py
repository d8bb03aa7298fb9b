"""Every exception coditect-core raises, in one tree.

Callers branch on these types, never on message text. Errors from provider SDKs are mapped to
this tree at the provider boundary (``raise LlmXxxError(...) from sdk_error``); no raw SDK
exception escapes a provider. Messages never contain an API key.

::

    CoditectError
    ├── LlmError                       anything that went wrong talking to a model
    │   ├── LlmConfigurationError      bad settings, missing key, unknown provider (before any I/O)
    │   │   ├── LlmNotInstalledError   the provider's SDK extra is not installed
    │   │   └── LlmJournalMissError    a replayed request is not in the call journal
    │   ├── LlmAuthenticationError     401: the key was refused
    │   ├── LlmPermissionError         403: the key may not use this model or resource
    │   ├── LlmRequestError            400/404/422: the request itself is wrong (incl. bad messages)
    │   │   └── LlmContextLengthError  the prompt does not fit the model's context window
    │   ├── LlmRateLimitError          429: slow down; ``retry_after`` seconds when the server said
    │   ├── LlmTimeoutError            no answer within the timeout                      (retryable)
    │   ├── LlmConnectionError         the connection failed or was reset                (retryable)
    │   │   └── LlmWorkerLostError     the process running the request died (a Ray worker)
    │   ├── LlmServerError             5xx, 529 overloaded                               (retryable)
    │   ├── LlmContentFilterError      the provider refused or filtered the content
    │   └── LlmResponseError           malformed, empty or truncated response            (retryable)
    │       └── LlmOutputValidationError  a typed output invalid after its re-asks (not retried)
    ├── ProjectFileError               a project file is invalid (names file, line, field, value)
    ├── SchedulingError                bad task graph: unknown dependency, cycle, duplicate id
    ├── AgentError                     an agent is unknown, disabled or misconfigured
    ├── RunnerError                    a runner cannot be used: unknown, extra missing, no cluster
    │   └── ClusterConnectionError     this driver cannot connect to the Ray cluster at ``address``
    │       ├── ClusterUnreachableError     nothing answers there (within the connection timeout)
    │       ├── ClusterAuthenticationError  refused: no token, or not the cluster's token
    │       └── ClusterVersionError         the cluster runs another Ray or Python version
    ├── ToolError                      a tool could not be run (names the tool)
    │   ├── ToolArgumentsError         the model's arguments do not fit the tool's schema
    │   ├── PathConfinementError       a path leads outside the directory a tool is confined to
    │   └── ToolsetError               a tool source failed: an MCP server that will not start,
    │                                  died or hangs (names the server)
    ├── AgentLoopError                 an agent's tool loop stopped at a bound (``limit``:
    │                                  max_turns, max_tool_calls, budget)
    ├── StateError                     the state database is unusable, locked, or foreign
    │   └── RunLockedError             another live run holds the project's lock
    └── WorkAtRiskError                refused: it would replace recorded work (say ``--force``)

Every ``LlmError`` carries ``provider`` (e.g. ``"openai-gpt"``), ``status_code`` (HTTP status
where there was one), ``retryable`` (whether the same call may succeed if tried again) and
``attempts`` (how many requests were made before giving up).
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentLoopError",
    "ClusterAuthenticationError",
    "ClusterConnectionError",
    "ClusterUnreachableError",
    "ClusterVersionError",
    "CoditectError",
    "LlmAuthenticationError",
    "LlmConfigurationError",
    "LlmConnectionError",
    "LlmContentFilterError",
    "LlmContextLengthError",
    "LlmError",
    "LlmJournalMissError",
    "LlmNotInstalledError",
    "LlmOutputValidationError",
    "LlmPermissionError",
    "LlmRateLimitError",
    "LlmRequestError",
    "LlmResponseError",
    "LlmServerError",
    "LlmTimeoutError",
    "LlmWorkerLostError",
    "PathConfinementError",
    "ProjectFileError",
    "RunLockedError",
    "RunnerError",
    "SchedulingError",
    "StateError",
    "ToolArgumentsError",
    "ToolError",
    "ToolsetError",
    "WorkAtRiskError",
]


class CoditectError(Exception):
    """Root of every error raised by coditect-core.

    Errors pickle with all their attributes (Ray and multiprocessing send them between processes),
    whatever their constructor's signature.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[CoditectError], args: tuple[object, ...], state: dict[str, object]
) -> CoditectError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class LlmError(CoditectError):
    """A call to a model failed.

    ``retryable`` is a class default that an instance may override (a 408 request timeout is a
    request error that may be retried, for example).
    """

    retryable: bool = False
    attempts: int = 1  # set by the retry policy on the error it finally raises

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = f"[{self.provider}] " if self.provider else ""
        code = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{where}{self.message}{code}"

    def __repr__(self) -> str:
        extra = "".join(
            f", {name}={getattr(self, name)!r}"
            for name in ("provider", "status_code", "retry_after")
            if getattr(self, name, None) is not None
        )
        return f"{type(self).__name__}({self.message!r}{extra})"


class LlmConfigurationError(LlmError):
    """Settings are wrong or incomplete (missing key, bad model path, unknown provider).

    Raised before any network traffic.
    """


class LlmNotInstalledError(LlmConfigurationError):
    """The SDK a provider needs is not installed; the message names the extra to install."""


class LlmJournalMissError(LlmConfigurationError):
    """A replay (``coditect run --replay``) met a request that is not in the call journal: no
    request is sent, the task fails (or falls back, as the recorded run may have)."""


class LlmAuthenticationError(LlmError):
    """The provider refused the credentials (HTTP 401)."""


class LlmPermissionError(LlmError):
    """The credentials may not use this model or resource (HTTP 403)."""


class LlmRequestError(LlmError):
    """The request is invalid: bad messages, unknown model, bad parameter (HTTP 400/404/422)."""


class LlmContextLengthError(LlmRequestError):
    """The prompt (plus the requested completion) does not fit the model's context window."""


class LlmRateLimitError(LlmError):
    """The provider asked us to slow down (HTTP 429).

    ``retry_after`` is the delay in seconds the server asked for, when it said one.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = 429,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status_code=status_code, retryable=retryable)
        self.retry_after = retry_after


class LlmTimeoutError(LlmError):
    """No complete answer arrived within the timeout."""

    retryable = True


class LlmConnectionError(LlmError):
    """The connection could not be made, or was dropped mid-call."""

    retryable = True


class LlmWorkerLostError(LlmConnectionError):
    """The process running the request (a Ray worker or actor, its node) died: the request may
    be sent again, to another one. ``lost`` says what was lost, as the runner saw it."""

    def __init__(self, message: str, *, lost: str = "", provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.lost = lost


class LlmServerError(LlmError):
    """The provider failed on its side (HTTP 5xx, Anthropic's 529 overloaded)."""

    retryable = True


class LlmContentFilterError(LlmError):
    """The provider refused or filtered the prompt or the completion."""


class LlmResponseError(LlmError):
    """The response could not be used: malformed body, no text, or a stream cut short."""

    retryable = True


class LlmOutputValidationError(LlmResponseError):
    """A typed output (``output_schema``) did not parse or validate, re-asks included.

    ``errors`` are the last reply's validation errors (each naming where), ``reply`` is that
    reply's text (a tool call's arguments), ``tries`` how many calls were made. Not retried by
    the ordinary retry loop: its own re-asks were the retries.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        errors: list[str],
        reply: str,
        tries: int,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, retryable=False)
        self.errors = list(errors)
        self.reply = reply
        self.tries = tries


class ProjectFileError(CoditectError):
    """A project file is invalid. The message names the file, the line, the field and the value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path or "<project>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}")


class SchedulingError(CoditectError):
    """The task graph cannot be scheduled: unknown dependency, duplicate id or cycle."""


class AgentError(CoditectError):
    """An agent is unknown, disabled, or its configuration is unusable."""


class RunnerError(CoditectError):
    """A runner cannot be used: unknown name, its extra is not installed, no cluster to reach."""


class ClusterConnectionError(RunnerError):
    """This driver cannot connect to the Ray cluster at ``address`` (as given, or as Ray
    resolved it); the message says why and what to do."""

    def __init__(self, message: str, *, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address


class ClusterUnreachableError(ClusterConnectionError):
    """No Ray cluster answers at the address: nothing listens there, or nothing answered within
    the connection timeout."""


class ClusterAuthenticationError(ClusterConnectionError):
    """The cluster refused this driver: it has token authentication on, and the driver sent no
    token (``RAY_AUTH_MODE`` is not ``token``), or not the cluster's (``RAY_AUTH_TOKEN``)."""


class ClusterVersionError(ClusterConnectionError):
    """The cluster runs another Ray (or Python) version than this driver; ``cluster`` and
    ``driver`` are ``(ray, python)`` version pairs."""

    def __init__(
        self,
        message: str,
        *,
        address: str | None = None,
        cluster: tuple[str, str] | None = None,
        driver: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message, address=address)
        self.cluster = cluster
        self.driver = driver


class ToolError(CoditectError):
    """A tool could not be run; ``tool`` names it. The agent loop hands the message to the model
    as an error result rather than failing the task."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class ToolArgumentsError(ToolError):
    """The arguments a model gave do not fit the tool's schema (the message lists what is
    wrong, for the model to fix)."""


class PathConfinementError(ToolError):
    """A path given to a tool leads outside the directory it is confined to (``..``, an absolute
    path elsewhere, a symlink out, a NUL byte, ``.git``)."""


class ToolsetError(ToolError):
    """A source of tools failed as a whole: an MCP server that does not start, dies or hangs.
    ``toolset`` names it."""

    def __init__(self, message: str, *, toolset: str, tool: str | None = None) -> None:
        super().__init__(message, tool=tool)
        self.toolset = toolset


class AgentLoopError(CoditectError):
    """An agent's tool loop stopped before the model answered: a bound was reached. ``limit``
    names it (``max_turns``, ``max_tool_calls``, ``budget``); the message says so."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class StateError(CoditectError):
    """The state database cannot be used: corrupt, foreign, or from a newer version."""


class WorkAtRiskError(CoditectError):
    """Refused, nothing written: the action would replace work already recorded (a task's
    output) with nothing; the message says what and how to insist (``--force``)."""


class RunLockedError(StateError):
    """Another live process is running this project; a second run is refused."""
