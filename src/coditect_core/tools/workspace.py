"""The git repository of a run: an integration branch, a worktree per writing task, merges.

A run never touches the user's checked-out branch, index or working tree. It works on an
*integration branch* (default ``coditect/<project>``) made from a *base branch* (default the
branch the repository has checked out). Each writing task gets its own worktree on a *task
branch* made from the integration branch's tip, and its changes are committed there and merged
into the integration branch one at a time, in a worktree of the integration branch's own (never
the user's). Every worktree lives under the repository's git directory
(``<git-common-dir>/coditect/worktrees/<integration branch>/``), out of the user's tree.

Task branches are named ``<integration branch>-tasks/<task id>`` (``coditect/web-tasks/t1``):
git cannot hold both a branch ``coditect/web`` and branches under ``coditect/web/``.

Git runs as an argv (no shell), in asyncio subprocesses, with a minimal environment
(:func:`~coditect_core.llm_abstractions.process.command_environment`), without the user's
global or system configuration, and with the run's identity passed as ``-c user.name`` and
``-c user.email``. This module knows no tasks, no store, no project file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MergeConflictError, WorkspaceError
from ..llm_abstractions.process import command_environment

__all__ = [
    "DEFAULT_AUTHOR",
    "IGNORED_BY_DEFAULT",
    "CommitResult",
    "Diff",
    "FileChange",
    "MergeResult",
    "TaskWorktree",
    "Workspace",
    "git",
    "integration_branch_name",
    "parse_author",
]

logger = logging.getLogger(__name__)

DEFAULT_AUTHOR = "coditect <coditect@localhost>"
"""Who commits a task's changes unless the project file says otherwise."""

IGNORED_BY_DEFAULT = (
    "__pycache__/",
    "*.py[co]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".coverage",
    ".hypothesis/",
)
"""What a task's commit leaves out even where the repository does not ignore it: the caches
its checks write (the user's global ignore file is not read: git runs without their global
configuration)."""

_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def parse_author(author: str) -> tuple[str, str]:
    """``"Name <email>"`` as ``(name, email)``; a :class:`WorkspaceError` naming it if not."""
    match = _AUTHOR.match(author)
    if match is None:
        raise WorkspaceError(f"commit author {author!r} is not of the form 'Name <email>'")
    return match["name"], match["email"]


def integration_branch_name(project: str) -> str:
    """The default integration branch of a project: ``coditect/<project>``."""
    return f"coditect/{project}"


def _git_environment() -> dict[str, str]:
    env = command_environment()
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


@dataclass(frozen=True, slots=True)
class _GitResult:
    code: int
    out: str
    err: str


async def git(cwd: Path, *args: str, check: bool = True, config: Sequence[str] = ()) -> _GitResult:
    """Run ``git -C cwd [-c config]... args`` (no shell, minimal environment); a failure (when
    ``check``) raises :class:`WorkspaceError` with git's own words."""
    argv = ["git", "-C", str(cwd)]
    for item in config:
        argv += ["-c", item]
    argv += args
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_git_environment(),
        )
    except FileNotFoundError as error:
        raise WorkspaceError("git is not installed or not on PATH") from error
    out, err = await proc.communicate()
    result = _GitResult(
        proc.returncode if proc.returncode is not None else -1,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )
    if check and result.code != 0:
        raise WorkspaceError(
            f"git {' '.join(args[:3])} failed in {cwd}: {result.err.strip() or result.out.strip()}"
        )
    return result


@dataclass(frozen=True, slots=True)
class TaskWorktree:
    """A task's worktree: where it is, its branch, and the commit it started from."""

    task_id: str
    path: Path
    branch: str
    start: str


@dataclass(frozen=True, slots=True)
class CommitResult:
    """A task's changes committed (``commit``), or nothing to commit (``changed`` false,
    ``commit`` the branch's tip as it was)."""

    commit: str
    changed: bool


@dataclass(frozen=True, slots=True)
class MergeResult:
    """A task branch merged into the integration branch: the merge commit (or, when it was
    already merged, the integration branch's tip and ``already_merged``)."""

    branch: str
    commit: str
    already_merged: bool = False


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file of a diff: lines added and removed (``None`` for a binary file)."""

    path: str
    added: int | None
    removed: int | None


@dataclass(frozen=True, slots=True)
class Diff:
    """A diff between two commits: its files with their counts, and its text."""

    start: str
    end: str
    files: tuple[FileChange, ...]
    text: str

    @property
    def lines_added(self) -> int:
        return sum(change.added or 0 for change in self.files)

    @property
    def lines_removed(self) -> int:
        return sum(change.removed or 0 for change in self.files)


def _numstat(text: str) -> tuple[FileChange, ...]:
    changes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        added, removed, path = line.split("\t", 2)
        changes.append(
            FileChange(
                path,
                None if added == "-" else int(added),
                None if removed == "-" else int(removed),
            )
        )
    return tuple(changes)


class Workspace:
    """The repository of one run (open it with :meth:`open`): its base and integration
    branches, the task worktrees, commits, merges and diffs."""

    def __init__(
        self,
        repo: Path,
        common_dir: Path,
        *,
        base_branch: str,
        integration_branch: str,
        author: str,
    ) -> None:
        self.repo = repo
        self.common_dir = common_dir
        self.base_branch = base_branch
        self.integration_branch = integration_branch
        self.author = author
        self._identity = parse_author(author)
        self.root = common_dir / "coditect" / "worktrees" / _SAFE.sub("_", integration_branch)
        self._merge_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        project: str,
        base_branch: str | None = None,
        integration_branch: str | None = None,
        author: str = DEFAULT_AUTHOR,
        create: bool = True,
    ) -> Workspace:
        """Open the git repository at ``path`` and make the integration branch from the base
        branch if it is missing (``create=False``: refuse instead, changing nothing). Raises
        :class:`WorkspaceError` naming the path or branch."""
        where = Path(path).expanduser()  # noqa: ASYNC240 (a few stats, once per run)
        if not where.is_dir():
            raise WorkspaceError(f"repository {str(where)!r} is not a directory")
        found = await git(where, "rev-parse", "--show-toplevel", "--git-common-dir", check=False)
        if found.code != 0:
            raise WorkspaceError(f"{str(where)!r} is not a git repository (repo:)")
        top, common = found.out.splitlines()[:2]
        repo = Path(top)
        common_dir = Path(common) if os.path.isabs(common) else (where / common)
        parse_author(author)
        if base_branch is None:
            current = await git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
            if current.code != 0:
                raise WorkspaceError(
                    f"repository {str(repo)!r} has no branch checked out (a detached HEAD): "
                    "name the base branch (base_branch:)"
                )
            base_branch = current.out.strip()
        if not await _branch_exists(repo, base_branch):
            raise WorkspaceError(
                f"base branch {base_branch!r} does not exist in repository {str(repo)!r}"
                " (base_branch:)"
            )
        integration = integration_branch or integration_branch_name(project)
        await _check_branch_name(repo, integration, "integration branch")
        if integration == base_branch:
            raise WorkspaceError(
                f"the integration branch {integration!r} cannot be the base branch"
            )
        workspace = cls(
            repo,
            common_dir.resolve(),
            base_branch=base_branch,
            integration_branch=integration,
            author=author,
        )
        if not await _branch_exists(repo, integration):
            if not create:
                raise WorkspaceError(
                    f"the integration branch {integration!r} does not exist in {str(repo)!r}: "
                    "no run has changed code there yet"
                )
            await git(repo, "branch", "--no-track", integration, f"refs/heads/{base_branch}")
            logger.info("made integration branch %s from %s", integration, base_branch)
        return workspace

    # ---- names and places

    def task_branch(self, task_id: str) -> str:
        """The branch of a task: ``<integration branch>-tasks/<task id>``."""
        return f"{self.integration_branch}-tasks/{task_id}"

    def task_path(self, task_id: str) -> Path:
        """Where a task's worktree is (under the repository's git directory)."""
        return self.root / "tasks" / _SAFE.sub("_", task_id)

    @property
    def integration_path(self) -> Path:
        """The worktree where merges into the integration branch are made."""
        return self.root / "integration"

    async def tip(self, branch: str) -> str:
        """The commit a branch points at."""
        return (
            await git(self.repo, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
        ).out.strip()

    async def branch_exists(self, branch: str) -> bool:
        return await _branch_exists(self.repo, branch)

    # ---- worktrees

    async def create_worktree(self, task_id: str, *, resume: bool = False) -> TaskWorktree:
        """A worktree for a task on its own branch, made from the integration branch's tip.
        A branch left unmerged by a stopped run is reused (no committed change is lost: the
        task goes on from its commits); one already merged starts again from the tip. With
        ``resume`` (the task goes on from its recorded turns), the worktree a stopped run left
        is kept as it is, uncommitted edits included; else it is made afresh."""
        branch = self.task_branch(task_id)
        await _check_branch_name(self.repo, branch, f"task {task_id!r}'s branch")
        path = self.task_path(task_id)
        start = await self.tip(self.integration_branch)
        if path.exists():
            on = await git(path, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
            if resume and on.code == 0 and on.out.strip() == branch:
                base = await git(self.repo, "merge-base", branch, self.integration_branch)
                logger.debug("worktree for %s kept as the stopped run left it", task_id)
                return TaskWorktree(task_id, path, branch, base.out.strip())
            await self.remove_worktree(task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if await _branch_exists(self.repo, branch) and await self.is_merged(branch):
            # merged by an earlier run (or with nothing of its own): start again from the tip
            await git(self.repo, "branch", "--force", "--no-track", branch, start)
            await git(self.repo, "worktree", "add", "--quiet", str(path), branch)
        elif await _branch_exists(self.repo, branch):
            # committed but not merged (a run stopped in between): go on from its commits
            base = await git(self.repo, "merge-base", branch, self.integration_branch, check=False)
            start = base.out.strip() or start
            await git(self.repo, "worktree", "add", "--quiet", str(path), branch)
        else:
            await git(self.repo, "worktree", "add", "--quiet", "-b", branch, str(path), start)
        logger.debug("worktree for %s at %s (branch %s)", task_id, path, branch)
        return TaskWorktree(task_id, path, branch, start)

    async def remove_worktree(self, task_id: str, *, keep: bool = False) -> None:
        """Remove a task's worktree (its branch stays: its commits are kept); ``keep`` leaves
        it on disk."""
        if keep:
            return
        await _remove_tree(self.repo, self.task_path(task_id))

    async def clean_stale(self, *, keep_tasks: bool = False) -> list[Path]:
        """Remove what a crashed run left under :attr:`root`: its worktrees (with
        ``keep_tasks``, the task worktrees stay for a resumed task to go on in, their stale
        index locks removed; :meth:`close` removes those left), the lock files a killed git
        left on this run's branches; git forgets removed worktrees. Branches stay: no
        committed change is lost. Returns the paths removed."""
        removed: list[Path] = []
        tasks = self.root / "tasks"
        if tasks.is_dir():
            for entry in sorted(tasks.iterdir()):
                if keep_tasks and (entry / ".git").is_file():
                    removed += _stale_index_locks(entry)
                    continue
                await _remove_tree(self.repo, entry)
                removed.append(entry)
        if self.integration_path.exists():
            await _remove_tree(self.repo, self.integration_path)
            removed.append(self.integration_path)
        await git(self.repo, "worktree", "prune")
        for lock in self._stale_ref_locks():
            lock.unlink(missing_ok=True)
            removed.append(lock)
        return removed

    def _stale_ref_locks(self) -> list[Path]:
        """Lock files of this run's branches that a killed git left behind (nothing else of
        the repository is touched)."""
        heads = self.common_dir / "refs" / "heads"
        found = [heads / f"{self.integration_branch}.lock"]
        tasks = heads / f"{self.integration_branch}-tasks"
        if tasks.is_dir():
            found += list(tasks.rglob("*.lock"))
        return [lock for lock in found if lock.is_file()]

    async def close(self, *, keep: bool = False) -> None:
        """Remove every worktree of the run (its tasks' and the integration one) unless
        ``keep``; git forgets removed worktrees."""
        if not keep:
            tasks = self.root / "tasks"
            if tasks.is_dir():
                for entry in sorted(tasks.iterdir()):
                    await _remove_tree(self.repo, entry)
            if self.integration_path.exists():
                await _remove_tree(self.repo, self.integration_path)
        await git(self.repo, "worktree", "prune")

    # ---- commits and merges

    def _config(self) -> list[str]:
        name, email = self._identity
        return [
            f"user.name={name}",
            f"user.email={email}",
            "commit.gpgsign=false",
            f"core.hooksPath={os.devnull}",
            f"core.excludesFile={self.common_dir / 'coditect' / 'exclude'}",
        ]

    async def commit(self, worktree: TaskWorktree, message: str) -> CommitResult:
        """Commit everything changed in a task's worktree (new and deleted files too). Nothing
        changed is a result (``changed`` false), not an error. The caches of
        :data:`IGNORED_BY_DEFAULT` are left out."""
        exclude = self.common_dir / "coditect" / "exclude"
        if not exclude.exists():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            exclude.write_text("\n".join(IGNORED_BY_DEFAULT) + "\n")
        await git(worktree.path, "add", "--all", config=self._config())
        staged = await git(worktree.path, "diff", "--cached", "--quiet", check=False)
        if staged.code == 0:
            return CommitResult((await self.tip(worktree.branch)), changed=False)
        await git(
            worktree.path, "commit", "--quiet", "--no-verify", "-m", message, config=self._config()
        )
        return CommitResult((await self.tip(worktree.branch)), changed=True)

    async def is_merged(self, branch: str) -> bool:
        """Whether ``branch``'s tip is already in the integration branch."""
        result = await git(
            self.repo, "merge-base", "--is-ancestor", f"refs/heads/{branch}",
            f"refs/heads/{self.integration_branch}", check=False,
        )  # fmt: skip
        if result.code not in (0, 1):
            raise WorkspaceError(
                f"cannot compare {branch!r} with the integration branch: {result.err.strip()}"
            )
        return result.code == 0

    async def _integration_worktree(self) -> Path:
        path = self.integration_path
        if (path / ".git").exists():
            if (
                await git(path, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)
            ).code == 0:
                await git(path, "merge", "--abort", check=False)
            await git(path, "reset", "--quiet", "--hard", "HEAD")
            await git(path, "clean", "-fdq")
            return path
        if path.exists():
            await _remove_tree(self.repo, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        await git(self.repo, "worktree", "prune")
        await git(self.repo, "worktree", "add", "--quiet", str(path), self.integration_branch)
        return path

    async def merge(self, branch: str, message: str) -> MergeResult:
        """Merge ``branch`` into the integration branch (one merge at a time, in the
        integration worktree). A branch already merged is reported so, never merged twice; a
        conflict aborts the merge and raises :class:`MergeConflictError` naming the files."""
        async with self._merge_lock:
            if await self.is_merged(branch):
                return MergeResult(branch, await self.tip(self.integration_branch), True)
            path = await self._integration_worktree()
            result = await git(
                path, "merge", "--no-ff", "--no-edit", "-m", message, f"refs/heads/{branch}",
                check=False, config=self._config(),
            )  # fmt: skip
            if result.code != 0:
                conflicted = await git(path, "diff", "--name-only", "--diff-filter=U", check=False)
                files = tuple(line for line in conflicted.out.splitlines() if line)
                await git(path, "merge", "--abort", check=False)
                await git(path, "reset", "--quiet", "--hard", "HEAD", check=False)
                if files:
                    raise MergeConflictError(
                        f"branch {branch!r} conflicts with {self.integration_branch!r} in: "
                        + ", ".join(files),
                        branch=branch,
                        files=files,
                    )
                raise WorkspaceError(
                    f"merging {branch!r} into {self.integration_branch!r} failed: "
                    f"{result.err.strip() or result.out.strip()}"
                )
            return MergeResult(branch, await self.tip(self.integration_branch))

    # ---- diffs

    async def diff(self, start: str, end: str) -> Diff:
        """The diff from commit ``start`` to commit ``end``: files, lines added and removed."""
        numstat = await git(self.repo, "diff", "--numstat", "--no-renames", start, end)
        text = await git(self.repo, "diff", "--no-renames", "--no-color", start, end)
        return Diff(start, end, _numstat(numstat.out), text.out)

    async def task_diff(self, task_id: str, start: str) -> Diff:
        """A task branch's diff against the commit it started from."""
        return await self.diff(start, await self.tip(self.task_branch(task_id)))

    async def integration_diff(self) -> Diff:
        """The integration branch against where it left the base branch."""
        base = await git(
            self.repo,
            "merge-base",
            f"refs/heads/{self.base_branch}",
            f"refs/heads/{self.integration_branch}",
        )
        return await self.diff(base.out.strip(), await self.tip(self.integration_branch))


async def _branch_exists(repo: Path, branch: str) -> bool:
    result = await git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return result.code == 0


async def _check_branch_name(repo: Path, branch: str, what: str) -> None:
    result = await git(repo, "check-ref-format", "--branch", branch, check=False)
    if result.code != 0:
        raise WorkspaceError(f"{what} {branch!r} is not a valid git branch name")


def _stale_index_locks(worktree: Path) -> list[Path]:
    """The index lock a killed git left in ``worktree``'s administrative folder, removed."""
    pointer = (worktree / ".git").read_text().strip()
    if not pointer.startswith("gitdir:"):
        return []
    lock = Path(pointer.removeprefix("gitdir:").strip()) / "index.lock"
    if lock.is_file():
        lock.unlink(missing_ok=True)
        return [lock]
    return []


async def _remove_tree(repo: Path, path: Path) -> None:
    """A worktree gone: through git when it knows it, from disk in any case."""
    await git(repo, "worktree", "remove", "--force", "--force", str(path), check=False)
    if path.exists():  # noqa: ASYNC240 (one stat)
        await asyncio.to_thread(shutil.rmtree, path, True)
