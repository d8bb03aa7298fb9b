"""Typed outputs on the embedded model: llama.cpp's grammar, made from the JSON Schema, holds
SmolLM2-135M to valid JSON every time (no re-ask allowed: ``output_retries=0``)."""

from __future__ import annotations

import pytest

from coditect_core.llm_abstractions import NO_RETRY
from coditect_core.llm_abstractions.local import LocalLlm

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "likes_tea": {"type": "boolean"},
    },
    "required": ["name", "age", "likes_tea"],
}
PEOPLE = [
    "Ada, 36, drinks tea every morning",
    "Bob, 71, never touches tea",
    "Chen, 19, loves green tea",
    "Dora, 45, prefers coffee",
    "Eli, 8, has never tried tea",
]


@pytest.mark.local_model
async def test_the_grammar_gives_valid_json_20_of_20() -> None:
    llm = LocalLlm(max_tokens=80, retry=NO_RETRY)
    valid = 0
    for i in range(20):
        person = PEOPLE[i % len(PEOPLE)]
        response = await llm.generate_async(
            [
                {"role": "system", "content": "Extract the person as JSON."},
                {"role": "user", "content": f"Person {i}: {person}."},
            ],
            output_schema=SCHEMA,
            output_retries=0,
            temperature=0.8,
            seed=i,
        )
        assert response.output_mode == "native"
        assert set(response.value) == {"name", "age", "likes_tea"}
        valid += 1
    assert valid == 20
