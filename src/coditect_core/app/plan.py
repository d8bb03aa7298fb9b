"""``coditect plan``'s use case: a plan document into a project file on disk, by an agent.

The planning itself (prompt, schema, checks, rendering) is :mod:`coditect_core.project.planner`;
this picks the agents and the planning agent's model, refuses to replace a file unless forced,
and writes the file whole (a new file, or a replacement, never half of one). It never runs the
project.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import AgentError, ProjectFileError, WorkAtRiskError
from ..llm_abstractions.base_llm import BaseLlm
from ..project.planner import (
    DEFAULT_ROUNDS,
    Plan,
    PlanAgents,
    PlanDocument,
    default_agents,
    make_plan,
    read_agents_file,
    read_plan_document,
)

__all__ = ["PLAN_MAX_TOKENS", "PlanOutcome", "plan_to_file"]

logger = logging.getLogger(__name__)

PLAN_MAX_TOKENS = 4096
"""The answer's length cap when the planning agent sets no ``max_tokens``: a graph is long."""


@dataclass
class PlanOutcome:
    """What ``coditect plan`` made: the file written, the plan, from what and by whom."""

    output: Path
    plan: Plan
    document: PlanDocument
    agents: PlanAgents
    planner: str
    provider: str


async def plan_to_file(
    document: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    agent: str | None = None,
    agents_file: str | os.PathLike[str] | None = None,
    force: bool = False,
    rounds: int = DEFAULT_ROUNDS,
    llm: BaseLlm | None = None,
) -> PlanOutcome:
    """Plan ``document`` with ``agent`` (of ``agents_file``, else the embedded model ``local``;
    default: the file's ``defaults.agent``, else its first) and write the project file to
    ``output``; ``llm`` replaces the agent's model (tests).

    Raises :class:`~coditect_core.errors.PlanDocumentError` (the document),
    :class:`~coditect_core.errors.WorkAtRiskError` (``output`` exists, no ``force``),
    :class:`~coditect_core.errors.ProjectFileError` (the agents file, an unknown agent),
    :class:`~coditect_core.errors.AgentError`, :class:`~coditect_core.errors.LlmError`,
    :class:`~coditect_core.errors.PlanRejectedError` (never a graph that loads); nothing is
    written then."""
    target = Path(output)
    doc, agents, planner = _prepare(document, target, agent, agents_file, force)
    owned = llm is None
    provider = "given"
    if llm is None:
        from .ask import agent_in

        chosen = agent_in(agents.project_file, planner)
        llm, provider = chosen.llm, chosen.provider
    own_cap = agents.project_file.spec.agents[planner].max_tokens
    try:
        plan = await make_plan(
            llm,
            doc,
            agents,
            planner=planner,
            output=target,
            rounds=rounds,
            max_tokens=None if own_cap is not None else PLAN_MAX_TOKENS,
        )
    finally:
        if owned:
            await llm.aclose()
    _write(target, plan.text, force=force)
    logger.info("%s: wrote %d tasks planned from %s", target, len(plan.tasks), doc.path)
    return PlanOutcome(target, plan, doc, agents, planner, provider)


def _prepare(
    document: str | os.PathLike[str],
    target: Path,
    agent: str | None,
    agents_file: str | os.PathLike[str] | None,
    force: bool,
) -> tuple[PlanDocument, PlanAgents, str]:
    """The document, the agents and the planning agent's name; or why not."""
    doc = read_plan_document(document)
    if not force and target.exists():
        raise WorkAtRiskError(f"{target} already exists: say --force to replace it")
    agents = read_agents_file(agents_file) if agents_file is not None else default_agents()
    planner = agent or agents.default
    if planner not in agents.agents:
        known = ", ".join(agents.agents)
        if agents.path is None:
            raise AgentError(
                f"no agent {planner!r} without --agents FILE (the agents: {known}); give the "
                "agents to choose from with --agents FILE"
            )
        raise ProjectFileError(
            f"no agent {planner!r} in the file; agents: {known}", path=agents.path
        )
    return doc, agents, planner


def _write(target: Path, text: str, *, force: bool) -> None:
    """``text`` into ``target`` whole: a new file (refused if one appeared meanwhile, unless
    ``force``), written beside it and renamed into place."""
    if not force and target.exists():
        raise WorkAtRiskError(f"{target} already exists: say --force to replace it")
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if the file appeared since the check
            except FileExistsError:
                raise WorkAtRiskError(
                    f"{target} already exists: say --force to replace it"
                ) from None
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
