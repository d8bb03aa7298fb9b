"""The legacy ``execute_*.py`` protocol, kept so that old scripts run while they are migrated.

The script reads one JSON object on stdin (the task, its prompt and messages, the agent's model
and options; never a key) and prints one JSON object on stdout::

    {"status": "success" | "failed", "output": "...", "error": "...",
     "model": "...", "usage": {"prompt_tokens": 12, "completion_tokens": 34}}

Token counts may also be given at the top level, or as ``input_tokens`` / ``output_tokens`` /
``tokens_used``. Exit codes: 0 ok, 1 execution error, 2 configuration error, 3 bad task.
Anything else (other exit codes, a signal, missing or malformed JSON) is a failure whose error
says what the script did. :class:`ScriptLlm` runs a script as the innermost LLM of a ``script``
agent's request pipeline (so that its runs are retried, limited and priced like any request).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LlmConfigurationError, LlmResponseError
from ..llm_abstractions.base_llm import CallParams, LlmResponse, Usage
from ..llm_abstractions.command import CommandLlm, describe_exit, stderr_tail
from ..llm_abstractions.messages import Message
from ..llm_abstractions.process import OutputBuffer
from ..secrets import mask
from .agent_registry import AgentConfig
from .prompts import UpstreamOutput
from .task import AgentTask

__all__ = [
    "EXIT_BAD_TASK",
    "EXIT_CONFIGURATION_ERROR",
    "EXIT_EXECUTION_ERROR",
    "EXIT_OK",
    "PROTOCOL_VERSION",
    "STDOUT_PER_OUTPUT_BYTE",
    "ScriptLlm",
    "ScriptOutcome",
    "parse_script_result",
    "script_payload",
]

PROTOCOL_VERSION = 1
EXIT_OK = 0
EXIT_EXECUTION_ERROR = 1
EXIT_CONFIGURATION_ERROR = 2
EXIT_BAD_TASK = 3

_EXIT_MEANING = {
    EXIT_EXECUTION_ERROR: "execution error",
    EXIT_CONFIGURATION_ERROR: "configuration error",
    EXIT_BAD_TASK: "the script rejected the task",
}
_OK_STATUSES = {"success", "succeeded", "ok", "completed", "complete", "done"}
_FAILED_STATUSES = {"failed", "failure", "error", "errored"}
_OUTPUT_KEYS = ("output", "result", "response", "text", "content")

STDOUT_PER_OUTPUT_BYTE = 4
"""A script's stdout may hold this many bytes per byte its output may keep: JSON escapes make a
text up to 2 (newlines, CJK as ``\\uXXXX``) or 3 (emoji) times longer."""


@dataclass(slots=True)
class ScriptOutcome:
    """A script run read through the protocol."""

    ok: bool
    output: str | None = None
    error: str | None = None
    model: str | None = None
    usage: Usage | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def script_payload(
    task: AgentTask,
    agent: AgentConfig,
    messages: Sequence[Message],
    upstream: Sequence[UpstreamOutput] = (),
) -> dict[str, Any]:
    """The JSON object a script reads on stdin. The task's fields are at the top level, as the
    old scripts expect, with the rendered prompt, the messages and the agent's settings."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    return {
        "protocol_version": PROTOCOL_VERSION,
        **task.to_dict(),
        "prompt": user,
        "system_prompt": system,
        "messages": [dict(m) for m in messages],
        "context": [{"task_id": u.task_id, "title": u.title, "output": u.output} for u in upstream],
        "agent": agent.name,
        "model": agent.model,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
        "options": dict(agent.provider_options),
    }


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _usage(data: Mapping[str, Any]) -> Usage | None:
    source: Mapping[str, Any] = data
    for key in ("usage", "tokens", "token_usage"):
        if isinstance(data.get(key), Mapping):
            source = data[key]
            break
    prompt = _int(source.get("prompt_tokens", source.get("input_tokens")))
    completion = _int(source.get("completion_tokens", source.get("output_tokens")))
    total = _int(source.get("total_tokens", source.get("tokens_used")))
    if prompt is None and completion is None and total is None:
        return None
    return Usage(prompt or 0, completion or 0, total if total is not None else -1)


def _decode(stdout: bytes) -> tuple[Any, str | None]:
    """The JSON value of stdout (or of its last non-empty line, after log lines), or an error."""
    text = stdout.decode("utf-8", errors="replace").strip()
    if not text:
        return None, "the script printed nothing on stdout (expected a JSON object)"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        first_error = error
    last_line = text.splitlines()[-1].strip()
    if last_line != text:
        try:
            return json.loads(last_line), None
        except json.JSONDecodeError:
            pass
    excerpt = text if len(text) <= 200 else text[:200] + "..."
    return None, (
        f"the script printed malformed JSON on stdout ({first_error.msg} at line "
        f"{first_error.lineno} column {first_error.colno}): {excerpt!r}"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_script_result(
    returncode: int, stdout: bytes, stderr: bytes, *, stderr_chars: int = 2000
) -> ScriptOutcome:
    """Read a finished script's exit status and output through the protocol."""
    data, decode_error = _decode(stdout)
    if decode_error is None and not isinstance(data, dict):
        decode_error = f"the script's JSON result must be an object, not {type(data).__name__}"
        data = None
    tail = stderr_tail(stderr, stderr_chars)
    if data is None:
        if returncode != EXIT_OK:
            meaning = _EXIT_MEANING.get(returncode)
            what = f"{meaning} (exit {returncode})" if meaning else describe_exit(returncode)
            return ScriptOutcome(False, error=f"script {what}: {tail or decode_error}")
        detail = f"; stderr: {tail}" if tail else ""
        return ScriptOutcome(False, error=f"{decode_error}{detail}")

    status = data.get("status")
    status_text = str(status).lower() if status is not None else None
    output_key = next((k for k in _OUTPUT_KEYS if data.get(k) is not None), None)
    output = _text(data[output_key]) if output_key else None
    error = data.get("error")
    error_text = _text(error) if error not in (None, "") else None
    outcome = ScriptOutcome(
        ok=False,
        output=output,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        usage=_usage(data),
        metadata={"script_status": status, "exit_code": returncode},
    )
    if returncode != EXIT_OK:
        meaning = _EXIT_MEANING.get(returncode)
        what = f"{meaning} (exit {returncode})" if meaning else describe_exit(returncode)
        outcome.error = f"script {what}: {error_text or tail or 'no error message'}"
    elif status_text in _FAILED_STATUSES:
        outcome.error = f"script reported failure: {error_text or tail or 'no error message'}"
    elif status_text is not None and status_text not in _OK_STATUSES:
        outcome.error = f"script reported an unknown status {status!r}"
    elif output is None:
        outcome.error = "script reported success but gave no output"
    else:
        outcome.ok = True
    return outcome


class ScriptLlm(CommandLlm):
    """A legacy script as a model: each call runs it with the task's payload on stdin.

    The payload (the JSON text of :func:`script_payload`) is the call's ``payload`` option; the
    reply is the script's ``output``, with its model and token counts. A script that fails is an
    error that is not retried unless the agent's ``retry`` says so; exit status 2 is a
    configuration error (a fallback agent takes over). A ``.py`` script runs on this Python.

    The script runs as a command does (:class:`CommandLlm`: environment, timeout, the end of
    every process it started). Its stdout may hold up to :data:`STDOUT_PER_OUTPUT_BYTE` times
    ``max_output_bytes`` (the JSON envelope, escapes included); its ``output`` keeps at most
    ``max_output_bytes``, cut like a command's reply. Error texts are masked.
    """

    provider = "script"

    def argv(self, model: str) -> list[str]:
        argv = super().argv(model)
        return [sys.executable, *argv] if argv[0].endswith(".py") else argv

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        payload = params.options.get("payload")
        if not isinstance(payload, str):
            raise LlmConfigurationError("a script call needs its payload", provider=self.provider)
        stdout_limit = STDOUT_PER_OUTPUT_BYTE * self.max_output_bytes
        done = await self._run(
            self.argv(params.model), payload.encode("utf-8"), params.timeout, stdout_limit
        )
        outcome = parse_script_result(done.returncode, done.stdout, done.stderr)
        if not outcome.ok:
            error = outcome.error or "script failed"
            if done.stdout_dropped:
                error += (
                    f" (its stdout was cut to {stdout_limit} of "
                    f"{stdout_limit + done.stdout_dropped} bytes: raise the agent's "
                    "max_output_bytes to keep more)"
                )
            if done.returncode == EXIT_CONFIGURATION_ERROR:
                raise LlmConfigurationError(mask(error))
            raise LlmResponseError(mask(error), retryable=False)
        output, finish = outcome.output or "", "stop"
        data = output.encode("utf-8")
        if len(data) > self.max_output_bytes:
            kept = OutputBuffer(self.max_output_bytes)
            kept.write(data)
            output, finish = kept.getvalue().decode("utf-8", errors="replace"), "length"
        return LlmResponse(
            text=output,
            model=outcome.model or params.model,
            usage=outcome.usage or Usage(),
            finish_reason=finish,
        )
