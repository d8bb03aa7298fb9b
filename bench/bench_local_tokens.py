"""Tokens/s of ``LocalLlm.generate_async`` against ``llama_cpp.Llama.create_chat_completion``.

Both run the default model (SmolLM2-135M-Instruct) with the same settings (n_ctx, temperature 0,
max_tokens, seed, same prompt), each on its own loaded instance, interleaved in one run (the
order alternating) so that the machine's load hits both alike. The headline rate of a side is
its best call (the one least disturbed by other processes on a shared machine); the ratio of
total wall time and of CPU time (all threads) are printed beside it. Target: LocalLlm / direct
>= 0.95.

    python bench/bench_local_tokens.py [--reps 20] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from coditect_core.llm_abstractions.local import DEFAULT_N_CTX, LocalLlm, default_model_path

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
SEED = 1234


def emit(figure: str, value: float, **extra: Any) -> None:
    print(json.dumps({"bench": "local_tokens", "figure": figure, "value": value, **extra}))


async def main(reps: int, max_tokens: int) -> None:
    import llama_cpp

    path = default_model_path()
    direct = llama_cpp.Llama(model_path=path, n_ctx=DEFAULT_N_CTX, verbose=False)
    llm = LocalLlm(temperature=0.0, max_tokens=max_tokens, seed=SEED)

    def run_direct() -> int:
        out = direct.create_chat_completion(
            messages=PROMPT, temperature=0.0, max_tokens=max_tokens, seed=SEED
        )
        return int(out["usage"]["completion_tokens"])

    async def run_local() -> int:
        return (await llm.generate_async(PROMPT)).usage.completion_tokens

    run_direct()  # warm-up: page the weights in, fill both prompt caches
    await run_local()

    # Per side: tokens, wall seconds and CPU seconds (all threads) of every call.
    runs: dict[str, list[tuple[int, float, float]]] = {"direct": [], "local": []}
    for rep in range(reps):
        order = ("direct", "local") if rep % 2 == 0 else ("local", "direct")
        for side in order:
            wall, cpu = time.perf_counter(), time.process_time()
            tokens = run_direct() if side == "direct" else await run_local()
            runs[side].append((tokens, time.perf_counter() - wall, time.process_time() - cpu))

    def rates(side: str) -> dict[str, float]:
        calls = runs[side]
        tokens = sum(t for t, _, _ in calls)
        return {
            "best": max(t / w for t, w, _ in calls),  # least disturbed call: the headline
            "total": tokens / sum(w for _, w, _ in calls),
            "cpu": tokens / sum(c for _, _, c in calls),
        }

    d, loc = rates("direct"), rates("local")
    common = {"reps": reps, "max_tokens": max_tokens, "tokens_per_call": runs["local"][0][0]}
    emit("direct_tokens_per_s", round(d["best"], 1), unit="tokens/s (best call)", **common)
    emit("local_tokens_per_s", round(loc["best"], 1), unit="tokens/s (best call)", **common)
    emit(
        "ratio",
        round(loc["best"] / d["best"], 3),
        target=">= 0.95",
        ratio_total_wall=round(loc["total"] / d["total"], 3),
        ratio_cpu=round(loc["cpu"] / d["cpu"], 3),
        direct_total_tokens_per_s=round(d["total"], 1),
        local_total_tokens_per_s=round(loc["total"], 1),
        **common,
    )
    direct.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.reps, args.max_tokens))
