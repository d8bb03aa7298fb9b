"""``coditect ask``: one prompt to one model, with the reply streamed as it arrives."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .output import ExitCode, err_console, fail, print_json

__all__ = ["register"]


async def _ask(llm: Any, messages: list[dict[str, str]], as_json: bool) -> dict[str, Any]:
    try:
        if as_json:
            response = await llm.generate_async(messages)
            return response.to_dict()
        stream = llm.stream_content_async(messages)
        async for delta in stream:
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
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
            fail(str(error), ExitCode.BAD_INPUT)
        try:
            result = asyncio.run(_ask(llm, messages, as_json))
        except LlmError as error:
            fail(str(error), ExitCode.TASK_FAILED)
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
            err_console().print(f"[dim]{result['model']}: {tokens}, {result['latency_s']:.2f}s[/]")
