"""Floor 2: agents, tasks, execution and scheduling of a project's task graph.

Importing this package imports no provider SDK.
"""

from __future__ import annotations

from .agent_registry import AgentCapability, AgentConfig, AgentInterface, AgentRegistry, AgentType
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
    "TaskExecutor",
    "TaskPriority",
    "TaskStatus",
    "UpstreamOutput",
    "find_cycle",
    "validate_graph",
    "validate_tasks",
]
