"""Resume planning: which tasks of a project must run again, the way a build tool decides.

Pure functions, no I/O. A task's *content hash* (:func:`task_content_hash`) covers what it asks
for: prompt text, agent, model, dependencies (and any extra settings the caller adds). The store
keeps, for every task that succeeded, the hash it had then and a *success sequence number* that
grows with every success in the database. :func:`plan_resume` then runs a task when

* it never succeeded (new, failed, interrupted, waiting, cancelled...), or
* its hash differs from the one recorded at its success ("definition changed"), or
* one of its dependencies runs in this plan ("upstream X runs"), so everything downstream of a
  change runs too, or
* one of its dependencies succeeded *after* it did ("upstream X is newer"): a run that re-ran X
  and died before reaching its dependents leaves them to be rebuilt, like ``make``'s timestamps.

A recorded hash of ``None`` (a task imported from an old state file, whose hash cannot be known)
counts as unchanged. A task *kept* by hand (completed by a person, :data:`KEPT`) never runs for
any of these reasons: a person's work is only replaced when asked (``task rerun``, a restart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentError
from .agent_registry import AgentRegistry
from .prompts import task_prompt
from .scheduler import validate_graph
from .task import AgentTask

__all__ = [
    "HASH_PREFIX",
    "HELD",
    "KEPT",
    "ResumePlan",
    "SuccessRecord",
    "agent_task_hash",
    "plan_resume",
    "task_content_hash",
]

HASH_PREFIX = "sha256:"
_HASH_FORMAT = 1  # bump when the hashed payload changes shape: every task then re-runs once


def task_content_hash(
    *,
    prompt: str,
    agent: str | None,
    model: str | None,
    dependencies: Iterable[str] = (),
    **extra: Any,
) -> str:
    """A stable hash of a task definition: ``"sha256:<64 hex digits>"``.

    The payload is canonical JSON (sorted keys, no whitespace, UTF-8); ``dependencies`` are a set
    (their order does not matter). ``extra`` adds JSON-serialisable settings that change a
    result (a system prompt, a temperature...); never pass a key.
    """
    payload = {
        "format": _HASH_FORMAT,
        "prompt": prompt,
        "agent": agent,
        "model": model,
        "dependencies": sorted(set(dependencies)),
        "extra": extra,
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SuccessRecord:
    """What the store remembers of a task's last success."""

    content_hash: str | None
    seq: int
    output: str | None = None
    value: Any = None
    """A typed task's validated output (JSON data), if it has one."""


HELD = "held: cancelled by hand; it and its dependents wait for `task reset`"
"""The reason given for a held task (cancelled by hand), which a run leaves cancelled."""

KEPT = "kept: completed by hand; `coditect task rerun` runs it again"
"""Why a task completed by hand is skipped although it would run (upstream runs, changed...)."""


@dataclass(frozen=True)
class ResumePlan:
    """``run`` and ``skip`` partition the tasks (in topological order); ``reasons`` says why each
    task of ``run`` runs; ``changed`` lists those whose own definition changed; ``held`` those
    of ``run`` that were cancelled by hand, which the run leaves cancelled (their dependents
    blocked); ``kept`` those of ``skip`` that were completed by hand (:data:`KEPT` says why)."""

    run: tuple[str, ...]
    skip: tuple[str, ...]
    changed: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)
    held: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()

    def starts_now(
        self, dependencies: Mapping[str, Sequence[str]], busy: Iterable[str] = ()
    ) -> list[str]:
        """The tasks a run would start at once: they run, are not held or ``busy`` (in flight
        in a live run), and everything they depend on is skipped (done), in plan order."""
        done, busy = set(self.skip), set(busy)
        return [
            t
            for t in self.run
            if t not in self.held and t not in busy and all(d in done for d in dependencies[t])
        ]


def plan_resume(
    hashes: Mapping[str, str],
    dependencies: Mapping[str, Sequence[str]],
    succeeded: Mapping[str, SuccessRecord],
    held: Iterable[str] = (),
    kept: Iterable[str] = (),
) -> ResumePlan:
    """Decide which tasks run again: the one resume planner (``run``, ``--dry-run``, ``status``
    and ``next`` all ask it). ``hashes`` and ``dependencies`` describe the project now (the same
    task ids); ``succeeded`` is the store's record (:meth:`StateStore.succeeded_tasks`);
    ``held`` the tasks it records as cancelled by hand, ``kept`` those completed by hand (they
    are skipped whenever they have a success record).

    Raises :class:`~coditect_core.errors.SchedulingError` for an unknown dependency or a cycle.
    """
    missing = set(dependencies) ^ set(hashes)
    if missing:
        raise ValueError(f"hashes and dependencies describe different tasks: {sorted(missing)}")
    order = validate_graph(dependencies)
    runs: set[str] = set()
    reasons: dict[str, str] = {}
    changed: list[str] = []
    kept_set, kept_now = set(kept), []
    for tid in order:
        record = succeeded.get(tid)
        reason = None
        if record is not None and tid in kept_set:
            kept_now.append(tid)
            continue
        if record is None:
            reason = "not succeeded yet"
        elif record.content_hash is not None and record.content_hash != hashes[tid]:
            reason = "definition changed"
            changed.append(tid)
        else:
            for dep in dependencies[tid]:
                if dep in runs:
                    reason = f"upstream {dep} runs"
                    break
                dep_record = succeeded[dep]  # not in runs, so it succeeded
                if dep_record.seq > record.seq:
                    reason = f"upstream {dep} succeeded after it"
                    break
        if reason is not None:
            runs.add(tid)
            reasons[tid] = reason
    held_set = set(held)
    held_now = tuple(t for t in order if t in runs and t in held_set)
    for tid in held_now:
        reasons[tid] = HELD
    return ResumePlan(
        run=tuple(t for t in order if t in runs),
        skip=tuple(t for t in order if t not in runs),
        changed=tuple(changed),
        reasons=reasons,
        held=held_now,
        kept=tuple(kept_now),
    )


def agent_task_hash(task: AgentTask, registry: AgentRegistry, default_agent: str | None) -> str:
    """The content hash of ``task`` as it would run: its own prompt (without the upstream
    outputs), the agent it resolves to (:meth:`AgentRegistry.resolve`), that agent's model,
    interface and system prompt, its dependencies, and its typed output (schema, mode, retries:
    only when it has one, so the hashes of other tasks stay as they were)."""
    agent: str | None = task.agent
    model = interface = system = None
    try:
        config = registry.resolve(task, default=default_agent)
        agent, model, interface = config.name, config.model, config.interface.value
        system = config.system_prompt
    except AgentError:
        pass  # the run will fail it; the hash still covers what the task says
    return task_content_hash(
        prompt=task_prompt(task),
        agent=agent,
        model=model,
        dependencies=task.dependencies,
        interface=interface,
        system_prompt=system,
        **({"typed_output": task.typed_output()} if task.output_schema is not None else {}),
    )
