"""``coditect plan`` through a real process (issue 16): the user's plan document, an agent on a
loopback OpenAI stub that answers first a graph with a cycle and an unknown dependency, then a
fixed one; the loader's messages reach it; the file written loads with ``run --dry-run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_projects import QUICKSTART_GRAPH, run_cli
from stub_server import StubServer, reply

from coditect_core.project import read_project_file

pytestmark = pytest.mark.timeout(120)

PLAN_DOC = Path(__file__).parent.parent / "data" / "plan_refactor_executor.md"
KEY = "sk-plan-test-8f2d1c"


def answer(edges: dict[str, list[str]]) -> str:
    tasks = [
        {
            "id": tid,
            "title": f"Step {tid[5:]} of the plan",
            "dependencies": deps,
            "source_step": f"### Step {tid[5:]}",
        }
        for tid, deps in edges.items()
    ]
    body = {"tasks": tasks, "unplaced": ["## 6. Future Work"]}
    return "```json\n" + json.dumps(body) + "\n```"


def agents_file(directory: Path, stub: StubServer) -> Path:
    spec: dict[str, Any] = {
        "agents": {
            "planner": {
                "type": "openai-gpt",
                "model": "gpt-4.1-nano",
                "base_url": stub.openai_url,
                "api_key": "${PLAN_TEST_KEY}",
                "max_tokens": 3000,
            },
            "coder": {"type": "custom", "provider": "fake", "capabilities": ["code"]},
        }
    }
    path = directory / "agents.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_plan_on_the_users_document_fixes_the_graph_from_the_loaders_messages(
    stub_server: StubServer, tmp_path: Path
) -> None:
    broken = dict(QUICKSTART_GRAPH)
    broken["STEP-4.1"] = ["STEP-4.7"]  # a cycle through the whole chain
    broken["STEP-4.3"] = ["STEP-4.2", "STEP-4.9"]  # and an unknown dependency
    stub_server.script(reply(answer(broken)), reply(answer(QUICKSTART_GRAPH)))
    out = tmp_path / "coditect.yaml"
    done = run_cli(
        "plan", PLAN_DOC, "-o", out, "--agents", agents_file(tmp_path, stub_server),
        "--agent", "planner", "--json",
        extra_env={"PLAN_TEST_KEY": KEY},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["answers"] == 2
    assert summary["agent"] == "planner"
    assert [t["id"] for t in summary["tasks"]] == list(QUICKSTART_GRAPH)
    assert summary["unplaced"] == ["## 6. Future Work"]
    assert summary["unnamed_headings"] == [
        "## 1. Introduction",
        "## 2. Goals",
        "## 3. High-Level Plan",
        "## 5. Potential Challenges and Risks",
        "## 7. Confirmation",
    ]

    first, second = (request.body["messages"] for request in stub_server.requests)
    assert first[1]["content"].endswith(PLAN_DOC.read_text(encoding="utf-8") + "\n>>>")
    fix = second[-1]["content"]
    assert "tasks[2].dependencies[1]: depends on unknown task 'STEP-4.9'" in fix
    assert "dependency cycle: STEP-4.1 -> STEP-4.7 ->" in fix
    assert second[-2]["role"] == "assistant"
    assert summary["refused"] == [fix.split("\n", 1)[1].split("\n\nFix these", 1)[0]]
    assert stub_server.requests[0].body["max_completion_tokens"] == 3000  # its own settings
    assert stub_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in done.stdout + done.stderr

    loaded = read_project_file(out)
    assert {t.id: list(t.dependencies) for t in loaded.spec.tasks} == QUICKSTART_GRAPH
    assert loaded.spec.defaults.agent == "planner"  # the agents file's first: the default
    assert loaded.spec.agents["planner"].api_key == "${PLAN_TEST_KEY}"
    text = out.read_text(encoding="utf-8")
    assert "by agent 'planner'" in text.splitlines()[0]
    assert "# - ## 6. Future Work" in text

    dry = run_cli("run", out, "--dry-run", extra_env={"PLAN_TEST_KEY": KEY})
    assert dry.returncode == 0, dry.stderr
    assert len(stub_server.requests) == 2  # a dry run sends nothing
    for tid in QUICKSTART_GRAPH:
        assert tid in dry.stdout + dry.stderr


def test_plan_refuses_an_existing_file_unless_forced(
    stub_server: StubServer, tmp_path: Path
) -> None:
    out = tmp_path / "coditect.yaml"
    out.write_text("# mine\n", encoding="utf-8")
    agents = agents_file(tmp_path, stub_server)
    args = ("plan", PLAN_DOC, "-o", out, "--agents", agents)
    refused = run_cli(*args, extra_env={"PLAN_TEST_KEY": KEY})
    assert refused.returncode == 2
    assert f"{out} already exists: say --force to replace it" in refused.stderr
    assert out.read_text(encoding="utf-8") == "# mine\n"
    assert stub_server.requests == []

    stub_server.script(reply(answer(QUICKSTART_GRAPH)))
    forced = run_cli(*args, "--force", extra_env={"PLAN_TEST_KEY": KEY})
    assert forced.returncode == 0, forced.stderr
    assert f"wrote {out}: 7 tasks planned from {PLAN_DOC} by agent 'planner'" in " ".join(
        forced.stderr.split()
    )
    assert read_project_file(out).task_ids == list(QUICKSTART_GRAPH)


def test_a_model_that_never_complies_exits_1_with_the_last_errors_and_writes_nothing(
    stub_server: StubServer, tmp_path: Path
) -> None:
    stub_server.script(
        *(reply(answer({"STEP-4.1": [f"STEP-{n}"]})) for n in (7, 8, 9)),
    )
    out = tmp_path / "coditect.yaml"
    done = run_cli(
        "plan", PLAN_DOC, "-o", out, "--agents", agents_file(tmp_path, stub_server), "--json",
        extra_env={"PLAN_TEST_KEY": KEY},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)
    assert error["exit_code"] == 1
    assert "failed the project-file checks 3 time(s)" in error["error"]
    assert "depends on unknown task 'STEP-9'" in error["error"]  # the last answer's
    assert "STEP-7" not in error["error"]
    assert len(stub_server.requests) == 3
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"GIF89a\0\0\x01", "a binary file (a NUL byte at offset 6)"),
        (b"Nothing but prose here.\n", "no steps found"),
    ],
    ids=["empty", "binary", "no steps"],
)
def test_a_broken_document_is_bad_input_and_nothing_is_written(
    tmp_path: Path, content: bytes, message: str
) -> None:
    doc = tmp_path / "plan.md"
    doc.write_bytes(content)
    out = tmp_path / "coditect.yaml"
    done = run_cli("plan", doc, "-o", out)
    assert done.returncode == 2
    assert f"error: {doc}: {message}" in " ".join(done.stderr.split())
    assert not out.exists()
