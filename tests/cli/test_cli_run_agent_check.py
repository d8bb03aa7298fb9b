"""``coditect run`` checks every agent its tasks can reach before anything runs (issue 18).

Through real ``coditect`` processes, with the keys' variables removed from the child's
environment: every problem is named at once (agent, variable, project file), the exit status
is 2, and nothing is written (no state file, no run recorded). Fallbacks and reviewers are in
reach; ``--agent`` and ``--only`` change what is; a person's agent needs no key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_projects import QUICKSTART_GRAPH, fake_project, run_cli

from coditect_core.store import StateStore

pytestmark = pytest.mark.timeout(120)

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
NO_KEYS = dict.fromkeys(KEY_VARIABLES, "")  # blank counts as unset

# STEP-4.2 runs on gpt (falling back to claude); STEP-4.5 on gemini; STEP-4.6 on a person.
AGENTS = {
    "gpt": {"type": "openai-gpt", "model": "gpt-4o-mini", "fallbacks": ["claude"]},
    "claude": {"type": "anthropic-claude", "model": "claude-3-5-haiku-latest"},
    "gemini": {"type": "google-gemini", "model": "gemini-2.0-flash"},
    "person": {"type": "custom", "interface": "interactive"},
}


def _state(project: Path) -> Path:
    return project.parent / ".coditect" / "state.db"


def _project(tmp_path: Path, **task_agents: str) -> Path:
    return fake_project(
        tmp_path,
        agents=AGENTS,
        task_agents=task_agents or {"STEP-4.2": "gpt", "STEP-4.5": "gemini", "STEP-4.6": "person"},
    )


def test_two_agents_without_keys_are_both_named_exit_2_and_no_state(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = run_cli("run", project, extra_env=NO_KEYS)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    # Every agent in reach with its variable, in one message; the fallback too.
    assert "agent 'gpt' (runs task 'STEP-4.2')" in err
    assert "set OPENAI_API_KEY" in err
    assert "agent 'claude' (fallback of 'gpt')" in err
    assert "set ANTHROPIC_API_KEY" in err
    assert "agent 'gemini' (runs task 'STEP-4.5')" in err
    assert "GEMINI_API_KEY" in err
    assert "3 agents this run needs are not ready" in err
    assert str(project) in err  # the project file
    assert f"coditect doctor {project}" in err
    # A person's agent, and the fake one, need nothing; no Python words.
    assert "'person'" not in err
    assert "'fake'" not in err
    assert "api_key=" not in err
    assert "Traceback" not in err
    # Nothing was run and nothing written: no state folder at all.
    assert not (tmp_path / ".coditect").exists()


def test_json_error_names_every_agent(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = run_cli("run", project, "--json", extra_env=NO_KEYS)
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["exit_code"] == 2
    for name in ("'gpt'", "'claude'", "'gemini'"):
        assert name in error["error"]
    assert not (tmp_path / ".coditect").exists()


def test_only_checks_the_agents_the_selected_tasks_reach(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # STEP-4.3 needs STEP-4.2 (gpt, then claude), not STEP-4.5 (gemini).
    done = run_cli("run", project, "--only", "STEP-4.3", extra_env=NO_KEYS)
    assert done.returncode == 2
    assert "'gpt'" in done.stderr
    assert "'claude'" in done.stderr
    assert "'gemini'" not in done.stderr
    assert "2 agents this run needs are not ready" in done.stderr
    assert not (tmp_path / ".coditect").exists()
    # STEP-4.1 alone reaches only the fake agent: it runs.
    done = run_cli("run", project, "--only", "STEP-4.1", extra_env=NO_KEYS)
    assert done.returncode == 0, done.stderr


def test_agent_override_takes_the_others_out_of_reach(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = run_cli("run", project, "--agent", "fake", "--json", extra_env=NO_KEYS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["completed"] == len(QUICKSTART_GRAPH)


def test_on_resume_nothing_is_recorded(tmp_path: Path) -> None:
    project = fake_project(tmp_path, agents=AGENTS)  # every task on the fake agent
    first = run_cli("run", project, extra_env=NO_KEYS)
    assert first.returncode == 0, first.stderr
    db = _state(project)
    before = db.read_bytes()
    with StateStore.open(db, readonly=True) as store:
        runs = len(store.runs("quick-fake"))
    # Now one task moves to an agent without a key: the resumed run refuses, records nothing.
    text = project.read_text(encoding="utf-8").replace(
        "- id: STEP-4.7\n", "- id: STEP-4.7\n  agent: gemini\n"
    )
    assert "agent: gemini" in text
    project.write_text(text, encoding="utf-8")
    done = run_cli("run", project, extra_env=NO_KEYS)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "agent 'gemini' (runs task 'STEP-4.7')" in done.stderr
    with StateStore.open(db, readonly=True) as store:
        assert len(store.runs("quick-fake")) == runs
    assert db.read_bytes() == before


def test_a_reviewer_is_in_reach(tmp_path: Path) -> None:
    agents = {
        **AGENTS,
        "checked": {"type": "custom", "provider": "fake", "interface": "hybrid", "reviewer": "gpt"},
    }
    project = fake_project(tmp_path, agents=agents, task_agents={"STEP-4.1": "checked"})
    done = run_cli("run", project, "--only", "STEP-4.1", extra_env=NO_KEYS)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "agent 'gpt' (reviews for 'checked')" in done.stderr
    assert "agent 'claude' (fallback of 'gpt')" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_an_unset_variable_and_a_missing_key_are_named_together(tmp_path: Path) -> None:
    agents = {
        **AGENTS,
        "cloud": {"type": "openai-gpt", "api_key": "${AGENT_CHECK_UNSET_KEY}"},
    }
    project = fake_project(
        tmp_path, agents=agents, task_agents={"STEP-4.2": "cloud", "STEP-4.5": "gemini"}
    )
    done = run_cli("run", project, extra_env=NO_KEYS)  # AGENT_CHECK_UNSET_KEY: never set
    assert done.returncode == 2, done.stdout + done.stderr
    # The variable where the file uses it (field and line), and the other agent's key.
    assert (
        "agent 'cloud' (runs task 'STEP-4.2'): agents.cloud.api_key: environment variable "
        "AGENT_CHECK_UNSET_KEY is not set (line "
    ) in done.stderr
    assert "agent 'gemini' (runs task 'STEP-4.5'): no API key: set GEMINI_API_KEY" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_what_is_in_reach() -> None:
    from coditect_core.app.doctor import agents_in_reach
    from coditect_core.project import parse_project_file

    text = """
agents:
  a: {type: openai-gpt, fallbacks: [idle, b]}
  b: {type: anthropic-claude, fallbacks: [c]}
  c: {type: google-gemini}
  idle: {type: openai-gpt, enabled: false}
  d: {type: custom, provider: fake}
tasks:
  - {id: T1, title: one, agent: a}
  - {id: T2, title: two, agent: d}
"""
    project_file = parse_project_file(text)
    # A disabled fallback is skipped by a run: not in reach; fallbacks of fallbacks are.
    assert agents_in_reach(project_file, ["T1"]) == {
        "a": "runs task 'T1'",
        "b": "fallback of 'a'",
        "c": "fallback of 'b'",
    }
    assert agents_in_reach(project_file, ["T2"]) == {"d": "runs task 'T2'"}
    assert agents_in_reach(project_file, ["T1", "T2"], "d") == {"d": "runs tasks 'T1', 'T2'"}
