"""The domain: agents, tasks, their one state machine, execution and scheduling of a task graph.

* :mod:`.task`, :mod:`.agent_registry`: what is to be done, and who can do it
* :mod:`.board`: ``TaskBoard``, the one task state machine (every status change, by hand too)
* :mod:`.run_loop`: the scheduler of one run over the board
* :mod:`.executor`: ``TaskExecutor``, one task on one agent (interfaces in :mod:`.handlers`,
  attempts in :mod:`.attempts`, where requests run in :mod:`.runners`)
* :mod:`.orchestrator`: ``ProjectOrchestrator``, the facade: board + executor + run loop
* :mod:`.scheduler` (graph functions), :mod:`.resume` (what must run again), :mod:`.prompts`,
  :mod:`.spend` (one tally, budgets), :mod:`.summary`, :mod:`.observer`

Importing this package imports no provider SDK.
"""

from __future__ import annotations

from .agent_registry import AgentCapability, AgentConfig, AgentInterface, AgentRegistry, AgentType
from .board import TaskBoard
from .executor import ExecutionResult, ExecutionStatus, TaskExecutor
from .observer import EventLog, OrchestratorObserver
from .orchestrator import ProjectOrchestrator, RunSummary
from .prompts import UpstreamOutput
from .scheduler import find_cycle, validate_graph, validate_tasks
from .task import AgentTask, ProjectPhase, TaskPriority, TaskStatus

__all__ = [
    "AgentCapability",
    "AgentConfig",
    "AgentInterface",
    "AgentRegistry",
    "AgentTask",
    "AgentType",
    "EventLog",
    "ExecutionResult",
    "ExecutionStatus",
    "OrchestratorObserver",
    "ProjectOrchestrator",
    "ProjectPhase",
    "RunSummary",
    "TaskBoard",
    "TaskExecutor",
    "TaskPriority",
    "TaskStatus",
    "UpstreamOutput",
    "find_cycle",
    "validate_graph",
    "validate_tasks",
]
