"""``StateStore``: the durable record of a project's runs, tasks and attempts, in SQLite.

One file per project by default (:func:`default_state_path`: ``<project dir>/.coditect/state.db``,
mode 0600), opened with :meth:`StateStore.open`. It keeps projects, runs (start, end, status,
options), tasks (content hash, current status, last output), every status transition of every
task, and every attempt (agent, model, interface, times, status, error, tokens, latency, cost,
output). File format, identity checks and migrations: :mod:`.schema`.

Writes are ``async`` and go through one writer thread (:mod:`.writer`): the event loop never
blocks on SQLite, an awaited write has been *committed* when it returns, and writes are committed
in the order they were queued. The orchestrator's rules follow: ``await store.task_started(...)``
before the call goes out; ``task_finished(..., wait=False)`` queues the result without waiting,
which is enough for "committed before any dependent starts" because a dependent's start is queued
(and awaited) after it. A result that fails to be written is not lost from sight: later awaited
task writes are refused, and :meth:`~StateStore.flush`, :meth:`~StateStore.finish_run` or
:meth:`~StateStore.close` raise its error (:mod:`.writer`). WAL with ``synchronous=NORMAL``:
a committed write survives the death of the process (SIGKILL included); only an OS crash or power
loss may lose the last commits (``synchronous="FULL"`` closes that too, at a cost). SQLite copies
the WAL back into the database file itself (``wal_autocheckpoint``: in the commit that takes the
WAL past 1000 pages), which keeps the WAL near 4 MB (a reader in another process that reads
without a pause can delay the WAL's start-over, as with any WAL database); closing the store
folds the rest into the file.

A run (:meth:`~StateStore.begin_run` ... :meth:`~StateStore.finish_run`) holds the project's run
lock (:mod:`.lock`): a second live run is refused with :class:`RunLockedError`, and a lock
whose holder died is taken over. What a dead run left in flight is marked when the store is next
opened for writing (for every project whose lock is free; :attr:`StateStore.recovered`), and
again when a run begins (its holder may die in between): its attempts become ``interrupted``,
its in-progress tasks ``pending`` again, and the run itself ``interrupted``. ``restart=True``
begins a run that resets every task to ``pending`` (and releases tasks held by hand); earlier
runs, attempts and transitions stay in the history. Resume decisions:
:mod:`coditect_core.orchestration.resume`.

Concurrent writes share commits: the writer takes everything queued, runs it in one transaction
(each write in a savepoint of its own, with plain ``INSERT``/``UPDATE`` statements, :mod:`.ops`),
commits once, then answers every caller; a failing write is rolled back to its savepoint and
fails alone. Readers (``status`` from another process included) use their own connection and
see one consistent snapshot per call; ``StateStore.open(":memory:")`` is the same store without
a file (see :meth:`StateStore.open`). The store keeps only what it is given, and scrubs every
text value of known secrets before writing it (:class:`coditect_core.secrets.Scrubber`: values
of ``*_API_KEY``/``*_TOKEN``/``*_SECRET`` variables read at open and at each
:meth:`~StateStore.begin_run`, plus :meth:`~StateStore.add_secrets`). The original
orchestrator's ``project_state.json`` can be imported (:meth:`~StateStore.import_project_state`).

Every request of a run, and its answer, is kept in the call journal (:mod:`.journal`;
:meth:`~StateStore.run_journal`, :meth:`~StateStore.journal_stats`,
:meth:`~StateStore.clear_journal`), written by the same writer thread.

Recording a :class:`ProjectOrchestrator` run: :class:`~.observer.StoreObserver` (the
orchestrator routes every transition through its observers). :class:`NullRecorder` has the
store's write interface and keeps nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..errors import RunLockedError, StateError
from ..llm_abstractions.keys import Secret
from ..orchestration.resume import SuccessRecord
from ..orchestration.task import TaskStatus
from ..orchestration.tool_loop import RecordedLoop
from ..secrets import Scrubber
from .backups import DEFAULT_KEEP_BACKUPS, backup_state
from .journal import (
    JournalStats,
    RunJournal,
    answered_keys,
    clear_journal,
    read_journal_stats,
)
from .legacy import ImportReport, import_op, load_project_state
from .lock import AnyLock, LocalLock, LockHolder, RunLock, lock_path_for
from .ops import ActiveRun, Ops, coerce_task_status
from .records import (
    AttemptOutcome,
    AttemptRecord,
    AttemptStatus,
    CheckRunRecord,
    ProjectSnapshot,
    Recovery,
    RunInfo,
    RunRecord,
    TaskChangeRecord,
    TaskEvent,
    ToolCallRow,
    read_attempts,
    read_check_runs,
    read_loop,
    read_runs,
    read_snapshot,
    read_succeeded,
    read_task_changes,
    read_task_history,
    read_tool_calls,
)
from .schema import MEMORY, open_database, open_memory_database
from .writer import Writer

__all__ = ["StateStore", "default_state_path", "state_path_for"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def default_state_path(project_dir: str | os.PathLike[str]) -> Path:
    """Where a project's state lives by default: ``<project dir>/.coditect/state.db``."""
    return Path(project_dir) / ".coditect" / "state.db"


def state_path_for(
    project_path: str | os.PathLike[str], state: str | os.PathLike[str] | None
) -> Path:
    """Where a project's state lives: ``state`` if given, else ``.coditect/state.db`` beside it."""
    if state is not None:
        return Path(state)
    return default_state_path(Path(project_path).resolve().parent)


class StateStore:
    """The state database of one or more projects. Create with :meth:`open`; close when done
    (``close()``, ``await aclose()``, or use it as a context manager)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection | None,
        reader: sqlite3.Connection | None,
        scrubber: Scrubber,
    ) -> None:
        self.path = path
        self.readonly = conn is None
        self.in_memory = reader is None
        """A private database in memory (``open(":memory:")``): reads go through the writer."""
        self._reader = reader
        self._local_locks: dict[str, LockHolder] = {}  # in memory: projects with a live run
        self._read_lock = threading.Lock()
        self._scrubber = scrubber
        self._active: dict[int, ActiveRun] = {}  # touched only by the writer thread and close()
        self._ops = Ops(scrubber, self._active)
        self._writer = Writer(conn, path) if conn is not None else None
        self._closed = False
        self.recovered: list[Recovery] = []
        """What opening found left in flight by dead runs, and marked interrupted."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        synchronous: str = "NORMAL",
        check_integrity: bool = True,
        secrets: Iterable[str | Secret] = (),
        keep_backups: int = DEFAULT_KEEP_BACKUPS,
    ) -> StateStore:
        """Open (create, migrate) the state database at ``path``.

        Raises :class:`StateError` naming the path for a corrupt or foreign file, or one from a
        newer coditect-core; such a file is left exactly as it was. ``readonly`` never creates
        or writes (for ``status``). ``secrets`` are extra values to scrub from every write.
        A database with an older schema is backed up before it is migrated
        (:mod:`.backups`; the newest ``keep_backups`` backups are kept).
        Opening for writing marks what dead runs left in flight as interrupted (projects whose
        run lock is free only; see :attr:`recovered`). Synchronous: file checks and migrations.

        ``path=":memory:"`` opens a new private database in memory instead: the same schema,
        SQL, writer thread and group commit, nothing on disk and nothing durable; its readers
        use the writer's connection (one snapshot per call, between batches), its run lock is
        held in the store. For tests and as the baseline of ``bench/bench_store.py``.
        """
        if str(path) == MEMORY:
            if readonly:
                raise StateError("an in-memory state store cannot be opened read-only")
            return cls(Path(MEMORY), open_memory_database(), None, Scrubber(secrets))
        path = Path(path)
        conn = None
        if not readonly:
            conn = open_database(
                path,
                synchronous=synchronous,
                check_integrity=check_integrity,
                before_migrate=lambda at: backup_state(at, reason="migration", keep=keep_backups),
            )
        try:
            reader = open_database(
                path, readonly=True, check_integrity=readonly and check_integrity
            )
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        store = cls(path, conn, reader, Scrubber(secrets))
        if store._writer is not None:
            try:
                store.recovered = store._writer.call_sync(
                    store._ops.recover(store._lock),
                    solo=True,
                )
            except BaseException:
                store.close()
                raise
        return store

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop writing: everything queued is committed, runs still open are finished as
        ``interrupted`` (their in-flight attempts too), locks are released, connections closed.
        Raises the error of a write queued without waiting (``wait=False``) that failed and was
        not reported yet, once all that is done. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                for run_id in list(self._active):
                    try:
                        self._writer.call_sync(
                            self._ops.finish_run(run_id, "interrupted"), solo=True
                        )
                    except StateError:
                        logger.exception("%s: could not finish run %d on close", self.path, run_id)
        finally:
            with self._read_lock:
                if self._reader is not None:
                    self._reader.close()
            if self._writer is not None:
                # The writer's connection closes last: if no other process has the file open,
                # SQLite copies the WAL into the database file and removes it.
                self._writer.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def flush(self) -> None:
        """Return once every write queued so far is committed. Raises the error of a write
        queued without waiting (``wait=False``) that failed since the last report."""
        if self._writer is not None:
            await self._writer.flush()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> StateStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def add_secrets(self, *secrets: str | Secret | None) -> None:
        """Register more values to scrub (e.g. the agents' API keys)."""
        self._scrubber.add(*secrets)

    # -- runs --------------------------------------------------------------------------------

    async def begin_run(
        self,
        project: str,
        *,
        options: Mapping[str, Any] | None = None,
        restart: bool = False,
    ) -> RunInfo:
        """Take the project's run lock and record a new run.

        Raises :class:`RunLockedError` while another live run holds the project. Marks what a
        dead run left in flight as interrupted. ``restart`` resets every task to ``pending``.
        """
        lock = self._lock(project)
        return await self._call(
            self._ops.begin_run(
                project,
                dict(options or {}),
                restart,
                lock,
                os.getpid(),
                socket.gethostname(),
                time.time(),
            ),
            solo=True,
        )

    async def finish_run(
        self, run_id: int, status: str = "succeeded", *, drop_if_empty: bool = False
    ) -> bool:
        """Record the end of a run (``succeeded``, ``failed``, ``waiting``, ``interrupted``...)
        and release its lock. Attempts still in flight become ``interrupted``. With
        ``drop_if_empty``, a run that made no attempt and changed no task is not kept (it did
        nothing: everything was done already). Returns whether the run is kept. Then raises the
        error of a write queued without waiting that failed and was not reported yet."""
        return await self._call(
            self._ops.finish_run(run_id, str(status), drop_if_empty=drop_if_empty),
            solo=True,
            report=True,
        )

    # -- tasks and attempts ------------------------------------------------------------------

    async def define_tasks(self, run_id: int, hashes: Mapping[str, str]) -> None:
        """Record the project's tasks as they are defined now, with their content hashes
        (:func:`~coditect_core.orchestration.resume.task_content_hash`). New tasks start
        ``pending``; known ones keep their status (and the hash recorded at their last success)."""
        await self._call(self._ops.define_tasks(run_id, dict(hashes)))

    async def task_started(
        self,
        run_id: int,
        task_id: str,
        *,
        agent: str | None = None,
        model: str | None = None,
        interface: str | None = None,
        note: str | None = None,
    ) -> int:
        """The task goes ``in_progress`` and its first attempt begins; returns the attempt id.
        Await it before the call goes out."""
        return await self._call(
            self._ops.task_started(run_id, task_id, agent, model, interface, note, time.time())
        )

    async def attempt_started(
        self,
        run_id: int,
        task_id: str,
        *,
        agent: str | None = None,
        model: str | None = None,
        interface: str | None = None,
    ) -> int:
        """Another attempt of a task already in progress (a fallback agent); its id."""
        return await self._call(
            self._ops.attempt_started(run_id, task_id, agent, model, interface, time.time())
        )

    async def attempt_finished(self, attempt_id: int, outcome: AttemptOutcome) -> None:
        """Record how an attempt ended."""
        await self._call(self._ops.attempt_finished(attempt_id, outcome, time.time()))

    async def tool_called(self, attempt_id: int, call: ToolCallRow) -> None:
        """Record a tool call an agent loop ran under the turn ``attempt_id``; awaited until it
        is committed (a resumed loop does not run it again)."""
        await self._call(self._ops.tool_called(attempt_id, call, time.time()))

    async def tool_call_decided(
        self, attempt_id: int, marker: str, decision: str, answer: ToolCallRow | None = None
    ) -> None:
        """Record a person's decision on a tool call that waited for approval."""
        await self._call(
            self._ops.tool_call_decided(attempt_id, marker, decision, answer, time.time())
        )

    async def task_finished(
        self,
        run_id: int,
        task_id: str,
        status: TaskStatus | str,
        *,
        output: str | None = None,
        error: str | None = None,
        note: str | None = None,
        attempt_id: int | None = None,
        attempt: AttemptOutcome | None = None,
        held: bool = False,
        wait: bool = True,
    ) -> None:
        """The task reaches ``status`` (``completed`` records a success with the task's content
        hash); with ``attempt_id`` and ``attempt``, that attempt ends in the same transaction.
        ``held`` marks a task cancelled by hand (``status`` must be ``cancelled``): it stays
        cancelled, run after run, until another status is recorded for it; every other write
        of the task's status clears the mark.

        ``wait=True``: returns once it is committed. ``wait=False``: returns at once; it is
        committed after every write queued before it and before every write queued after it
        (so a dependent's awaited :meth:`task_started` still follows it). If it fails, every
        later awaited task write is refused, and the error is raised by the next
        :meth:`flush`, :meth:`finish_run` or :meth:`close`."""
        op = self._ops.task_finished(
            run_id,
            task_id,
            coerce_task_status(status),
            output,
            error,
            note,
            attempt_id,
            attempt,
            held,
            time.time(),
        )
        if wait:
            await self._call(op)
        elif self._writer is None:
            raise StateError(f"{self.path}: opened read-only")
        else:
            self._writer.post(op)

    async def record_check_run(
        self,
        run_id: int,
        task_id: str,
        *,
        attempt: int,
        command: str,
        exit_code: int | None,
        timed_out: bool = False,
        output: str | None = None,
        duration_s: float | None = None,
    ) -> int:
        """One run of a task's acceptance check (masked); its id."""
        return await self._call(
            self._ops.check_run(
                run_id, task_id, attempt, command, exit_code, timed_out, output, duration_s,
                time.time(),
            )
        )  # fmt: skip

    async def record_task_change(
        self,
        run_id: int,
        task_id: str,
        *,
        branch: str,
        start_commit: str | None,
        commit: str | None,
        files: Iterable[tuple[str, int | None, int | None]] = (),
        diff: str | None = None,
    ) -> int:
        """A writing task's committed change (``commit`` None: it changed nothing), with its
        files' lines added and removed and its diff (masked); its id, for
        :meth:`record_merge`."""
        return await self._call(
            self._ops.task_change(
                run_id, task_id, branch, start_commit, commit, list(files), diff, time.time()
            )
        )

    async def record_merge(self, change_id: int, merge_commit: str) -> None:
        """Task change ``change_id`` is merged into the integration branch as ``merge_commit``."""
        await self._call(self._ops.change_merged(change_id, merge_commit, time.time()))

    async def set_task_status(
        self,
        run_id: int,
        task_id: str,
        status: TaskStatus | str,
        *,
        note: str | None = None,
        held: bool = False,
    ) -> None:
        """Any other transition (``blocked``, ``cancelled``, ``awaiting_human``...); ``held``
        as in :meth:`task_finished`."""
        await self.task_finished(run_id, task_id, status, note=note, held=held)

    # -- reads -------------------------------------------------------------------------------

    async def load_succeeded(self, project: str) -> dict[str, SuccessRecord]:
        """:meth:`succeeded_tasks`, read without blocking the event loop."""
        if self._writer is None:
            return await asyncio.to_thread(self.succeeded_tasks, project)
        return await self._call(lambda conn: read_succeeded(conn, project))

    def succeeded_tasks(self, project: str) -> dict[str, SuccessRecord]:
        """Tasks whose current status is ``completed``: content hash at success, success
        sequence number and output (what
        :func:`~coditect_core.orchestration.resume.plan_resume` needs)."""
        return self.read(lambda conn: read_succeeded(conn, project))

    def snapshot(self, project: str) -> ProjectSnapshot:
        """Runs, tasks and in-flight attempts of ``project``, from one consistent snapshot."""
        return self.read(lambda conn: read_snapshot(conn, project))

    def runs(self, project: str) -> list[RunRecord]:
        return self.read(lambda conn: read_runs(conn, project))

    def task_history(self, project: str, task_id: str) -> list[TaskEvent]:
        """Every status transition of a task, oldest first."""
        return self.read(lambda conn: read_task_history(conn, project, task_id))

    def check_runs(self, project: str, task_id: str | None = None) -> list[CheckRunRecord]:
        """Acceptance check runs (of one task), oldest first."""
        return self.read(lambda conn: read_check_runs(conn, project, task_id))

    def task_changes(self, project: str, task_id: str | None = None) -> list[TaskChangeRecord]:
        """Writing tasks' changes (of one task), oldest first."""
        return self.read(lambda conn: read_task_changes(conn, project, task_id))

    def tool_calls(self, project: str, *, task_id: str | None = None) -> list[ToolCallRow]:
        """The tool calls of the project's agent loops (of one task), in the order they ran."""
        return self.read(lambda conn: read_tool_calls(conn, project, task_id=task_id))

    async def load_loops(self, project: str, task_ids: Iterable[str]) -> dict[str, RecordedLoop]:
        """The agent loops of ``task_ids`` that a killed run left unfinished
        (:func:`~.records.read_loop`), read without blocking the event loop."""
        wanted = list(task_ids)

        def read(conn: sqlite3.Connection) -> dict[str, RecordedLoop]:
            found = {tid: read_loop(conn, project, tid) for tid in wanted}
            return {tid: loop for tid, loop in found.items() if loop is not None}

        if self._writer is None:
            return await asyncio.to_thread(self.read, read)
        return await self._call(read)

    def attempts(
        self,
        project: str,
        *,
        task_id: str | None = None,
        run_id: int | None = None,
        status: AttemptStatus | str | None = None,
    ) -> list[AttemptRecord]:
        return self.read(
            lambda conn: read_attempts(
                conn,
                project,
                task_id=task_id,
                run_id=run_id,
                status=None if status is None else str(status),
            )
        )

    def import_project_state(
        self, path: str | os.PathLike[str], *, project: str | None = None
    ) -> ImportReport:
        """Import the original orchestrator's ``project_state.json`` (format version 2) as
        ``project`` (default: the file's ``project_id``). The file is verified first (checksum,
        version, metrics): a bad one raises :class:`StateError` and nothing is written. See
        :mod:`.legacy`."""
        state = load_project_state(path)
        name = project or state.project_id
        if not name:
            raise StateError(f"{state.path}: the file names no project_id; pass project=")
        lock = self._lock(name)
        return self.call_sync(import_op(state, name, self._scrubber, lock), solo=True)

    def lock_holder(self, project: str) -> LockHolder | None:
        """Who runs ``project`` now, as far as can be told (advisory; for display)."""
        return self._lock(project).holder()

    # -- the call journal --------------------------------------------------------------------

    def run_journal(self, run_id: int, *, replay_of: int | None = None) -> RunJournal:
        """The call journal of run ``run_id`` (begun), for its executor (:mod:`.journal`)."""
        return RunJournal(self, run_id, replay_of=replay_of)

    def journal_stats(self, project: str) -> JournalStats:
        """What ``project``'s call journal holds."""
        return self.read(lambda conn: read_journal_stats(conn, project))

    def answered(self, project: str, keys: Iterable[str]) -> set[str]:
        """Which of the request ``keys`` (:attr:`JournalRequest.key`) the journal of ``project``
        has an answer to: those a cached run would not send (a forecast counts them free)."""
        wanted = list(dict.fromkeys(keys))
        return self.read(lambda conn: answered_keys(conn, project, wanted))

    def clear_journal(self, project: str) -> int:
        """Forget ``project``'s call journal (refused while one of its runs is live); returns
        the number of answers forgotten."""
        lock = self._lock(project)
        holder = lock.holder()
        if holder is not None:
            raise RunLockedError(
                f"{project}: a run is live ({holder.describe()}); clear its journal once it ends"
            )
        return self.call_sync(clear_journal(project))

    @property
    def scrubber(self) -> Scrubber:
        """The mask every write goes through."""
        return self._scrubber

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` (a function of the writer's connection) in the writer thread, in order
        with every other write; its result once committed."""
        return await self._call(op)

    def post(self, op: Callable[[sqlite3.Connection], Any]) -> None:
        """Queue ``op`` without waiting (see :meth:`task_finished` with ``wait=False``)."""
        if self._writer is None:
            raise StateError(f"{self.path}: opened read-only")
        self._writer.post(op)

    # -- plumbing ----------------------------------------------------------------------------

    def _lock(self, project: str) -> AnyLock:
        if self.in_memory:
            return LocalLock(self._local_locks, project)
        return RunLock(lock_path_for(self.path, project), project)

    def _call(
        self, op: Callable[[sqlite3.Connection], T], *, solo: bool = False, report: bool = False
    ) -> asyncio.Future[T]:
        """Queue a write operation; await the returned future for its committed result."""
        if self._writer is None:
            raise StateError(f"{self.path}: opened read-only")
        return self._writer.submit(op, solo=solo, report=report)

    def call_sync(self, op: Callable[[sqlite3.Connection], T], *, solo: bool = False) -> T:
        """Run a write operation (a function of the writer's connection, see :mod:`.writer`)
        from synchronous code (importers, the CLI)."""
        if self._writer is None:
            raise StateError(f"{self.path}: opened read-only")
        return self._writer.call_sync(op, solo=solo)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` in one read transaction: a consistent picture across tables while a
        run writes (reports use it). ``fn`` must only read."""
        if self._reader is None:  # in memory: the writer's connection, between two batches
            if self._closed:
                raise StateError(f"{self.path}: the state store is closed")
            return self.call_sync(fn, solo=True)
        with self._read_lock:
            if self._closed:
                raise StateError(f"{self.path}: the state store is closed")
            conn = self._reader
            try:
                conn.execute("BEGIN")
                try:
                    return fn(conn)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as e:
                raise StateError(f"{self.path}: cannot read the state database: {e}") from e
