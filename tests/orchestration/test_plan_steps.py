"""The user's plan, steps 4.1 to 4.7, run as a seven-task graph on FakeLlm: the order follows
the steps' real dependencies and each step gets exactly its dependencies' outputs as context."""

from __future__ import annotations

from coditect_core.orchestration import (
    AgentConfig,
    AgentRegistry,
    AgentTask,
    ProjectOrchestrator,
    TaskStatus,
)

STEPS = [
    ("4.1", "Update executor.py imports", "Import BaseLlm and the concrete LLM classes.", []),
    (
        "4.2",
        "Implement LLM Factory/Resolver in TaskExecutor",
        "Add _llm_factory mapping AgentType to BaseLlm subclasses.",
        ["4.1"],
    ),
    (
        "4.3",
        "Modify TaskExecutor._execute_api",
        "Instantiate the LLM from the factory and await generate_content_async.",
        ["4.2"],
    ),
    (
        "4.4",
        "Update ProjectOrchestrator.execute_task for Async Calls",
        "Make execute_task async and await the executor.",
        ["4.3"],
    ),
    (
        "4.5",
        "Deprecate/Remove _get_execution_script",
        "API execution no longer needs the scripts.",
        ["4.3"],
    ),
    (
        "4.6",
        "Update AgentRegistry (Review)",
        "Ensure AgentConfig stores model and api_key for BaseLlm implementations.",
        ["4.3"],
    ),
    (
        "4.7",
        "Testing",
        "Unit tests for TaskExecutor; verify ProjectOrchestrator uses the new flow.",
        ["4.4", "4.5", "4.6"],
    ),
]


def reply(messages: list[dict[str, str]]) -> str:
    step = messages[1]["content"].split(":", 1)[0].removeprefix("# Task ")
    return f"RESULT-{step}"


async def test_the_plans_seven_steps_run_in_order_with_their_context() -> None:
    agent = AgentConfig(
        "planner", "custom", provider="fake", provider_options={"default": reply, "latency": 0.01}
    )
    orch = ProjectOrchestrator(AgentRegistry([agent]), name="refactor-task-executor")
    orch.add_tasks(
        AgentTask(
            step,
            title,
            description,
            dependencies=deps,
            deliverables=[f"step {step} done"],
            success_criteria=["existing tests still pass"],
        )
        for step, title, description, deps in STEPS
    )
    summary = await orch.run(max_concurrency=3)
    assert summary.ok
    llm = orch.executor.get_llm("planner")
    prompts = {
        call.messages[1]["content"].split(":", 1)[0].removeprefix("# Task "): call.messages[1][
            "content"
        ]
        for call in llm.calls  # type: ignore[attr-defined]
    }
    order = list(prompts)
    assert len(llm.calls) == 7  # type: ignore[attr-defined]
    assert order[:3] == ["4.1", "4.2", "4.3"]
    assert set(order[3:6]) == {"4.4", "4.5", "4.6"}
    assert order[6] == "4.7"
    for step, title, description, deps in STEPS:
        prompt = prompts[step]
        assert f"# Task {step}: {title}" in prompt
        assert description in prompt
        assert f"- step {step} done" in prompt
        for other, other_title, _, _ in STEPS:
            marker = f"### {other}: {other_title}\nRESULT-{other}"
            assert (marker in prompt) == (other in deps), (step, other)
        assert orch.get_result(step).output == f"RESULT-{step}"  # type: ignore[union-attr]
        assert orch.get_task(step).status is TaskStatus.COMPLETED
    # 4.4, 4.5 and 4.6 ran side by side once 4.3 was done: their calls overlap.
    middle = [orch.get_result(step) for step in ("4.4", "4.5", "4.6")]
    assert max(r.started_at for r in middle) < min(r.completed_at for r in middle)  # type: ignore[union-attr, type-var]
    assert min(r.started_at for r in middle) >= orch.get_result("4.3").completed_at  # type: ignore[union-attr, type-var]
    report = orch.generate_report()
    assert report["status_counts"]["completed"] == 7
    assert report["usage"]["total_tokens"] > 0
