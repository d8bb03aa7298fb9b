"""Turns per second of the agent loop (``tools.loop.AgentLoop`` over ``Gpt``) against a loop
written by hand on the raw ``openai`` SDK.

Both sides talk to the same loopback stub server (``tests/support/stub_server.py``, its own
process), run the same tool (a Python function) and the same conversation: each loop is two
model turns, the first asking for one call of the tool, the second answering. The stub is
scripted before each round with the replies of its loops (one loop at a time, so each side gets
its replies in order). Rounds are interleaved (raw, ours, ours, raw, ...) so that both see the
same machine load. Figures, one JSON line each:

* ``raw_turns_per_s`` and ``loop_turns_per_s``: medians over the rounds;
* ``ratio``: the median of the per-round ratios loop/raw (target >= 0.95);
* ``overhead_us_per_turn``: the median of (loop time - raw time) per turn, per round pair.

    python bench/bench_agent_loop.py [--loops 40] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

STUB = Path(__file__).resolve().parent.parent / "tests" / "support" / "stub_server.py"
TARGET = 0.95
MODEL = "gpt-5.4-mini"
PROMPT = "Look the key up, then answer in one line."
CALL = {"name": "lookup", "arguments": {"key": "alpha"}, "id": "call_1"}
SCHEMA = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a key up.",
        "parameters": {
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"],
        },
    },
}


def lookup(key: str) -> str:
    """Look a key up."""
    return f"{key} = 42"


def _script(base: str, loops: int) -> None:
    """Queue ``loops`` loops' replies at the stub: a call of the tool, then an answer."""
    actions = [
        action
        for _ in range(loops)
        for action in (
            {"kind": "reply", "tool_calls": [CALL]},
            {"kind": "reply", "text": "alpha is 42"},
        )
    ]
    request = urllib.request.Request(
        f"{base}/_stub/script",
        data=json.dumps(actions).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


async def _round(loop: Callable[[], Awaitable[str]], base: str, loops: int) -> float:
    """Seconds for ``loops`` loops of one side, one at a time."""
    _script(base, loops)
    started = time.perf_counter()
    for _ in range(loops):
        if await loop() != "alpha is 42":
            raise SystemExit("a loop did not end with the scripted answer")
    return time.perf_counter() - started


async def _bench(base: str, loops: int, rounds: int) -> dict[str, list[float]]:
    import openai

    from coditect_core.llm_abstractions import Gpt
    from coditect_core.llm_abstractions.retry import NO_RETRY
    from coditect_core.tools import AgentLoop, FunctionToolset, ToolBox

    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="sk-bench", max_retries=0)

    async def raw() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        while True:
            response = await client.chat.completions.create(
                model=MODEL,
                messages=messages,
                tools=[SCHEMA],  # type: ignore[arg-type, list-item]
            )
            message = response.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                arguments = json.loads(call.function.arguments or "{}")
                result = await asyncio.to_thread(lookup, **arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    llm = Gpt(MODEL, api_key="sk-bench", base_url=f"{base}/v1", retry=NO_RETRY)
    agent = AgentLoop(llm, ToolBox([FunctionToolset([lookup])]))

    async def ours() -> str:
        return (await agent.run(PROMPT)).response.text

    for side in (raw, ours):  # warm: imports, connection pools, pydantic caches
        await _round(side, base, 3)
    out: dict[str, list[float]] = {"raw": [], "loop": []}
    for i in range(rounds):
        order = [("raw", raw), ("loop", ours)]
        if i % 2:
            order.reverse()
        for name, side in order:
            out[name].append(await _round(side, base, loops))
    await llm.aclose()
    await client.close()
    return out


def _line(figure: str, value: float, **details: Any) -> None:
    print(json.dumps({"bench": "agent_loop", "figure": figure, "value": value, **details}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=40, help="loops per round and side")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    stub = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--print-port", "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        port = int(stub.stdout.readline())
        times = asyncio.run(_bench(f"http://127.0.0.1:{port}", args.loops, args.rounds))
    finally:
        stub.terminate()
        stub.wait(10)
    turns = 2 * args.loops
    common = {"loops": args.loops, "turns_per_loop": 2, "rounds": args.rounds}
    for side in ("raw", "loop"):
        rates = [turns / t for t in times[side]]
        _line(
            f"{side}_turns_per_s",
            round(statistics.median(rates), 1),
            min=round(min(rates), 1),
            max=round(max(rates), 1),
            **common,
        )
    ratios = [r / o for r, o in zip(times["raw"], times["loop"], strict=True)]
    overhead = [(o - r) / turns * 1e6 for r, o in zip(times["raw"], times["loop"], strict=True)]
    _line(
        "overhead_us_per_turn",
        round(statistics.median(overhead), 1),
        min=round(min(overhead), 1),
        max=round(max(overhead), 1),
        **common,
    )
    _line(
        "ratio",
        round(statistics.median(ratios), 3),
        target=TARGET,
        min=round(min(ratios), 3),
        max=round(max(ratios), 3),
        load=round(os.getloadavg()[0], 2),
        **common,
    )


if __name__ == "__main__":
    main()
