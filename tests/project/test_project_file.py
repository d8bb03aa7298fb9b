"""Good project files: the quickstart and cloud examples, ``${VAR}`` expansion, the run's agents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coditect_core.errors import ProjectFileError
from coditect_core.llm_abstractions.keys import Secret
from coditect_core.orchestration import (
    AgentInterface,
    AgentTask,
    AgentType,
    ProjectPhase,
    TaskPriority,
    validate_tasks,
)
from coditect_core.project import load_project, parse_project_file, read_project_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart.yaml"
CLOUD = EXAMPLES / "cloud.yaml"
CLOUD_KEYS = {"ANTHROPIC_API_KEY": "sk-ant-1", "OPENAI_API_KEY": "sk-oa-2", "GEMINI_API_KEY": "g3"}


def test_quickstart_is_the_plan_as_a_graph() -> None:
    project = load_project(QUICKSTART, environ={})
    assert project.name == "refactor-task-executor"
    assert project.path == QUICKSTART
    assert [t.task_id for t in project.tasks] == [f"STEP-4.{n}" for n in range(1, 8)]
    assert project.graph() == {
        "STEP-4.1": [],
        "STEP-4.2": ["STEP-4.1"],
        "STEP-4.3": ["STEP-4.2"],
        "STEP-4.4": ["STEP-4.3"],
        "STEP-4.5": ["STEP-4.3"],
        "STEP-4.6": ["STEP-4.3"],
        "STEP-4.7": ["STEP-4.4", "STEP-4.5", "STEP-4.6"],
    }
    assert validate_tasks(project.tasks)[0] == "STEP-4.1"
    assert project.selected == [t.task_id for t in project.tasks]
    assert all(isinstance(t, AgentTask) and t.agent == "local" for t in project.tasks)
    assert project.task("STEP-4.3").priority is TaskPriority.CRITICAL
    assert project.task("STEP-4.7").phase is ProjectPhase.TESTING
    # the plan's own vocabulary reaches the prompts
    assert "_llm_factory" in project.task("STEP-4.2").description
    assert "generate_content_async" in project.task("STEP-4.3").description


def test_quickstart_runs_on_one_small_local_agent() -> None:
    project = load_project(QUICKSTART, environ={})
    assert project.agents.names() == ["local"]
    local = project.agents.get("local")
    assert local.agent_type is AgentType.LOCAL
    assert local.interface is AgentInterface.API
    assert local.max_tokens is not None
    assert local.max_tokens <= 512  # modest: room to finish (issue 18), not to ramble
    assert local.api_key is None
    assert project.defaults.max_concurrency == 2


def test_quickstart_commented_cloud_agents_are_valid_when_uncommented() -> None:
    text = QUICKSTART.read_text()
    uncommented = re.sub(r"(?m)^  # ", "  ", text)
    assert uncommented.count("type: ") == text.count("type: ")
    project_file = parse_project_file(uncommented, "quickstart-uncommented.yaml")
    assert list(project_file.spec.agents) == ["local", "claude", "gpt", "gemini", "ollama"]
    # the quickstart still runs offline: the cloud agents are not used, so no key is needed
    project = project_file.resolve(environ={})
    assert project.unavailable_agents == {"claude": "ANTHROPIC_API_KEY is not set"}
    project = project_file.resolve(agent_override="claude", environ=CLOUD_KEYS)
    assert {t.agent for t in project.tasks} == {"claude"}
    assert project.agents.get("claude").fallbacks == ["gpt"]


def test_cloud_example_with_every_key() -> None:
    project = load_project(CLOUD, environ=CLOUD_KEYS)
    assert project.agents.names() == ["claude", "gpt", "gemini", "ollama", "claude-code"]
    claude = project.agents.get("claude")
    assert claude.fallbacks == ["gpt", "gemini"]
    assert claude.api_key == Secret("sk-ant-1")
    assert project.agents.get("ollama").base_url == "http://localhost:11434/v1"
    assert project.agents.get("claude-code").command == ["claude", "-p", "--output-format", "text"]
    assert project.agents.get("claude-code").enabled is False
    assert project.task("REVIEW").agent == "claude"  # defaults.agent
    assert project.budget is not None
    assert project.budget.max_cost_usd == 2.0
    assert project.agent_settings["claude"].price is not None
    assert project.agent_settings["claude"].price.output == 15.0
    assert project.agent_settings["gemini"].fallback_on == "any"
    assert project.agent_settings["ollama"].max_concurrency == 1
    assert project.timeout_for("DESIGN") == 300
    assert project.warnings == []


def test_cloud_example_one_task_needs_one_key() -> None:
    project = load_project(CLOUD, only=["DOCS"], environ={"GEMINI_API_KEY": "g3"})
    assert project.selected == ["DOCS"]
    assert project.agents.get("gemini").fallbacks == []  # gpt has no key: left out
    assert project.warnings == [
        "agent 'gemini': fallback 'gpt' is left out: OPENAI_API_KEY is not set"
    ]
    assert project.unavailable_agents == {
        "claude": "ANTHROPIC_API_KEY is not set",
        "gpt": "OPENAI_API_KEY is not set",
    }
    assert "claude" not in project.agents
    with pytest.raises(ProjectFileError, match="GEMINI_API_KEY is not set"):
        load_project(CLOUD, only=["DOCS"], environ={"OPENAI_API_KEY": "x"})


ENV_PROJECT = """\
project: env
defaults: {agent: api}
agents:
  api:
    type: openai-compatible
    model: "${MODEL_NAME:-llama3.2}"
    base_url: "http://${HOST}:${PORT:-8080}/v1"
    api_key: "${TOKEN}"
    system_prompt: "Costs are in $${CURRENCY}; empty is '${EMPTY}'."
    options:
      extra_headers: {X-Team: "${TEAM}", X-Static: plain}
      retries: 2
  tool:
    type: custom
    interface: cli
    command: ["${TOOL_BIN:-mytool}", --model, "${MODEL_NAME:-small}"]
    enabled: false
  spare:
    type: anthropic-claude
    api_key: "${SPARE_KEY}"
tasks:
  - {id: T1, title: "Uses ${NOT_EXPANDED} literally"}
  - {id: T2, title: Spare work, agent: spare, dependencies: [T1]}
"""


def test_variables_expand_with_defaults_and_escapes() -> None:
    env = {"HOST": "gpu-box", "TOKEN": "tok-9", "TEAM": "core", "EMPTY": ""}
    project = parse_project_file(ENV_PROJECT).resolve(only=["T1"], environ=env)
    api = project.agents.get("api")
    assert api.model == "llama3.2"
    assert api.base_url == "http://gpu-box:8080/v1"
    assert api.api_key_value() == "tok-9"
    assert api.system_prompt == "Costs are in ${CURRENCY}; empty is ''."
    assert api.provider_options == {
        "extra_headers": {"X-Team": "core", "X-Static": "plain"},
        "retries": 2,
    }
    assert project.task("T1").title == "Uses ${NOT_EXPANDED} literally"
    # a disabled agent is not used: its defaults still apply
    assert project.agents.get("tool").command == ["mytool", "--model", "small"]
    env["MODEL_NAME"] = "big"
    assert parse_project_file(ENV_PROJECT).resolve(only=["T1"], environ=env).agents.get(
        "tool"
    ).command == ["mytool", "--model", "big"]


def test_only_the_agents_of_the_run_need_their_variables() -> None:
    project_file = parse_project_file(ENV_PROJECT, "env.yaml")
    env = {"HOST": "h", "TOKEN": "t", "TEAM": "c", "EMPTY": ""}
    project = project_file.resolve(only=["T1"], environ=env)
    assert project.unavailable_agents == {"spare": "SPARE_KEY is not set"}
    assert "spare" not in project.agents
    with pytest.raises(ProjectFileError) as caught:
        project_file.resolve(environ=env)  # T2 runs on spare
    assert caught.value.field == "agents.spare.api_key"
    assert caught.value.line == 20
    assert "SPARE_KEY" in str(caught.value)
    # T2 alone needs spare and not api
    project = project_file.resolve(only=["T2"], environ={"SPARE_KEY": "s"})
    assert project.selected == ["T2"]
    assert project.unavailable_agents == {"api": "TOKEN, HOST, EMPTY, TEAM are not set"}
    # the override takes every selected task, and only it must resolve
    project = project_file.resolve(agent_override="spare", environ={"SPARE_KEY": "s"})
    assert [t.agent for t in project.tasks] == ["spare", "spare"]
    assert project_file.variables() == {
        "api": ["TOKEN", "HOST", "EMPTY", "TEAM"],
        "tool": [],
        "spare": ["SPARE_KEY"],
    }
    assert project_file.with_dependencies(["T2"]) == ["T1", "T2"]


def test_secrets_never_reach_a_repr() -> None:
    env = {"HOST": "h", "TOKEN": "tok-SECRET-1", "TEAM": "c", "EMPTY": "", "SPARE_KEY": "sk-S-2"}
    project_file = parse_project_file(ENV_PROJECT)
    project = project_file.resolve(environ=env)
    shown = " ".join(
        [
            repr(project),
            str(project),
            repr(project_file),
            repr(project_file.spec),
            repr(project.agents),
            *(repr(agent) for agent in project.agents),
            *(str(agent.to_dict()) for agent in project.agents),
        ]
    )
    assert "SECRET" not in shown
    assert "sk-S-2" not in shown
    assert project.agents.get("spare").api_key_value() == "sk-S-2"


def test_literal_key_in_the_file_is_a_secret_too() -> None:
    text = "agents: {gpt: {type: openai-gpt, api_key: sk-LITERAL}}\ntasks: [{id: T1, title: a}]\n"
    project_file = parse_project_file(text)
    project = project_file.resolve(environ={})
    assert "sk-LITERAL" not in repr(project_file.spec) + repr(project.agents.get("gpt"))
    assert project.agents.get("gpt").api_key_value() == "sk-LITERAL"


def test_defaults_and_the_sole_agent() -> None:
    text = """\
defaults: {priority: low, timeout: 30}
agents:
  only: {type: local}
tasks:
  - {id: a, title: A}
  - {id: b, title: B, priority: high, timeout: 5, estimated_hours: 2, tags: [x]}
"""
    project = parse_project_file(text, "named.yaml").resolve(environ={})
    assert project.name == "named"  # no `project:` key: the file name
    assert project.path == Path("named.yaml")
    assert [t.agent for t in project.tasks] == ["only", "only"]
    assert project.task("a").priority is TaskPriority.LOW
    assert project.task("b").priority is TaskPriority.HIGH
    assert project.task_timeouts == {"b": 5}
    assert (project.timeout_for("a"), project.timeout_for("b")) == (30, 5)
    assert project.task("b").estimated_hours == 2
    assert project.defaults.max_concurrency == 4
    assert project.runner == "local"
    assert project.budget is None


def test_later_keys_are_read_and_typed() -> None:
    text = """\
runner: ray
budget: {max_cost_usd: 1.5, max_tokens: 100000}
agents:
  gpt:
    type: openai-gpt
    requests_per_minute: 60
    tokens_per_minute: 90000
    max_concurrency: 3
    price: {input: 0.15, output: 0.6}
    fallback_on: any
    resources: {num_cpus: 0.5, num_gpus: 1}
tasks: [{id: T1, title: a}]
"""
    project = parse_project_file(text).resolve(environ={})
    assert project.runner == "ray"
    assert project.budget is not None
    assert (project.budget.max_cost_usd, project.budget.max_tokens) == (1.5, 100000)
    settings = project.agent_settings["gpt"]
    assert settings.requests_per_minute == 60
    assert settings.tokens_per_minute == 90000
    assert settings.max_concurrency == 3
    assert settings.price is not None
    assert (settings.price.input, settings.price.output) == (
        0.15,
        0.6,
    )
    assert settings.fallback_on == "any"
    assert settings.resources is not None
    assert settings.resources.num_gpus == 1


def test_anchors_and_merge_keys_work_and_may_be_overridden() -> None:
    text = """\
x-base: &base {type: openai-gpt, model: gpt-4o-mini, temperature: 0.1}
agents:
  fast: {<<: *base}
  careful: {<<: *base, temperature: 0.0}
defaults: {agent: fast}
tasks: [{id: T1, title: a}]
"""
    with pytest.raises(ProjectFileError, match=r"unknown field 'x-base' in the top level"):
        parse_project_file(text)
    text = text.replace("x-base: &base {type", "agents:\n  base: &base {type").replace(
        "agents:\n  fast", "  fast"
    )
    project = parse_project_file(text).resolve(environ={})
    assert project.agents.get("careful").temperature == 0.0
    assert project.agents.get("fast").temperature == 0.1


def test_read_from_disk_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("agents: {local: {type: local}}\ntasks: [{id: T1, title: a}]\n")
    project_file = read_project_file(path)
    assert project_file.path == str(path)
    assert project_file.name == "plan"
    assert load_project(path, environ={}).path == path


@pytest.mark.parametrize(
    ("text", "env", "expected", "missing"),
    [
        ("${A}", {"A": "1"}, "1", []),
        ("x${A}y${B}z", {"A": "1", "B": "2"}, "x1y2z", []),
        ("${A:-dflt}", {}, "dflt", []),
        ("${A:-dflt}", {"A": ""}, "dflt", []),  # like a shell: empty takes the default
        ("${A:-}", {}, "", []),
        ("${A}", {"A": ""}, "", []),  # set but empty is not missing
        ("${A}-${B}", {}, "-", ["A", "B"]),
        ("$${A} and $A", {"A": "1"}, "${A} and $A", []),
        ("${A:-http://h:1/v1}", {}, "http://h:1/v1", []),
    ],
)
def test_expand(text: str, env: dict[str, str], expected: str, missing: list[str]) -> None:
    from coditect_core.project.env import expand

    assert expand(text, env) == (expected, missing)


@pytest.mark.parametrize("text", ["${A", "${}", "${1A}", "${A B}", "${A:default}", "${A-x}"])
def test_malformed_reference(text: str) -> None:
    from coditect_core.project.env import VariableSyntaxError, references

    with pytest.raises(VariableSyntaxError, match="malformed variable reference"):
        references(text)


def test_unquoted_variable_in_a_flow_sequence_gets_the_hint() -> None:
    text = "agents:\n  cli: {type: custom, interface: cli, command: [${BIN}, -p]}\ntasks: []\n"
    with pytest.raises(ProjectFileError, match=r"must be quoted") as caught:
        parse_project_file(text)
    assert caught.value.line == 2


def test_importing_the_loader_imports_no_sdk() -> None:
    import json
    import subprocess
    import sys

    sdks = ["openai", "anthropic", "google.genai", "llama_cpp", "ray"]
    code = (
        "import json, sys\nimport coditect_core.project\n"
        f"print(json.dumps([m for m in {sdks!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_disabled_and_review_chains_decide_what_is_required() -> None:
    text = """\
defaults: {agent: local}
agents:
  local: {type: local}
  idle: {type: openai-gpt, api_key: "${IDLE_KEY}", enabled: false}
  writer: {type: local, interface: hybrid, reviewer: critic}
  critic: {type: openai-gpt, api_key: "${CRITIC_KEY}"}
tasks:
  - {id: T1, title: a}
  - {id: T2, title: b, agent: idle}
  - {id: T3, title: c, agent: writer}
"""
    project_file = parse_project_file(text)
    # T2's agent is disabled, so the run will not call it: its key is not required
    project = project_file.resolve(only=["T1", "T2"], environ={})
    assert project.unavailable_agents == {
        "idle": "IDLE_KEY is not set",
        "writer": "its reviewer 'critic' is unavailable",
        "critic": "CRITIC_KEY is not set",
    }
    assert project.agents.names() == ["local"]
    with pytest.raises(ProjectFileError, match="CRITIC_KEY is not set"):
        project_file.resolve(only=["T3"], environ={})
    project = project_file.resolve(only=["T3"], environ={"CRITIC_KEY": "c"})
    assert project.agents.get("writer").reviewer == "critic"
