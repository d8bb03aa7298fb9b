"""The forecast of a typed task (``output_schema``): its schema in the input, and its
``output_retries`` re-asks as calls that cost nothing unless the reply does not fit (the worst
case pays each one, its input grown by the invalid reply and the errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from coditect_core.app.forecast import forecast_project
from coditect_core.orchestration.forecast import CHARS_PER_TOKEN, MESSAGE_OVERHEAD, REASK_CHARS

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
PRICE = {"input": 1.0, "output": 4.0}


def _project(tmp_path: Path, **typed: Any) -> Path:
    agent = {
        "type": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "stub-small",
        "max_tokens": 64,
        "price": PRICE,
    }
    spec = {
        "project": "typed-forecast",
        "agents": {"cheap": agent},
        "tasks": [{"id": "T1", "title": "Count", "description": "Count them.", **typed}],
    }
    path = tmp_path / "coditect.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_re_asks_are_the_worst_case_only(tmp_path: Path) -> None:
    plain = forecast_project(_project(tmp_path)).tasks[0]
    typed = forecast_project(_project(tmp_path, output_schema=SCHEMA, output_retries=2)).tasks[0]
    assert [c.role for c in plain.calls] == ["call"]
    assert [c.role for c in typed.calls] == ["call", "re-ask 1", "re-ask 2"]
    call, first, second = typed.calls
    # the schema is sent with the call
    assert call.input_tokens - plain.calls[0].input_tokens == len(json.dumps(SCHEMA)) // 4
    # each re-ask carries the conversation so far, the invalid reply and the errors
    step = (64 * CHARS_PER_TOKEN + REASK_CHARS) // CHARS_PER_TOKEN + 2 * MESSAGE_OVERHEAD
    assert abs(first.input_tokens - call.input_tokens - step) <= 2
    assert abs(second.input_tokens - first.input_tokens - step) <= 2
    for reask in (first, second):
        assert (reask.low_usd, reask.expected_usd) == (0.0, 0.0)
        assert reask.worst_usd is not None
        assert reask.worst_usd > call.worst_usd  # type: ignore[operator]
    assert typed.expected_usd == call.expected_usd
    assert typed.worst_usd == call.worst_usd + first.worst_usd + second.worst_usd  # type: ignore[operator]


def test_the_default_bound_is_two_re_asks_and_zero_is_none(tmp_path: Path) -> None:
    default = forecast_project(_project(tmp_path, output_schema=SCHEMA)).tasks[0]
    assert len(default.calls) == 3
    none = forecast_project(_project(tmp_path, output_schema=SCHEMA, output_retries=0)).tasks[0]
    assert [c.role for c in none.calls] == ["call"]
