"""``coditect plan``: a plan document into a project file for a person to review; never run.

The planning is the library's (:mod:`coditect_core.app.plan`, :mod:`coditect_core.project.planner`);
this parses the options, says what was written, and exits 0, 1 (the model's graph never passed
the checks, or the model failed), 2 (bad input: the document, the agents, an existing file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .options import JsonOpt
from .output import ExitCode, Shown, err_console, fail_for, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_command(
        document: Annotated[
            Path, typer.Argument(metavar="DOC", help="The plan document (Markdown or text).")
        ],
        output: Annotated[
            Path,
            typer.Option("--output", "-o", metavar="FILE", help="The project file to write."),
        ],
        agent: Annotated[
            str | None,
            typer.Option(
                "--agent",
                "-a",
                metavar="NAME",
                help="The agent that plans (of --agents FILE; default: its defaults.agent, "
                "else its first; without --agents: local, the embedded model).",
            ),
        ] = None,
        agents_file: Annotated[
            Path | None,
            typer.Option(
                "--agents",
                metavar="FILE",
                help="A YAML file with an agents: mapping (a project file will do): the "
                "project's agents, for the model to assign.",
            ),
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Turn a plan document into a project file to review.

        Review it before `coditect run`. An agent reads the document and returns a task graph;
        the same checks as `coditect run` (fields, duplicate ids, unknown dependencies, cycles)
        go back to it to fix, up to 3 answers. The file says where each task comes from and
        lists the steps the agent did not place. Nothing is run.

        Examples:

          coditect plan PLAN.md -o coditect.yaml

          coditect plan PLAN.md -o project.yaml --agents agents.yaml --agent claude

          coditect plan PLAN.md -o coditect.yaml --force --json
        """
        import asyncio

        from ..app.plan import plan_to_file
        from ..errors import (
            AgentError,
            LlmError,
            PlanDocumentError,
            PlanRejectedError,
            ProjectFileError,
            WorkAtRiskError,
        )

        try:
            outcome = asyncio.run(
                plan_to_file(document, output, agent=agent, agents_file=agents_file, force=force)
            )
        except (PlanDocumentError, ProjectFileError, AgentError, WorkAtRiskError) as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)
        except (PlanRejectedError, LlmError) as error:
            fail_for(error, ExitCode.TASK_FAILED, as_json=as_json)
        except OSError as error:
            fail_for(error, ExitCode.BAD_INPUT, as_json=as_json, message=f"{output}: {error}")
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        plan = outcome.plan
        if as_json:
            summary: dict[str, Any] = {
                "output": str(outcome.output),
                "document": outcome.document.path,
                "agent": outcome.planner,
                "provider": outcome.provider,
                "answers": plan.answers,
                "refused": plan.errors,
                "tasks": [
                    {
                        "id": task.get("id"),
                        "title": task.get("title"),
                        "dependencies": task.get("dependencies", []),
                        "source_step": source,
                    }
                    for task, source in zip(plan.tasks, plan.sources, strict=True)
                ],
                "unplaced": plan.unplaced,
                "unnamed_headings": plan.unnamed,
            }
            print_json(summary)
            return
        esc = Shown().markup
        tries = "" if plan.answers == 1 else f" after {plan.answers} answers"
        err_console().print(
            f"wrote {esc(str(outcome.output))}: {len(plan.tasks)} tasks planned from "
            f"{esc(outcome.document.path)} by agent {esc(repr(outcome.planner))}{tries}"
        )
        if plan.unplaced:
            err_console().print(
                f"{len(plan.unplaced)} step(s) not placed as tasks: listed at the end of the file"
            )
        err_console().print(f"review it, then: coditect run {esc(str(outcome.output))} --dry-run")
