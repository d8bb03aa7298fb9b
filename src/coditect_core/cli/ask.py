"""``coditect ask``: one prompt to one model, with the reply streamed as it arrives.

The reply is shown as all text from outside is (:mod:`.output`): known secrets masked and
control characters made visible, as it streams. A secret cut across two pieces of the stream is
still masked whole: the last characters of each piece wait for the next (as many as the longest
secret, less one), and each piece is masked together with them."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .output import ExitCode, Shown, err_console, fail, fail_for, print_json

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


async def _ask(llm: Any, messages: list[dict[str, str]], as_json: bool) -> dict[str, Any]:
    try:
        if as_json:
            response = await llm.generate_async(messages)
            return response.to_dict()
        stream = llm.stream_content_async(messages)
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


def register(app: typer.Typer) -> None:
    @app.command("ask")
    def ask_command(
        prompt: Annotated[str, typer.Argument(help="The prompt. '-' reads it from stdin.")],
        type_: Annotated[
            str,
            typer.Option("--type", "-t", help="Provider: local, openai-gpt, anthropic-claude..."),
        ] = "local",
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="Model name or path.")
        ] = None,
        base_url: Annotated[
            str | None, typer.Option(help="Server URL (OpenAI-compatible).")
        ] = None,
        system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
        max_tokens: Annotated[int | None, typer.Option(help="Longest reply, in tokens.")] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the whole response as JSON.")
        ] = False,
    ) -> None:
        """Send one prompt to a model and stream the reply.

        Examples:

          coditect ask "Explain asyncio.gather in two sentences"

          coditect ask --type openai-gpt --model gpt-4o-mini "Hello"

          echo "Summarise this" | coditect ask -
        """
        import asyncio

        from ..errors import LlmConfigurationError, LlmError
        from ..llm_abstractions import create_llm

        text = sys.stdin.read() if prompt == "-" else prompt
        messages = [{"role": "user", "content": text}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        settings: dict[str, Any] = {"model": model, "base_url": base_url, "max_tokens": max_tokens}
        try:
            llm = create_llm(type_, **{k: v for k, v in settings.items() if v is not None})
        except LlmConfigurationError as error:
            fail(str(error), ExitCode.BAD_INPUT, as_json=as_json)
        try:
            result = asyncio.run(_ask(llm, messages, as_json))
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
            model = Shown().markup(result["model"])
            err_console().print(f"[dim]{model}: {tokens}, {result['latency_s']:.2f}s[/]")
