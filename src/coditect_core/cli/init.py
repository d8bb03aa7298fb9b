"""``coditect init``: scaffold a project file with a local agent and commented cloud agents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .output import ExitCode, Shown, err_console, fail, fail_for
from .project_path import DEFAULT_PROJECT_FILE

__all__ = ["TEMPLATE", "register"]

TEMPLATE = """\
# A coditect project: agents, and tasks with their dependencies.
# Run it with:  coditect run {filename}
project: {name}
defaults:
  agent: local
  max_concurrency: 2

agents:
  local:
    type: local            # embedded SmolLM2-135M: no key, no network; tiny, so keep replies short
    max_tokens: 400        # room to finish: a reply cut here is marked truncated (on_truncated)
    options: {{repeat_penalty: 1.3}}   # llama.cpp: a tiny model otherwise repeats itself
    system_prompt: Answer in at most three short sentences.
  # claude:
  #   type: anthropic-claude
  #   model: claude-sonnet-4-5
  #   api_key: "${{ANTHROPIC_API_KEY}}"
  #   fallbacks: [gpt]
  # gpt:
  #   type: openai-gpt
  #   model: gpt-4o-mini   # key from OPENAI_API_KEY
  # gemini:
  #   type: google-gemini
  #   model: gemini-2.5-flash   # key from GEMINI_API_KEY
  # ollama:
  #   type: openai-compatible
  #   base_url: http://localhost:11434/v1
  #   model: llama3.2

tasks:
  - id: TASK-001
    title: Outline the work
    description: List the three most important steps to build this project.
  - id: TASK-002
    title: Plan the first step
    description: Describe how to do the first step of the outline in detail.
    dependencies: [TASK-001]
"""


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_command(
        directory: Annotated[
            Path, typer.Argument(metavar="DIR", help="Where to create the project file.")
        ] = Path("."),
        name: Annotated[
            str, typer.Option(metavar="FILE", help="File name of the project file.")
        ] = DEFAULT_PROJECT_FILE,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    ) -> None:
        """Create a project file to start from.

        Examples:

          coditect init

          coditect init my-project --name plan.yaml
        """
        target = directory / name
        if target.exists() and not force:
            fail(f"{target} already exists (use --force to overwrite it)", ExitCode.BAD_INPUT)
        project = directory.resolve().name or "my-project"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target.write_text(TEMPLATE.format(name=project, filename=target), encoding="utf-8")
        except OSError as error:
            fail_for(error, message=f"{target}: cannot write it: {error.strerror or error}")
        # the shortest command that finds it: a folder means its coditect.yaml (project_path)
        short = str(directory) if directory != Path(".") else ""
        command = f"coditect run {short}".rstrip() if name == DEFAULT_PROJECT_FILE else None
        esc = Shown().markup
        err_console().print(
            f"created {esc(str(target))}; run it with: {esc(command or f'coditect run {target}')}"
        )
