"""Calls per second of ``Gpt.generate_content_async`` against the raw ``openai`` SDK.

Both talk to the same loopback stub server (``tests/support/stub_server.py``, started here as
its own process so that it does not share this interpreter's GIL), with the same concurrency,
the same request and one client each, made and warmed before timing. Rounds are interleaved
(raw, Gpt, Gpt, raw, ...) so that both sides see the same machine load. Figures, one JSON line each:

* ``raw_calls_per_s`` and ``gpt_calls_per_s``: medians over the rounds;
* ``ratio``: the median of the per-round ratios gpt/raw (target >= 0.95);
* ``cpu_ratio``: client CPU seconds per call, raw over Gpt (a busy machine inflates it less);
* ``ratio_side_by_side``: both sides run at once on the same loop (``concurrency`` workers each)
  for ``--duel-s`` seconds; Gpt's completed calls over raw's, median of ``--duels``. Both see
  exactly the same load at every instant, so this one survives a noisy machine best;
* ``pipeline_us_per_call``: what ``Gpt`` itself adds per call, measured with the SDK call
  replaced by a canned ``ChatCompletion`` (no I/O), minus the same canned call made directly;
  ``implied_ratio`` is raw CPU per call over raw CPU per call plus that.

    python bench/bench_gpt_overhead.py [--calls 100] [--concurrency 16] [--rounds 30]
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
from collections.abc import Awaitable, Callable
from pathlib import Path

STUB = Path(__file__).resolve().parent.parent / "tests" / "support" / "stub_server.py"
TARGET = 0.95
MESSAGES = [{"role": "user", "content": "Summarise the task in one line."}]
MODEL = "gpt-5.4-mini"


async def _round(
    call: Callable[[], Awaitable[str]], calls: int, concurrency: int
) -> tuple[float, float]:
    """Run ``calls`` calls, ``concurrency`` at a time: (calls per second, CPU seconds per call)."""
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            text = await call()
            if not text:
                raise SystemExit("empty reply")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return calls / wall, cpu / calls


async def _duel(
    sides: dict[str, Callable[[], Awaitable[str]]], seconds: float, concurrency: int
) -> float:
    """Both sides at once for ``seconds``: Gpt's completed calls over raw's."""
    done = dict.fromkeys(sides, 0)
    stop = time.perf_counter() + seconds

    async def worker(name: str) -> None:
        while time.perf_counter() < stop:
            await sides[name]()
            done[name] += 1

    await asyncio.gather(*(worker(n) for n in sides for _ in range(concurrency)))
    return done["gpt"] / done["raw"]


async def _bench(
    base_url: str, calls: int, concurrency: int, rounds: int, duels: int, duel_s: float
) -> dict[str, list[float]]:
    import openai

    from coditect_core.llm_abstractions import Gpt

    raw_client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    llm = Gpt(model=MODEL, api_key="sk-bench", base_url=base_url)

    async def raw() -> str:
        completion = await raw_client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return completion.choices[0].message.content or ""

    async def gpt() -> str:
        return await llm.generate_content_async(MESSAGES)

    sides = {"raw": raw, "gpt": gpt}
    for side in sides.values():  # warm: imports, connection pools, pydantic caches
        await _round(side, concurrency * 4, concurrency)
    out: dict[str, list[float]] = {"raw": [], "gpt": [], "raw_cpu": [], "gpt_cpu": [], "duel": []}
    for i in range(rounds):
        order = ("raw", "gpt") if i % 2 == 0 else ("gpt", "raw")
        for name in order:
            rate, cpu = await _round(sides[name], calls, concurrency)
            out[name].append(rate)
            out[f"{name}_cpu"].append(cpu)
    for _ in range(duels):
        out["duel"].append(await _duel(sides, duel_s, concurrency))
    await raw_client.close()
    await llm.aclose()
    out["pipeline_us"] = [await _pipeline_us()]
    return out


async def _pipeline_us(repeats: int = 5, calls: int = 4000) -> float:
    """Microseconds ``Gpt.generate_content_async`` adds to an SDK call that costs nothing."""
    from types import SimpleNamespace

    from openai.types.chat import ChatCompletion

    from coditect_core.llm_abstractions import Gpt

    canned = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }
    )

    async def create(**_: object) -> ChatCompletion:
        return canned

    async def close() -> None:
        return None

    client = SimpleNamespace(
        chat=SimpleNamespace(completions=SimpleNamespace(create=create)), close=close
    )

    class CannedGpt(Gpt):
        def _create_client(self) -> object:
            return client

    llm = CannedGpt(model=MODEL, api_key="sk-bench")

    async def direct() -> str:
        return (await create(model=MODEL, messages=MESSAGES)).choices[0].message.content or ""

    async def wrapped() -> str:
        return await llm.generate_content_async(MESSAGES)

    spent: dict[str, list[float]] = {"direct": [], "wrapped": []}
    for _ in range(repeats):
        for name, call in (("direct", direct), ("wrapped", wrapped)):
            started = time.process_time()
            for _ in range(calls):
                await call()
            spent[name].append((time.process_time() - started) / calls * 1e6)
    return statistics.median(spent["wrapped"]) - statistics.median(spent["direct"])


def _line(figure: str, value: float, **details: object) -> None:
    print(
        json.dumps({"bench": "gpt_overhead", "figure": figure, "value": round(value, 4), **details})
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round and side")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--duels", type=int, default=5)
    parser.add_argument("--duel-s", type=float, default=3.0)
    args = parser.parse_args()

    stub = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--print-port", "--no-record"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        port = int(stub.stdout.readline())
        result = asyncio.run(
            _bench(
                f"http://127.0.0.1:{port}/v1",
                args.calls,
                args.concurrency,
                args.rounds,
                args.duels,
                args.duel_s,
            )
        )
    finally:
        stub.terminate()
        stub.wait(10)

    ratios = [g / r for g, r in zip(result["gpt"], result["raw"], strict=True)]
    common = {"calls": args.calls, "concurrency": args.concurrency, "rounds": args.rounds}
    load = os.getloadavg()[0]
    for side in ("raw", "gpt"):
        rates = result[side]
        _line(
            f"{side}_calls_per_s",
            statistics.median(rates),
            min=round(min(rates), 1),
            max=round(max(rates), 1),
            cpu_ms_per_call=round(statistics.median(result[f"{side}_cpu"]) * 1000, 3),
            **common,
        )
    _line(
        "ratio",
        statistics.median(ratios),
        target=f">= {TARGET}",
        per_round=[round(r, 3) for r in ratios],
        load_avg_1m=round(load, 2),
        **common,
    )
    _line(
        "ratio_side_by_side",
        statistics.median(result["duel"]),
        target=f">= {TARGET}",
        per_duel=[round(r, 3) for r in result["duel"]],
        duel_s=args.duel_s,
        concurrency=args.concurrency,
    )
    pipeline_us = result["pipeline_us"][0]
    raw_cpu_us = statistics.median(result["raw_cpu"]) * 1e6
    _line("pipeline_us_per_call", pipeline_us, raw_cpu_us_per_call=round(raw_cpu_us, 1))
    _line(
        "implied_ratio",
        raw_cpu_us / (raw_cpu_us + pipeline_us),
        target=f">= {TARGET}",
        note="raw CPU per call / (raw CPU per call + Gpt's own cost per call)",
    )
    _line(
        "cpu_ratio",
        statistics.median(result["raw_cpu"]) / statistics.median(result["gpt_cpu"]),
        target=f">= {TARGET}",
        note="raw CPU per call / Gpt CPU per call, client process only",
        **common,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
