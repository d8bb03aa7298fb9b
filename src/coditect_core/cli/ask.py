"""``coditect ask``: one prompt to one model, with the reply streamed as it arrives.

The reply is shown as all text from outside is (:mod:`.output`): known secrets masked and
control characters made visible, as it streams. A secret cut across two pieces of the stream is
still masked whole: the last characters of each piece wait for the next (as many as the longest
secret, less one), and each piece is masked together with them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import ExitCode, Shown, err_console, fail, fail_for, print_json
from .project_path import project_file

if TYPE_CHECKING:
    from ..app.ask import AskTarget

__all__ = ["register"]


class _StreamShown:
    """Pieces of a stream written as they are shown, no secret cut in two (see the module)."""

    def __init__(self) -> None:
        self.shown = Shown()
        self.keep = max((len(s) for s in self.shown.secrets), default=1) - 1
        self.pending = ""

    def write(self, delta: str) -> None:
        from ..reporting.fmt import masked

        text = masked(self.pending + delta, self.shown.secrets)
        cut = len(text) - self.keep
        if cut > 0 and text[cut - 1] == "\r":  # a CR LF may be cut in two: keep the CR
            cut -= 1
        if cut <= 0:
            self.pending = text
            return
        self.pending = text[cut:]
        self._out(text[:cut])

    def close(self) -> None:
        self._out(self.pending + "\n")
        self.pending = ""

    def _out(self, text: str) -> None:
        sys.stdout.write(self.shown(text))
        sys.stdout.flush()


async def _ask(
    llm: Any, messages: list[dict[str, str]], as_json: bool, max_tokens: int | None = None
) -> dict[str, Any]:
    per_call = {"max_tokens": max_tokens} if max_tokens is not None else {}
    try:
        if as_json:
            response = await llm.generate_async(messages, **per_call)
            return response.to_dict()
        stream = llm.stream_content_async(messages, **per_call)
        out = _StreamShown()
        async for delta in stream:
            out.write(delta)
        out.close()
        if stream.response is None:
            return {}
        result = stream.response.to_dict()
        if stream.usage is None:  # the server counted nothing: unknown, not zero
            result["usage"] = None
        return result
    finally:
        await llm.aclose()


def _target(
    agent: str | None,
    project: Path | None,
    provider: str | None,
    model: str | None,
    settings: dict[str, Any],
    as_json: bool,
) -> AskTarget:
    """The model the prompt goes to, or exit 2 saying why none."""
    from ..app.ask import agent_target, model_target
    from ..errors import AgentError, LlmConfigurationError, ProjectFileError

    if agent is None and project is not None:
        fail("--project names the file of --agent NAME: give --agent too", as_json=as_json)
    if agent is not None:
        given = [
            name
            for name, value in (
                ("--type", provider),
                ("--model", model),
                ("--base-url", settings["base_url"]),
            )
            if value is not None
        ]
        if given:
            fail(
                f"--agent {agent} uses that agent's provider and model: drop {', '.join(given)}",
                as_json=as_json,
            )
        path = project_file(project, as_json=as_json)
        try:
            target = agent_target(path, agent)
        except (ProjectFileError, AgentError, LlmConfigurationError, OSError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        return target
    try:
        return model_target(provider, model, **settings)
    except LlmConfigurationError as error:
        how = (
            "; pick the provider with --type PROVIDER (openai-compatible with --base-url URL for "
            "any OpenAI-compatible server), or an agent of a project with --agent NAME"
        )
        cannot_tell = provider is None and model is not None and "cannot tell" in str(error)
        fail(str(error) + (how if cannot_tell else ""), ExitCode.BAD_INPUT, as_json=as_json)


def register(app: typer.Typer) -> None:
    @app.command("ask")
    def ask_command(
        prompt: Annotated[str, typer.Argument(help="The prompt. '-' reads it from stdin.")],
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                metavar="MODEL",
                help="Model name or .gguf path; it tells the provider (gpt-*, o1/o3/o4: OpenAI; "
                "claude-*: Anthropic; gemini-*: Google; *.gguf: local).",
            ),
        ] = None,
        type_: Annotated[
            str | None,
            typer.Option(
                "--type",
                "-t",
                metavar="PROVIDER",
                help="The provider, when the model's name does not tell it: openai-compatible, "
                "openai-gpt, anthropic-claude, google-gemini, local, command or a plugin's.",
            ),
        ] = None,
        agent: Annotated[
            str | None,
            typer.Option(
                "--agent", "-a", metavar="NAME", help="An agent of the project file instead."
            ),
        ] = None,
        project: Annotated[
            Path | None,
            typer.Option(
                "--project",
                "-p",
                metavar="PROJECT",
                help="The project file of --agent (default: ./coditect.yaml).",
            ),
        ] = None,
        base_url: Annotated[
            str | None,
            typer.Option(metavar="URL", help="Server URL (OpenAI-compatible: ends in /v1)."),
        ] = None,
        system: Annotated[
            str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt.")
        ] = None,
        max_tokens: Annotated[
            int | None, typer.Option(metavar="N", help="Longest reply, in tokens.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the whole response as JSON.")
        ] = False,
    ) -> None:
        """Send one prompt to a model and stream the reply.

        With no model named, the embedded local model answers (no key, no network). A model's
        name tells its provider, which is said on stderr; --type names another (any
        OpenAI-compatible server: --type openai-compatible --base-url URL). --agent uses an
        agent of a project file as a run would: its provider, model, key and settings.

        Examples:

          coditect ask "Explain asyncio.gather in two sentences"

          coditect ask -m gpt-4o-mini "Hello"

          coditect ask -m claude-sonnet-4-5 -s "Answer in French" "Hello"

          coditect ask --agent claude -p examples/cloud.yaml "Review this plan"

          coditect ask -t openai-compatible --base-url URL -m llama3.2 "Hello"

          echo "Summarise this" | coditect ask -
        """
        import asyncio

        from ..errors import LlmError

        text = sys.stdin.read() if prompt == "-" else prompt
        settings: dict[str, Any] = {"base_url": base_url, "max_tokens": max_tokens}
        target = _target(agent, project, type_, model, settings, as_json)
        system = system if system is not None else target.system_prompt
        messages = [{"role": "user", "content": text}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        chosen = {
            "named": "",
            "model name": f" (from the model name {model!r}; --type names another)",
            "agent": f" (agent {agent!r})",
            "default": " (the embedded model: -m MODEL names another)",
        }[target.chosen]
        if target.chosen != "named":
            err_console().print(
                f"[dim]provider: {Shown().markup(target.provider + chosen)}[/]", soft_wrap=True
            )
        try:
            result = asyncio.run(_ask(target.llm, messages, as_json, max_tokens))
        except LlmError as error:
            fail_for(error, ExitCode.TASK_FAILED, as_json=as_json)
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if as_json:
            print_json(result)
        elif result:
            usage = result["usage"]
            tokens = (
                f"{usage['prompt_tokens']} in, {usage['completion_tokens']} out"
                if usage is not None
                else "tokens unknown"
            )
            shown_model = Shown().markup(result["model"])
            err_console().print(f"[dim]{shown_model}: {tokens}, {result['latency_s']:.2f}s[/]")
