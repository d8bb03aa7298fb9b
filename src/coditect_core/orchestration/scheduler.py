"""Pure logic over the task graph: validation, cycles, topological and priority order, ready set,
what blocks the blocked tasks.

No I/O and no state: every function takes the graph as data. The graph is a mapping from task id
to the ids it depends on (``{"B": ["A"]}``: B runs after A).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..errors import SchedulingError
from .task import AgentTask, TaskStatus

__all__ = [
    "Graph",
    "blocked_by",
    "dependents_of",
    "descendants",
    "find_cycle",
    "find_duplicate_ids",
    "graph_of",
    "priority_key",
    "priority_order",
    "ready_tasks",
    "topological_order",
    "validate_graph",
    "validate_tasks",
]

Graph = Mapping[str, Sequence[str]]


def graph_of(tasks: Iterable[AgentTask]) -> dict[str, list[str]]:
    """The dependency graph of ``tasks``."""
    return {t.task_id: list(t.dependencies) for t in tasks}


def find_duplicate_ids(task_ids: Iterable[str]) -> list[str]:
    """Ids that occur more than once, in order of first occurrence."""
    counts = Counter(task_ids)
    return [tid for tid, n in counts.items() if n > 1]


def find_cycle(deps: Graph) -> list[str] | None:
    """A dependency cycle as its path, first node repeated at the end (``["A", "B", "A"]``).

    ``["A", "B", "A"]`` reads: A depends on B, which depends on A. ``None`` when the graph is
    acyclic. Dependencies on ids missing from ``deps`` are ignored here. Iterative, so a chain of
    any length is fine; deterministic in the order of ``deps``.
    """
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = dict.fromkeys(deps, white)
    for root in deps:
        if colour[root] != white:
            continue
        path: list[str] = [root]
        iters = [iter(deps[root])]
        colour[root] = grey
        while iters:
            for dep in iters[-1]:
                state = colour.get(dep)
                if state is None or state == black:
                    continue
                if state == grey:
                    return [*path[path.index(dep) :], dep]
                colour[dep] = grey
                path.append(dep)
                iters.append(iter(deps[dep]))
                break
            else:
                colour[path.pop()] = black
                iters.pop()
    return None


def validate_graph(deps: Graph) -> list[str]:
    """Check ``deps`` and return its topological order (dependencies first).

    Raises :class:`SchedulingError` for a dependency on an unknown task or a cycle; the message
    prints the cycle's path (``"A -> B -> A"``).
    """
    if not any(deps.values()):  # no dependencies at all (a wide graph): nothing to check
        return list(deps)
    for tid, needs in deps.items():
        for dep in needs:
            if dep not in deps:
                raise SchedulingError(f"task {tid!r} depends on unknown task {dep!r}")
    order = topological_order(deps)
    if len(order) < len(deps):  # Kahn's algorithm leaves out exactly the nodes on or after a cycle
        cycle = find_cycle(deps)
        raise SchedulingError(f"dependency cycle: {' -> '.join(cycle or ())}")
    return order


def validate_tasks(tasks: Sequence[AgentTask]) -> list[str]:
    """:func:`validate_graph` for a list of tasks, after refusing duplicate ids."""
    duplicates = find_duplicate_ids(t.task_id for t in tasks)
    if duplicates:
        raise SchedulingError(f"duplicate task id(s): {', '.join(duplicates)}")
    return validate_graph(graph_of(tasks))


def topological_order(deps: Graph) -> list[str]:
    """Dependencies before dependents (Kahn's algorithm), deterministic for a given ``deps``:
    tasks ready from the start in the order of ``deps``, then in the order they become ready.

    Unknown dependencies are ignored; nodes on a cycle (and after one) are left out.
    """
    waiting: dict[str, int] = {}
    order: list[str] = []
    for tid, needs in deps.items():
        if needs:
            waiting[tid] = len({d for d in needs if d in deps})
            if not waiting[tid]:
                order.append(tid)
        else:
            order.append(tid)
    if len(order) == len(deps):
        return order  # no dependencies at all (or only unknown ones)
    dependents = dependents_of(deps)
    i = 0
    while i < len(order):
        for child in dependents[order[i]]:
            waiting[child] -= 1
            if waiting[child] == 0:
                order.append(child)
        i += 1
    return order


def dependents_of(deps: Graph) -> dict[str, list[str]]:
    """The reverse graph: task id -> the tasks that depend on it (each listed once)."""
    out: dict[str, list[str]] = {tid: [] for tid in deps}
    for tid, needs in deps.items():
        for dep in dict.fromkeys(needs):
            if dep in out:
                out[dep].append(tid)
    return out


def descendants(deps: Graph, roots: Iterable[str]) -> set[str]:
    """Every task that depends, directly or not, on one of ``roots`` (roots excluded)."""
    dependents = dependents_of(deps)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        for child in dependents.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def priority_key(task: AgentTask, position: int = 0) -> tuple[int, int]:
    """Sort key: higher priority first, then ``position`` (definition order)."""
    return (task.priority.rank, position)


def priority_order(tasks: Iterable[AgentTask]) -> list[AgentTask]:
    """``tasks`` sorted by priority, keeping their given order within a priority."""
    return [
        t
        for _, t in sorted(
            ((priority_key(t, i), t) for i, t in enumerate(tasks)), key=lambda pair: pair[0]
        )
    ]


def ready_tasks(tasks: Sequence[AgentTask]) -> list[AgentTask]:
    """Pending tasks whose dependencies have all completed, most urgent first.

    A dependency missing from ``tasks`` counts as not completed.
    """
    status = {t.task_id: t.status for t in tasks}
    ready = [
        t
        for t in tasks
        if t.status is TaskStatus.PENDING
        and all(status.get(d) is TaskStatus.COMPLETED for d in t.dependencies)
    ]
    return priority_order(ready)


def blocked_by(statuses: Mapping[str, str], deps: Graph) -> dict[str, tuple[str, ...]]:
    """For each task whose status is ``blocked``: the tasks upstream that block it, reached
    through blocked tasks only (a dependency neither completed nor blocked: failed, cancelled;
    or put back by hand since), in the order of ``statuses``. ``statuses`` maps every task id to
    its status value; unknown dependencies are ignored, and a cycle is cut where it closes.
    Linear in the tasks and their dependencies."""
    blocked = TaskStatus.BLOCKED.value
    done = TaskStatus.COMPLETED.value
    order = {tid: i for i, tid in enumerate(statuses)}
    memo: dict[str, frozenset[str]] = {}
    for root, status in statuses.items():
        if status != blocked or root in memo:
            continue
        stack, on_path = [root], {root}
        while stack:  # depth first, without recursion: a chain of blocked tasks can be long
            tid = stack[-1]
            if tid in memo:
                on_path.discard(stack.pop())
                continue
            todo = [
                d
                for d in deps.get(tid, ())
                if statuses.get(d) == blocked and d not in memo and d not in on_path
            ]
            if todo:
                stack.extend(todo)
                on_path.update(todo)
                continue
            found: set[str] = set()
            for d in deps.get(tid, ()):
                if statuses.get(d) == blocked:
                    found |= memo.get(d, frozenset())
                elif d in statuses and statuses[d] != done:
                    found.add(d)
            memo[tid] = frozenset(found)
            on_path.discard(stack.pop())
    return {
        tid: tuple(sorted(memo[tid], key=order.__getitem__))
        for tid, status in statuses.items()
        if status == blocked
    }
