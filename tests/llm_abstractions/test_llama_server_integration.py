"""The OpenAI-compatible provider against a real OpenAI-compatible server: llama-cpp-python's own
(``python -m llama_cpp.server``) serving SmolLM2 on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coditect_core.errors import LlmContextLengthError, LlmError
from coditect_core.llm_abstractions import NO_RETRY, BaseLlm, Tool, create_llm
from coditect_core.llm_abstractions.local import default_model_path

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

MODEL_NAME = "smollm2"
STARTUP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as reply:
                if reply.status == 200 and json.load(reply).get("data"):
                    return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running llama_cpp.server; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        default_model_path(),
        "--model_alias",
        MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(url, proc, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture
async def llm(llama_server: str) -> AsyncIterator[BaseLlm]:
    client = create_llm(
        "openai-compatible",
        model=MODEL_NAME,
        base_url=f"{llama_server}/v1",
        max_tokens=32,
        temperature=0,
        timeout=60,
        retry=NO_RETRY,
    )
    async with client:
        yield client


async def test_plain_call_returns_text_and_usage(llm: BaseLlm) -> None:
    response = await llm.generate_async(
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name three colours."},
        ]
    )
    assert response.text.strip()
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 32
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response.finish_reason in {"stop", "length"}
    assert await llm.generate_content_async("Say hi.")


async def test_streaming_yields_deltas_that_join_into_the_reply(llm: BaseLlm) -> None:
    stream = llm.stream_content_async("Write one sentence about the sea.")
    deltas = [delta async for delta in stream]
    assert len(deltas) >= 3
    assert stream.response is not None
    assert "".join(deltas) == stream.response.text
    assert stream.response.text.strip()
    assert stream.response.finish_reason in {"stop", "length"}
    # No usage check here: llama_cpp.server ignores stream_options and sends none in streams.


TYPED_SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "maxLength": 20}, "n": {"type": "integer"}},
    "required": ["colour", "n"],
}


async def test_a_typed_output_through_the_servers_grammar(llama_server: str) -> None:
    """llama-cpp-python's server takes ``json_object`` with the schema (its grammar holds the
    model to it); it refuses OpenAI's ``json_schema`` form (with an HTTP 500 naming the two
    types it knows): ``structured_output: json_object`` is the setting for it."""
    async with create_llm(
        "openai-compatible",
        model=MODEL_NAME,
        base_url=f"{llama_server}/v1",
        max_tokens=48,
        timeout=60,
        retry=NO_RETRY,
        structured_output="json_object",
    ) as typed:
        for i in range(3):
            response = await typed.generate_async(
                f"Name colour number {i} and its number.",
                output_schema=TYPED_SCHEMA,
                output_retries=0,
                seed=i,
            )
            assert response.output_mode == "native"
            assert set(response.value) == {"colour", "n"}
    async with create_llm(
        "openai-compatible", model=MODEL_NAME, base_url=f"{llama_server}/v1", retry=NO_RETRY
    ) as plain:
        with pytest.raises(LlmError, match="'text' or 'json_object'"):
            await plain.generate_async("Name a colour.", output_schema=TYPED_SCHEMA)


async def test_too_long_prompt_is_a_context_length_error(llm: BaseLlm) -> None:
    with pytest.raises(LlmContextLengthError):
        await llm.generate_async("lorem ipsum dolor " * 1500)
    assert await llm.generate_content_async("Say hi.")  # the server is still serving


async def test_a_tool_choice_naming_a_function_gives_a_call_of_it(llm: BaseLlm) -> None:
    # The server's default chat handler constrains the reply to the tool's schema (a grammar):
    # the shape is asserted, never the words the model chose.
    weather = Tool(
        "weather",
        "The weather in a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    response = await llm.generate_async(
        "What is the weather in Oslo?", tools=[weather], tool_choice="weather", max_tokens=64
    )
    assert response.finish_reason == "tool_calls"
    (call,) = response.tool_calls
    assert call.name == "weather"
    assert call.invalid_arguments is None
    assert isinstance(call.arguments["city"], str)
    assert call.id
