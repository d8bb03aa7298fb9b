"""Acceptance checks run for real: exit codes, output excerpts, timeouts that end the whole
process tree, a minimal environment, the worktree as the directory."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from orch_helpers import wait_gone

from coditect_core.tools.checks import Check, run_check, run_checks

PY = sys.executable


def py(code: str, timeout: float = 30.0) -> Check:
    return Check((PY, "-c", code), timeout)


async def test_a_passing_check(tmp_path: Path) -> None:
    result = await run_check(py("print('ok')"), tmp_path)
    assert result.passed
    assert result.exit_code == 0
    assert result.output_excerpt == "ok\n"
    assert not result.timed_out
    assert result.duration_s > 0
    assert result.command == f"{PY} -c print('ok')"


async def test_a_failing_check_keeps_stdout_and_stderr(tmp_path: Path) -> None:
    code = "import sys; print('1 failed'); sys.stderr.write('boom\\n'); sys.exit(3)"
    result = await run_check(py(code), tmp_path)
    assert not result.passed
    assert result.exit_code == 3
    assert "1 failed" in result.output_excerpt
    assert "boom" in result.output_excerpt
    assert "exited with status 3" in result.describe()


async def test_it_runs_in_the_given_directory(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here")
    result = await run_check(py("print(open('marker.txt').read())"), tmp_path)
    assert result.output_excerpt.strip() == "here"


async def test_output_is_capped_with_a_truncated_marker(tmp_path: Path) -> None:
    code = "print('HEAD'); print('x' * 100000); print('TAIL')"
    result = await run_check(py(code), tmp_path, excerpt_bytes=2000)
    assert len(result.output_excerpt) < 2200
    assert "truncated" in result.output_excerpt
    assert result.output_excerpt.startswith("HEAD")
    assert result.output_excerpt.rstrip().endswith("TAIL")


async def test_a_timeout_kills_the_check_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = await run_check(Check((PY, "-c", code), 1.0), tmp_path)
    assert time.monotonic() - started < 15
    assert result.timed_out
    assert not result.passed
    assert result.exit_code is None
    assert "timed out" in result.describe()
    assert wait_gone(int(pid_file.read_text()))


async def test_the_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("SOME_OTHER", "x")
    names = "('OPENAI_API_KEY', 'SOME_OTHER', 'PASSED')"
    code = f"import os; print(sorted(k for k in os.environ if k in {names}))"
    result = await run_check(py(code), tmp_path, env={"PASSED": "1"})
    assert result.output_excerpt.strip() == "['PASSED']"
    assert "sk-secret" not in result.output_excerpt


async def test_a_missing_command_is_a_failed_check(tmp_path: Path) -> None:
    result = await run_check(Check(("no-such-command-xyz", "--flag")), tmp_path)
    assert not result.passed
    assert result.exit_code == 127
    assert "not found" in result.output_excerpt


async def test_checks_stop_at_the_first_failure(tmp_path: Path) -> None:
    results = await run_checks(
        [py("print(1)"), py("import sys; sys.exit(1)"), py("print(3)")], tmp_path
    )
    assert [r.exit_code for r in results] == [0, 1]


@pytest.mark.parametrize(
    ("argv", "timeout"),
    [((), 1.0), (("",), 1.0), (("pytest",), 0.0), (("pytest",), -1.0)],
)
def test_a_bad_check_is_refused(argv: tuple[str, ...], timeout: float) -> None:
    with pytest.raises(ValueError, match="check"):
        Check(argv, timeout)
