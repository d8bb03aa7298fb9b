"""``RemoteLlm``: the driver's stand-in for an agent's LLM when its requests run on Ray.

Private to :mod:`.ray`. :meth:`RayRunner.remote_class` mixes it in before the agent's real LLM
class, so that the executor builds, configures and drives it exactly as the real one (retries,
timeouts, limits, error mapping all stay on the driver) while each request (``_generate``) is
sent to the runner, which runs it on a worker or in the agent's actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import LlmConfigurationError
from ...llm_abstractions.base_llm import BaseLlm, CallParams, LlmResponse, StreamState
from ._worker import LlmSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ...llm_abstractions.keys import Secret
    from ...llm_abstractions.messages import Message
    from .ray import RayRunner

__all__ = ["RemoteLlm"]


class RemoteLlm(BaseLlm):
    """Mixed in before an agent's real LLM class: its requests are sent to the Ray runner.

    The real constructor still runs here (settings checked, key looked up, retry policy chosen);
    a heavy model's file is only needed where its actor runs.
    """

    _runner: ClassVar[RayRunner]
    _agent: ClassVar[str]
    _on_actor: ClassVar[bool]
    _real: ClassVar[type[BaseLlm]]

    def __init__(self, model: str | None = None, api_key: str | None = None, **settings: Any):
        self._spec_args = (model, dict(settings))
        self._spec_box: list[Any] = []
        try:
            super().__init__(model=model, api_key=api_key, **settings)
        except LlmConfigurationError:
            if not self._on_actor:
                raise
            # e.g. the model file exists on the GPU nodes only: the actor checks it there.
            BaseLlm.__init__(
                self, model or f"{self._real.provider}-default", api_key=api_key, **settings
            )

    def _resolve_key(self, api_key: str | None) -> Secret | None:
        try:
            return super()._resolve_key(api_key)
        except LlmConfigurationError:
            if self._runner.send_keys:
                raise
            return None  # the workers' environment has it

    def spec(self) -> LlmSpec:
        """What a worker needs to build the real LLM."""
        model, settings = self._spec_args
        key = self._api_key if self._runner.send_keys else None
        return LlmSpec(self._real, model, key, settings)

    def _create_client(self) -> Any:
        return None  # the clients live on the workers

    async def _close_client(self, client: Any) -> None:
        return None

    async def _generate(
        self, client: Any, messages: list[Message], params: CallParams
    ) -> LlmResponse:
        return await self._runner._request(self, messages, params)

    async def _stream(
        self, client: Any, messages: list[Message], params: CallParams, state: StreamState
    ) -> AsyncIterator[str]:
        response = await self._generate(client, messages, params)  # one delta: the whole reply
        state.usage, state.finish_reason, state.model = (
            response.usage,
            response.finish_reason,
            response.model,
        )
        yield response.text

    def _map_error(self, error: Exception) -> Any:
        return None
