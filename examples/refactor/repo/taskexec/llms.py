"""The LLM classes the refactor moves the executor onto (one per provider, one contract)."""

from __future__ import annotations

import asyncio


class BaseLlm:
    """One model: ``generate_content_async(prompt)`` returns its reply."""

    def __init__(self, model: str | None = None, api_key: str | None = None) -> None:
        self.model = model
        self.api_key = api_key

    async def generate_content_async(self, prompt: str) -> str:
        raise NotImplementedError


class EchoLlm(BaseLlm):
    """Answers with the prompt, upper-cased: the offline model of the tests."""

    async def generate_content_async(self, prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt.upper()


class Gemini(BaseLlm):
    async def generate_content_async(self, prompt: str) -> str:
        raise RuntimeError("Gemini needs the network: not in this example")


class Claude(BaseLlm):
    async def generate_content_async(self, prompt: str) -> str:
        raise RuntimeError("Claude needs the network: not in this example")


class Gpt(BaseLlm):
    async def generate_content_async(self, prompt: str) -> str:
        raise RuntimeError("GPT needs the network: not in this example")
