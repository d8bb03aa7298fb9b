"""Rough edges (issue 19, part 6): the environment failing, JSON errors, FIFOs, dry runs.

- A failure of the environment (a full disk, simulated with ``RLIMIT_FSIZE`` in the child; a
  read-only state folder, a read-only bind mount when the test runs as root, else ``chmod``)
  exits 4 with a one-line error (no traceback), at the start of a run and in the middle of one;
  with ``--json``, stdout holds ``{"error": ..., "exit_code": 4}``.
- Every failing command with ``--json`` prints its JSON error object (bad input: exit 2).
- A FIFO given as the project file is refused at once (it blocked forever).
- ``run --dry-run`` writes nothing: no ``.coditect/`` for a project never run, and an existing
  state left byte for byte.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_projects import QUICKSTART_GRAPH, coditect_argv, env, fake_project, run_cli

from coditect_core.errors import ProjectFileError
from coditect_core.project import read_project_file

pytestmark = pytest.mark.timeout(240)

GRAPH = {**QUICKSTART_GRAPH, **{f"EXTRA-{i}": ["STEP-4.7"] for i in range(30)}}


def _limited(max_file_bytes: int) -> Callable[[], None]:
    """For ``preexec_fn``: no file may grow past ``max_file_bytes`` (Python ignores SIGXFSZ,
    so a write past it fails with EFBIG, or short: SQLite's "disk full" or "disk I/O")."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return limit


def _cli(*args: str | Path, preexec: Callable[[], None] | None = None, wrap: list[str] = ()):
    return subprocess.run(
        [*wrap, *coditect_argv(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
        preexec_fn=preexec,
        check=False,
    )


def _assert_environment_failure(done: subprocess.CompletedProcess[str], as_json: bool) -> None:
    assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), done.stderr
    assert "the environment failed" in last, last
    if as_json:
        error = json.loads(done.stdout[done.stdout.rindex('{\n  "error"') :])
        assert error["exit_code"] == 4
        assert "the environment failed" in error["error"]


@pytest.mark.parametrize("as_json", [False, True], ids=["plain", "json"])
def test_a_full_disk_at_start_exits_4(tmp_path: Path, as_json: bool) -> None:
    project = fake_project(tmp_path)
    extra = ["--json"] if as_json else []
    done = _cli("run", project, *extra, preexec=_limited(0))
    _assert_environment_failure(done, as_json)
    if as_json:
        assert set(json.loads(done.stdout)) == {"error", "exit_code"}  # nothing else on stdout


def test_a_full_disk_during_a_rerun_exits_4_without_a_traceback(tmp_path: Path) -> None:
    """A rerun whose writes stop fitting at some point: wherever that is (opening, beginning
    the run, a task's record, the run's end), the exit is 4 and one error line."""
    project = fake_project(tmp_path, graph=GRAPH)
    assert run_cli("run", project).returncode == 0
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / ".coditect", saved)
    failed_mid_run = 0
    largest = max(p.stat().st_size for p in saved.iterdir())  # the WAL, as the run left it
    for limit in (0, *(largest + more for more in (5_000, 50_000, 100_000, 200_000, 400_000))):
        shutil.rmtree(tmp_path / ".coditect")
        shutil.copytree(saved, tmp_path / ".coditect")
        done = _cli("run", project, "--restart", preexec=_limited(limit))
        if done.returncode == 0:
            continue  # it all fitted
        _assert_environment_failure(done, as_json=False)
        failed_mid_run += "started " in done.stderr
    assert failed_mid_run, "no limit made the run fail after it started: make the graph larger"


def _read_only(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only (root ignores file modes: a
    read-only bind mount in a mount namespace of its own); [] once chmod made it so."""
    if os.geteuid() != 0:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only")
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}'"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {probe.stderr.decode()[:200]}")
    script = f'mount --bind -o ro "{folder}" "{folder}" && exec "$@"'
    return [unshare, "-m", "sh", "-c", script, "sh"]


def test_a_read_only_state_folder_exits_4(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    assert run_cli("run", project, "--only", "STEP-4.1").returncode == 0
    folder = tmp_path / ".coditect"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    wrap = _read_only(folder)
    try:
        _assert_environment_failure(_cli("run", project, wrap=wrap), as_json=False)
        _assert_environment_failure(_cli("run", project, "--json", wrap=wrap), as_json=True)
        done = _cli("task", "fail", project, "STEP-4.1", "--json", wrap=wrap)
        _assert_environment_failure(done, as_json=True)
    finally:
        folder.chmod(0o700)
        for path in folder.iterdir():
            path.chmod(0o600)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_the_views_read_a_state_in_a_read_only_folder(tmp_path: Path) -> None:
    """Reading needs no write: status, tasks and show work where the state cannot be written
    (no WAL file is left beside a closed store, and none can be made there)."""
    project = fake_project(tmp_path)
    assert run_cli("run", project).returncode == 0
    folder = tmp_path / ".coditect"
    wrap = _read_only(folder)
    try:
        status = _cli("status", project, "--json", wrap=wrap)
        shown = _cli("show", project, "STEP-4.1", "--json", wrap=wrap)
    finally:
        folder.chmod(0o700)
        for path in folder.iterdir():
            path.chmod(0o600)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == len(QUICKSTART_GRAPH)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"


def test_json_errors_for_bad_input(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    missing = tmp_path / "missing.yaml"
    for args in (
        ["status", missing],
        ["tasks", missing],
        ["next", missing],
        ["show", project, "NOPE"],
        ["run", missing],
        ["run", project, "--only", "NOPE"],
        ["run", missing, "--dry-run"],
        ["report", project],  # never run: no state
        ["agents", missing],
        ["doctor", missing],
        ["task", "complete", project, "NOPE"],
    ):
        done = run_cli(*args, "--json")
        assert done.returncode == 2, (args, done.stderr)
        error = json.loads(done.stdout)
        assert set(error) == {"error", "exit_code"}, args
        assert error["exit_code"] == 2
        assert error["error"] in done.stderr  # the same message, for people
    assert not (tmp_path / ".coditect").exists()


def test_a_fifo_as_the_project_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "project.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_project_file(fifo)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    reader.start()
    reader.join(1.0)
    assert not reader.is_alive(), "reading a FIFO project file blocked"
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome[0], ProjectFileError)
    assert "FIFO" in str(outcome[0])
    for args in (["run", fifo], ["status", fifo], ["agents", fifo], ["run", fifo, "--dry-run"]):
        done = run_cli(*args, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert "not a regular file" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    for extra in ([], ["--json"], ["--restart"], ["--only", "STEP-4.3"]):
        done = run_cli("run", project, "--dry-run", *extra)
        assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".coditect").exists()
    plan = json.loads(run_cli("run", project, "--dry-run", "--json").stdout)
    assert plan["run"][0] == "STEP-4.1"
    assert len(plan["run"]) == 7
    assert run_cli("run", project, "--only", "STEP-4.2").returncode == 0
    folder = tmp_path / ".coditect"

    def files() -> dict[str, bytes]:
        """The state's files; SQLite's side files (the WAL index, -shm, which any reader
        updates, and a WAL a reader may create empty) only when they hold something."""
        return {
            p.name: p.read_bytes()
            for p in folder.iterdir()
            if p.suffix != ".db-shm" and (p.suffix != ".db-wal" or p.stat().st_size)
        }

    before = files()
    plan = json.loads(run_cli("run", project, "--dry-run", "--json").stdout)
    assert set(plan["skip"]) == {"STEP-4.1", "STEP-4.2"}  # read from the state
    assert files() == before
