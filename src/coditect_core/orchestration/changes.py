"""A run's code changes: each writing task in its own worktree, its checks, its commit, its merge.

:class:`CodeChanges` wires a :class:`~coditect_core.tools.workspace.Workspace` to a run's
tasks. A writing task:

1. starts (:meth:`CodeChanges.start`) in a worktree made from the integration branch, which
   already holds its dependencies' changes (a task starts only once they completed, and a
   writing task completes only once its change is merged);
2. when its agent says it is done, runs its acceptance checks (:meth:`CodeChanges.gate`, the
   agent loop's hook): a failure's output goes back to the agent as the next message, up to
   ``check_attempts`` runs, after which the task fails with the last check's output
   (:class:`~coditect_core.errors.CheckFailedError`); every check run is recorded;
3. is committed and merged (:meth:`CodeChanges.finish`), one merge at a time; the change
   (branch, commits, files, lines) and its merge are recorded. A conflict raises
   :class:`~coditect_core.errors.MergeConflictError` naming the files (the caller fails the task
   or hands it to a person, as ``on_conflict`` says). A task that changed nothing says so.

Resuming is safe by construction: a branch a stopped run committed but did not merge is reused
(its commits are kept and merged with the rest), and a branch already merged is never merged
again (:meth:`Workspace.merge` checks ancestry first). A crashed run's worktrees are removed by
:meth:`CodeChanges.prepare`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import CheckFailedError, MergeConflictError
from ..tools.base import truncate_text
from ..tools.checks import Check, CheckResult, run_check
from ..tools.workspace import Diff, TaskWorktree, Workspace

if TYPE_CHECKING:
    from .handlers import Execution

__all__ = [
    "DIFF_KEPT_CHARS",
    "ChangeOutcome",
    "ChangeRecorder",
    "ChecksGate",
    "CodeChanges",
    "run_writing_task",
]

DIFF_KEPT_CHARS = 200_000
"""What the record of a task's change keeps of its diff's text (``show`` and the report read
it; the branch has it whole)."""

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ChangeRecorder(Protocol):
    """Where check runs and changes are recorded (the state store; ``NullRecorder``)."""

    async def record_check_run(
        self,
        run_id: int,
        task_id: str,
        *,
        attempt: int,
        command: str,
        exit_code: int | None,
        timed_out: bool = ...,
        output: str | None = ...,
        duration_s: float | None = ...,
    ) -> int: ...

    async def record_task_change(
        self,
        run_id: int,
        task_id: str,
        *,
        branch: str,
        start_commit: str | None,
        commit: str | None,
        files: Any = ...,
        diff: str | None = ...,
    ) -> int: ...

    async def record_merge(self, change_id: int, merge_commit: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What a writing task's change came to: its branch, its commit (None: it changed nothing)
    with its diff, and the merge commit it is in."""

    task_id: str
    branch: str
    start: str
    commit: str | None
    merge_commit: str | None
    diff: Diff | None = None
    already_merged: bool = False

    @property
    def changed(self) -> bool:
        return self.commit is not None

    def summary(self) -> str:
        """One line for the task's output: what it changed, or that it changed nothing."""
        if self.diff is None or not self.diff.files:
            return f"changed nothing (branch {self.branch})"
        d = self.diff
        return (
            f"changed {len(d.files)} file(s), +{d.lines_added} -{d.lines_removed}; "
            f"merged into the integration branch as {(self.merge_commit or '')[:12]}"
        )


@dataclass
class ChecksGate:
    """A task's acceptance checks as the agent loop's hook when the model answers without a
    tool call: ``None`` (passed: the loop ends), a message to send back (failed, tries left),
    or :class:`CheckFailedError` (failed ``attempts`` times)."""

    changes: CodeChanges
    task_id: str
    checks: Sequence[Check]
    attempts: int
    tried: int = 0
    results: list[CheckResult] = field(default_factory=list)

    async def __call__(self, *_: Any) -> str | None:
        if not self.checks:
            return None
        self.tried += 1
        failed = await self.changes.run_checks(self.task_id, self.checks, self.tried)
        self.results.extend(failed[1])
        if failed[0] is None:
            return None
        last = failed[0]
        if self.tried >= self.attempts:
            raise CheckFailedError(
                f"task {self.task_id!r}: a check still fails after {self.tried} "
                f"{'try' if self.tried == 1 else 'tries'}: {last.describe()}"
            )
        left = self.attempts - self.tried
        return (
            f"The acceptance check failed. Fix the problem; the checks run again when you "
            f"are done ({left} {'try' if left == 1 else 'tries'} left).\n\n{last.describe()}"
        )


class CodeChanges:
    """The writing tasks of one run, over one :class:`Workspace` (see the module's text)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        recorder: ChangeRecorder | None = None,
        run_id: int | None = None,
        checks: Mapping[str, Sequence[Check]] | None = None,
        check_attempts: Mapping[str, int] | None = None,
        check_env: Mapping[str, str] | None = None,
        keep_worktrees: bool = False,
        on_conflict: Callable[[str], str] | None = None,
        writing: set[str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.recorder = recorder
        self.run_id = run_id
        self.checks = dict(checks or {})
        self.check_attempts = dict(check_attempts or {})
        self.check_env = dict(check_env or {})
        self.keep_worktrees = keep_worktrees
        self.on_conflict = on_conflict or (lambda _task_id: "fail")
        self.writing = set(writing or ())
        """The tasks that change code (their agents have write tools)."""
        self._worktrees: dict[str, TaskWorktree] = {}

    def writes(self, task_id: str) -> bool:
        """Whether ``task_id`` runs in a worktree of its own (its agent has write tools)."""
        return task_id in self.writing

    async def prepare(self) -> int:
        """Remove what a crashed run left (its integration worktree, locks); its task
        worktrees stay for resumed tasks to go on in (:meth:`close` removes the others); how
        many were removed."""
        removed = await self.workspace.clean_stale(keep_tasks=True)
        if removed:
            logger.info("removed %d thing(s) a stopped run left", len(removed))
        return len(removed)

    async def start(self, task_id: str, *, resume: bool = False) -> TaskWorktree:
        """The task's worktree, made from the integration branch as it is now (``resume``: the
        one a stopped run left, kept as it was)."""
        worktree = await self.workspace.create_worktree(task_id, resume=resume)
        self._worktrees[task_id] = worktree
        return worktree

    def worktree(self, task_id: str) -> TaskWorktree:
        return self._worktrees[task_id]

    def gate(self, task_id: str) -> ChecksGate:
        """The hook that runs ``task_id``'s checks when its agent is done."""
        return ChecksGate(
            self, task_id, self.checks.get(task_id, ()), self.check_attempts.get(task_id, 2)
        )

    async def run_checks(
        self, task_id: str, checks: Sequence[Check], attempt: int
    ) -> tuple[CheckResult | None, list[CheckResult]]:
        """Run ``checks`` in the task's worktree in order, each recorded, stopping at the first
        failure: (the failure or None, every result)."""
        path = self._worktrees[task_id].path
        results: list[CheckResult] = []
        for check in checks:
            result = await run_check(check, path, env=self.check_env)
            results.append(result)
            if self.recorder is not None and self.run_id is not None:
                await self.recorder.record_check_run(
                    self.run_id, task_id, attempt=attempt, command=result.command,
                    exit_code=result.exit_code, timed_out=result.timed_out,
                    output=result.output_excerpt, duration_s=result.duration_s,
                )  # fmt: skip
            if not result.passed:
                logger.info("task %s: check %s failed (try %d)", task_id, check.command, attempt)
                return result, results
        return None, results

    async def finish(self, task_id: str, title: str) -> ChangeOutcome:
        """Commit the task's worktree, record the change, merge it into the integration branch
        and record the merge. Raises :class:`MergeConflictError` (the merge aborted; the
        branch and its commit kept)."""
        worktree = self._worktrees[task_id]
        ws = self.workspace
        committed = await ws.commit(worktree, f"{task_id}: {title}")
        diff = await ws.diff(worktree.start, committed.commit)
        has_commits = committed.commit != worktree.start
        change_id = None
        if self.recorder is not None and self.run_id is not None:
            change_id = await self.recorder.record_task_change(
                self.run_id, task_id, branch=worktree.branch, start_commit=worktree.start,
                commit=committed.commit if has_commits else None,
                files=[(f.path, f.added, f.removed) for f in diff.files],
                diff=truncate_text(diff.text, DIFF_KEPT_CHARS)[0] if diff.text else None,
            )  # fmt: skip
        if not has_commits:
            return ChangeOutcome(task_id, worktree.branch, worktree.start, None, None, diff)
        merged = await ws.merge(worktree.branch, f"Merge {task_id}: {title}")
        if change_id is not None and self.recorder is not None:
            await self.recorder.record_merge(change_id, merged.commit)
        return ChangeOutcome(
            task_id,
            worktree.branch,
            worktree.start,
            committed.commit,
            merged.commit,
            diff,
            merged.already_merged,
        )

    async def run_task(
        self,
        task_id: str,
        title: str,
        work: Callable[[TaskWorktree, ChecksGate], Awaitable[T]],
        *,
        resume: bool = False,
    ) -> tuple[T, ChangeOutcome]:
        """A writing task whole: its worktree made, ``work(worktree, gate)`` (the agent's loop,
        with ``gate`` as its answer hook), then its commit and merge; the worktree released
        whatever happens. What ``work`` or the merge raises is raised (a
        :class:`CheckFailedError`, a :class:`MergeConflictError`)."""
        worktree = await self.start(task_id, resume=resume)
        try:
            value = await work(worktree, self.gate(task_id))
            return value, await self.finish(task_id, title)
        finally:
            await self.release(task_id)

    async def release(self, task_id: str) -> None:
        """Remove the task's worktree (unless the run keeps them); its branch stays."""
        if self._worktrees.pop(task_id, None) is not None:
            await self.workspace.remove_worktree(task_id, keep=self.keep_worktrees)

    async def close(self) -> None:
        """Remove every worktree left (unless kept) and the integration worktree."""
        for task_id in list(self._worktrees):
            await self.release(task_id)
        await self.workspace.close(keep=self.keep_worktrees)


async def run_writing_task(
    execution: Execution,
    changes: CodeChanges,
    loop: Callable[[Path, ChecksGate], Awaitable[None]],
    *,
    resume: bool = False,
) -> None:
    """Run ``execution``'s task as a writing task: ``loop(worktree_path, gate)`` (the agent
    loop, its tools confined to the task's worktree, ``gate`` its answer hook) then its commit
    and merge (:meth:`CodeChanges.run_task`). The task's output gains what it changed (or that
    it changed nothing); its metadata the change. A merge conflict fails the task naming the
    files, or, with ``on_conflict: ask``, hands it to a person (the branch is kept, to merge by
    hand). ``resume``: the task goes on from its recorded turns, in the worktree the stopped
    run left."""
    task, result = execution.task, execution.result

    async def work(worktree: TaskWorktree, gate: ChecksGate) -> None:
        await loop(worktree.path, gate)

    try:
        _, outcome = await changes.run_task(task.task_id, task.title, work, resume=resume)
    except MergeConflictError as error:
        if changes.on_conflict(task.task_id) != "ask":
            raise
        from .execution_result import ExecutionStatus

        integration = changes.workspace.integration_branch
        result.status = ExecutionStatus.AWAITING_HUMAN
        result.metadata["conflict"] = {"branch": error.branch, "files": list(error.files)}
        result.metadata["handoff_prompt"] = (
            f"{error}.\nMerge branch {error.branch} into {integration} by hand (the files "
            f"above conflict), then: coditect task complete {task.task_id}"
        )
        logger.info("task %s: merge conflict handed to a person", task.task_id)
        return
    diff = outcome.diff
    result.metadata["change"] = {
        "branch": outcome.branch,
        "commit": outcome.commit,
        "merge_commit": outcome.merge_commit,
        "files_changed": len(diff.files) if diff else 0,
        "lines_added": diff.lines_added if diff else 0,
        "lines_removed": diff.lines_removed if diff else 0,
    }
    note = f"[{outcome.summary()}]"
    result.output = f"{result.output}\n\n{note}" if result.output else note
