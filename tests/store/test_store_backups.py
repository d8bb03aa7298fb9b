"""State backups: online while a run writes, bounded, restored, refused while a run is live;
automatic before ``--restart`` and before a migration; ``coditect state`` in subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cli_projects import coditect_argv, env, fake_project, run_cli, run_json

from coditect_core.errors import RunLockedError, StateError
from coditect_core.store import StateStore, backup_state, list_backups, restore_backup
from coditect_core.store.schema import MIGRATIONS, SCHEMA_VERSION, open_database, read_header

PROJECT = "quick-fake"


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _digest(path: Path) -> str:
    """What a state holds, row by row (not its bytes: a WAL file holds some of them)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        conn.close()


def _counts(path: Path) -> dict[str, int]:
    with StateStore.open(path, readonly=True) as store:
        return store.snapshot(PROJECT).counts


async def _one_run(db: Path, project: str = PROJECT) -> None:
    async with StateStore.open(db) as store:
        info = await store.begin_run(project)
        await store.finish_run(info.run_id, "succeeded")


def test_backup_during_a_live_run_is_whole_and_restores(tmp_path: Path) -> None:
    """A run in a subprocess writes 300 tasks while backups are taken: every backup passes
    ``PRAGMA integrity_check``, opens as a state, and one taken mid-run restores exactly."""
    graph = {f"T{i:03d}": [] for i in range(300)}
    project = fake_project(tmp_path, graph=graph, latency=0.005)
    spec = yaml.safe_load(project.read_text())
    spec["defaults"]["max_concurrency"] = 4
    spec["keep_backups"] = 50
    project.write_text(yaml.safe_dump(spec))
    db = tmp_path / ".coditect" / "state.db"
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        child = subprocess.Popen(
            [*coditect_argv(), "run", str(project)], stdout=sink, stderr=sink, env=env()
        )
    made = []
    try:
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if db.exists() and (made or _header_ok(db)):
                made.append(backup_state(db, keep=50))
            time.sleep(0.05)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, log.read_text()
    assert len(made) >= 3, "the run ended before three backups could be taken"
    mid_run = []
    for backup in made:
        assert backup.path.exists()
        assert _integrity(backup.path) == "ok"
        assert backup.path.stat().st_mode & 0o777 == 0o600
        assert not Path(f"{backup.path}-wal").exists()  # one self-contained file
        counts = _counts(backup.path)
        if 0 < counts.get("completed", 0) < 300:
            mid_run.append((backup, counts))
    assert mid_run, "no backup caught the run half-way"
    assert _counts(db) == {"completed": 300}
    chosen, counts = mid_run[len(mid_run) // 2]
    expected = _digest(chosen.path)
    restored, before = restore_backup(db, chosen.name, projects=[PROJECT], keep=50)
    assert restored.path == chosen.path
    assert before is not None
    assert before.reason == "before-restore"
    assert _counts(before.path) == {"completed": 300}  # the state it replaced, kept
    assert _digest(db) == expected
    assert _counts(db) == counts
    assert _integrity(db) == "ok"
    # the restored state is a usable store: it opens for writing and runs again
    asyncio.run(_one_run(db))


def _header_ok(db: Path) -> bool:
    header = read_header(db)
    return header is not None and header[1] == SCHEMA_VERSION


def test_the_number_of_backups_stays_bounded(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(_one_run(db))
    made = [backup_state(db, keep=3) for _ in range(8)]
    kept = list_backups(db)
    assert [b.path for b in kept] == [b.path for b in reversed(made[-3:])]  # newest first
    assert len(list((tmp_path / "backups").iterdir())) == 3
    with pytest.raises(ValueError, match="at least 1"):
        backup_state(db, keep=0)
    with pytest.raises(StateError, match="nothing to back up"):
        backup_state(tmp_path / "none.db")


def test_restore_is_refused_while_a_run_holds_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(_one_run(db))
    backup = backup_state(db)

    async def hold_and_try() -> None:
        async with StateStore.open(db) as store:
            info = await store.begin_run(PROJECT)  # the run lock, held
            before = _digest(db)
            with pytest.raises(RunLockedError, match="is being run by"):
                restore_backup(db, backup.name, projects=[PROJECT])
            assert _digest(db) == before  # nothing changed
            assert [b.path for b in list_backups(db)] == [backup.path]  # no backup either
            await store.finish_run(info.run_id, "succeeded")

    asyncio.run(hold_and_try())


def test_a_bad_backup_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    asyncio.run(_one_run(db))
    backup = backup_state(db)
    before = _digest(db)
    with pytest.raises(StateError, match="no such backup"):
        restore_backup(db, "state-20990101T000000000000Z-manual.db")
    backup.path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # not ours
    with pytest.raises(StateError, match="not a coditect state database"):
        restore_backup(db, backup.name)
    assert _digest(db) == before
    assert len(list_backups(db)) == 1  # the refused restore made no backup


def test_a_migration_is_preceded_by_a_backup(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    older = MIGRATIONS[:-1]
    open_database(db, migrations=older).close()
    assert read_header(db)[1] == older[-1][0]
    StateStore.open(db, keep_backups=2).close()
    assert read_header(db)[1] == SCHEMA_VERSION
    (backup,) = list_backups(db)
    assert backup.reason == "migration"
    assert read_header(backup.path)[1] == older[-1][0]  # the state as it was before
    StateStore.open(db).close()  # nothing to migrate: no new backup
    assert len(list_backups(db)) == 1


def test_cli_state_commands_and_the_restart_backup(tmp_path: Path) -> None:
    """``coditect run --restart`` backs up first; ``state backup``, ``list-backups`` and
    ``restore`` through real subprocesses; ``keep_backups:`` bounds them."""
    project = fake_project(tmp_path)
    spec = yaml.safe_load(project.read_text())
    spec["keep_backups"] = 2
    project.write_text(yaml.safe_dump(spec))
    db = tmp_path / ".coditect" / "state.db"
    assert run_cli("run", project).returncode == 0
    first = _digest(db)
    assert run_json("state", "list-backups", project)["backups"] == []
    made = run_json("state", "backup", project)["backup"]
    assert made["reason"] == "manual"
    assert Path(made["path"]).parent == tmp_path / ".coditect" / "backups"
    assert run_cli("run", project, "--restart").returncode == 0
    listed = run_json("state", "list-backups", project)["backups"]
    assert [b["reason"] for b in listed] == ["restart", "manual"]
    assert _digest(db) != first
    done = run_json("state", "restore", project, made["name"])
    assert done["restored"]["name"] == made["name"]
    assert done["previous_state"]["reason"] == "before-restore"
    assert _digest(db) == first
    listed = run_json("state", "list-backups", project)["backups"]
    assert len(listed) == 2  # keep_backups: 2
    text = run_cli("state", "list-backups", project)
    assert text.returncode == 0
    assert "before-restore" in text.stdout
    missing = run_cli("state", "restore", project, "nope.db", "--json")
    assert missing.returncode == 2
    assert "no such backup" in json.loads(missing.stdout)["error"]


def test_cli_restore_is_refused_while_a_run_is_live(tmp_path: Path) -> None:
    project = fake_project(tmp_path, latency=30.0, graph={"SLOW": []})
    db = tmp_path / ".coditect" / "state.db"
    assert run_cli("state", "backup", project).returncode == 2  # no state yet
    asyncio.run(_one_run(db))
    name = run_json("state", "backup", project)["backup"]["name"]
    child = subprocess.Popen(
        [*coditect_argv(), "run", str(project)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    try:
        # Wait until the run holds the lock and its call is out (its attempt started): from
        # then on it writes nothing for 30 s, so a change of the state would be the restore's.
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the run never started its call"
            with StateStore.open(db, readonly=True) as store:
                if store.lock_holder(PROJECT) is not None and any(
                    a.finished_at is None for a in store.attempts(PROJECT, task_id="SLOW")
                ):
                    break
            time.sleep(0.05)
        before = _digest(db)
        refused = run_cli("state", "restore", project, name)
        assert refused.returncode == 2
        assert "is being run by" in refused.stderr
        assert "nothing restored" in refused.stderr
        assert _digest(db) == before
        assert len(list_backups(db)) == 1
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_keep_backups_must_be_positive(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    spec = yaml.safe_load(project.read_text())
    spec["keep_backups"] = 0
    project.write_text(yaml.safe_dump(spec))
    done = run_cli("state", "backup", project)
    assert done.returncode == 2
    assert "keep_backups" in done.stderr
    assert not (tmp_path / ".coditect").exists()


def test_without_project_the_commands_use_coditect_yaml_here(tmp_path: Path) -> None:
    """``state backup``, ``list-backups`` and ``restore BACKUP`` (one word: the backup) find
    ./coditect.yaml as the other commands do."""
    fake_project(tmp_path, filename="coditect.yaml")

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*coditect_argv(), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env(),
            cwd=tmp_path,
            check=False,
        )

    assert here("run").returncode == 0
    made = json.loads(here("state", "backup", "--json").stdout)["backup"]
    listed = json.loads(here("state", "list-backups", "--json").stdout)["backups"]
    assert [b["name"] for b in listed] == [made["name"]]
    done = here("state", "restore", made["name"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["restored"]["name"] == made["name"]
    missing = here("state", "restore")
    assert missing.returncode == 2
    assert "missing argument BACKUP" in missing.stderr
