"""The planner: a plan document (Markdown or text) into a project file, through a model.

Four steps, each usable on its own::

    document = read_plan_document("plan.md")           # text and its steps, or PlanDocumentError
    agents = read_agents_file("agents.yaml")            # or DEFAULT_AGENTS
    plan = await make_plan(llm, document, agents, planner="claude", output="project.yaml")
    Path("project.yaml").write_text(plan.text)          # commented YAML: review it, then run it

The model is asked for JSON matching :func:`graph_schema` (derived from
:class:`~.schema.TaskSpec`, never written twice): ``tasks`` (the project file's task fields, each
with the document step it comes from) and ``unplaced`` (the steps it could not make a task of).
Its answer is rendered as the project file and checked by the same loader ``coditect run`` uses
(:func:`~.loader.parse_project_file`: bad fields, duplicate ids, unknown dependencies, cycles);
the loader's own messages go back to the model, up to ``rounds`` answers, then
:class:`~coditect_core.errors.PlanRejectedError` with the last ones. The loader reports a cycle only
once the rest is clean, so a graph with unknown dependencies is also loaded without them, and
the cycle (if any) is said in the same round.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import (
    LlmOutputValidationError,
    PlanDocumentError,
    PlanRejectedError,
    ProjectFileError,
)
from ..llm_abstractions.base_llm import BaseLlm
from ..llm_abstractions.messages import Message
from ..orchestration.task import TaskPriority
from ._yaml import read_yaml
from .loader import ProjectFile, _check, parse_project_file
from .schema import TaskSpec

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_ROUNDS",
    "MAX_PLAN_BYTES",
    "PLANNED_FIELDS",
    "Plan",
    "PlanAgents",
    "PlanDocument",
    "default_agents",
    "find_steps",
    "graph_schema",
    "make_plan",
    "plan_messages",
    "read_agents_file",
    "read_plan_document",
    "render_project",
    "unnamed_headings",
]

logger = logging.getLogger(__name__)

MAX_PLAN_BYTES = 2 * 1024 * 1024
"""The largest plan document read (2 MB): a plan, not a dump."""

DEFAULT_ROUNDS = 3
"""Answers asked of the model before giving up: the first, and two fixes."""

PLANNED_FIELDS = (
    "id",
    "title",
    "description",
    "dependencies",
    "priority",
    "phase",
    "deliverables",
    "success_criteria",
    "checks",
    "agent",
)
"""The task fields the model fills, those of them :class:`~.schema.TaskSpec` has."""

DEFAULT_AGENTS: dict[str, Any] = {"local": {"type": "local", "options": {"n_ctx": 8192}}}
"""The agents of a planned project when no agents file is given: the embedded model, with the
context its model has (SmolLM2: 8192 tokens; the default 2048 does not hold a plan and its
schema)."""

_STEP = re.compile(
    r"^\s{0,3}(?:#{1,6}\s+\S|(?:\d+(?:\.\d+)*|[A-Za-z])[.)]\s+\S|[-*+]\s+\S|step\s+\d)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_SNIFF = 8192


@dataclass(frozen=True)
class PlanDocument:
    """A plan document, read: its path, its text and the lines that look like steps."""

    path: str
    text: str
    steps: list[str]

    @property
    def name(self) -> str:
        """The file's name, for the project's name and the header."""
        return Path(self.path).name


def read_plan_document(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_PLAN_BYTES
) -> PlanDocument:
    """Read the plan document at ``path``; :class:`PlanDocumentError` naming it when it is
    missing, not a file, empty, not text, over ``max_bytes``, or has no step to find."""
    name = os.fspath(path)
    try:
        size = os.stat(name).st_size
        if not Path(name).is_file():
            raise PlanDocumentError(f"{name}: not a file (a plan document is expected)", path=name)
        if size > max_bytes:
            raise PlanDocumentError(
                f"{name}: {_size(size)} is over the {_size(max_bytes)} limit of a plan document",
                path=name,
            )
        with open(name, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise PlanDocumentError(f"{name}: no such file", path=name) from None
    except OSError as error:
        raise PlanDocumentError(
            f"{name}: cannot read it: {error.strerror or error}", path=name
        ) from error
    if len(data) > max_bytes:  # it grew since the stat
        raise PlanDocumentError(
            f"{name}: over the {_size(max_bytes)} limit of a plan document", path=name
        )
    if not data.strip():
        raise PlanDocumentError(
            f"{name}: the file is empty; a plan document (Markdown or text) with steps is expected",
            path=name,
        )
    nul = data.find(b"\0", 0, _SNIFF)
    if nul >= 0:
        raise PlanDocumentError(
            f"{name}: a binary file (a NUL byte at offset {nul}), not a plan document in text",
            path=name,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PlanDocumentError(
            f"{name}: not UTF-8 text (byte {error.start}); a plan document in text is expected",
            path=name,
        ) from None
    steps = find_steps(text)
    if not steps:
        raise PlanDocumentError(
            f"{name}: no steps found; expected Markdown headings ('## Step 1: ...'), numbered "
            "items ('1. ...'), bullets ('- ...') or lines starting with 'Step N'",
            path=name,
        )
    return PlanDocument(name, text, steps)


def find_steps(text: str) -> list[str]:
    """The lines of ``text`` that look like steps (headings, numbered items, bullets, 'Step N'),
    outside fenced code blocks, stripped."""
    steps: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and _STEP.match(line):
            steps.append(line.strip())
    return steps


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


@dataclass(frozen=True)
class PlanAgents:
    """The agents a planned project uses: as written (``${VAR}`` unexpanded), the default one,
    and the file they were read from (``None``: :data:`DEFAULT_AGENTS`)."""

    agents: dict[str, Any]
    default: str
    project_file: ProjectFile
    """The agents, checked by the loader (with a placeholder task); to resolve one to a model."""
    path: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    """The project's ``defaults:``: the file's, with ``agent`` always set."""

    def describe(self) -> str:
        """One line per agent, for the prompt: name, type, model, capabilities, description."""
        lines = []
        for name, spec in self.agents.items():
            bits = [str(spec.get("type", "?"))]
            if spec.get("model"):
                bits.append(f"model {spec['model']}")
            if spec.get("capabilities"):
                bits.append("capabilities: " + ", ".join(map(str, spec["capabilities"])))
            if spec.get("description"):
                bits.append(str(spec["description"]))
            lines.append(f"- {name}: {'; '.join(bits)}")
        return "\n".join(lines)


def _placeholder_task() -> dict[str, Any]:
    return {"id": "PLAN", "title": "placeholder: the planner's agents check"}


def default_agents() -> PlanAgents:
    """:data:`DEFAULT_AGENTS`, checked."""
    agents = copy.deepcopy(DEFAULT_AGENTS)
    data = {"agents": agents, "tasks": [_placeholder_task()]}
    checked = parse_project_file(yaml.safe_dump(data, sort_keys=False), "<default agents>")
    default = next(iter(agents))
    return PlanAgents(agents, default, checked, None, {"agent": default})


def read_agents_file(path: str | os.PathLike[str]) -> PlanAgents:
    """The ``agents:`` mapping (and ``defaults.agent``) of the YAML file at ``path``, checked by
    the project-file loader (a project file will do); :class:`ProjectFileError` naming the file,
    line and field otherwise."""
    name = os.fspath(path)
    data, lines = read_yaml(name)
    if not isinstance(data, dict) or "agents" not in data:
        raise ProjectFileError(
            "an agents file is a mapping with an 'agents:' mapping (name -> settings), as in a "
            "project file",
            path=name,
            line=lines.line(()),
        )
    checked_data = dict(data)
    defaults = data.get("defaults")
    agents = data["agents"]
    first = next(iter(agents), None) if isinstance(agents, dict) else None
    chosen = defaults.get("agent") if isinstance(defaults, dict) else None
    placeholder = _placeholder_task()
    if chosen is None and isinstance(first, str):
        placeholder["agent"] = first  # the default of the project written
    checked_data.setdefault("tasks", [placeholder])
    checked = _check(checked_data, lines, name)
    default = checked.spec.defaults.agent or next(iter(checked.spec.agents))
    kept = copy.deepcopy(defaults) if isinstance(defaults, dict) else {}
    return PlanAgents(copy.deepcopy(agents), default, checked, name, {**kept, "agent": default})


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k not in ("title", "default")}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` as ``X``: the model omits a field rather than sending null."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return prop


def graph_schema(agents: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of the graph the model returns: ``tasks`` (the :data:`PLANNED_FIELDS`
    :class:`~.schema.TaskSpec` has, as its schema says, plus ``source_step``) and ``unplaced``.
    ``agents``: the names a task may use (``None``: no ``agent`` field, the default runs all)."""
    full = TaskSpec.model_json_schema()
    props: dict[str, Any] = {}
    for name in PLANNED_FIELDS:
        if name not in full["properties"] or (name == "agent" and not agents):
            continue
        props[name] = _not_null(_strip_titles(full["properties"][name]))
    if "priority" in props:
        props["priority"]["enum"] = [p.value for p in TaskPriority]
    if "agent" in props and agents:
        props["agent"]["enum"] = list(agents)
    props["id"]["description"] = "letters, digits, '_', '.' and '-', e.g. STEP-4.1"
    props["dependencies"]["description"] = "ids of the tasks this one needs done first"
    props["source_step"] = {
        "type": "string",
        "description": "the step of the document this task comes from, as written there",
    }
    task = {
        "type": "object",
        "properties": props,
        "required": [*full.get("required", []), "dependencies", "source_step"],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "items": task, "minItems": 1},
            "unplaced": {
                "type": "array",
                "items": {"type": "string"},
                "description": "steps of the document that are not tasks (goals, risks, notes)",
            },
        },
        "required": ["tasks", "unplaced"],
        "additionalProperties": False,
    }
    defs = full.get("$defs")
    used = json.dumps(props)
    if defs and "#/$defs/" in used:
        schema["$defs"] = _strip_titles(defs)
    return schema


_SYSTEM = """\
You turn a plan document into a task graph for coditect, a runner of task graphs on LLM agents.
Rules:
- One task per actionable step of the document (a step that asks for work to be done). Use the
  document's own numbering in ids where it has one (step 4.1 -> STEP-4.1).
- dependencies: the ids of the tasks a task needs done first, as the document says or as its
  order implies. Never depend on a task that is not in your list; never make a cycle.
- Keep the document's words in titles and descriptions; put what a task must produce in
  deliverables and how to tell it is done in success_criteria.
- Steps you cannot make a task of (goals, risks, notes, future work) go in "unplaced", as
  written; leave nothing out silently.
- Answer with one JSON object matching the JSON Schema below, and nothing else."""


def _offered(agents: PlanAgents | None) -> list[str] | None:
    """The agents a task may name: those of an agents file; None without one."""
    return list(agents.agents) if agents is not None and agents.path is not None else None


def plan_messages(document: PlanDocument, agents: PlanAgents | None) -> list[Message]:
    """The first request: the rules, the schema, the agents (if any) and the document."""
    names = _offered(agents)
    schema = json.dumps(graph_schema(names), separators=(",", ":"))
    who = (
        f"\n\nAgents a task may name (default: {agents.default}):\n{agents.describe()}"
        if agents is not None and names
        else ""
    )
    user = (
        f"JSON Schema of your answer:\n{schema}{who}\n\n"
        f"The plan document ({document.name}):\n<<<\n{document.text}\n>>>"
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _graph(value: object) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The tasks and unplaced steps of an answer, each task's source step taken out; or
    ``ValueError`` naming what is missing."""
    if not isinstance(value, Mapping):
        raise ValueError(f"the answer must be a JSON object, not {type(value).__name__}")
    tasks = value.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ValueError("'tasks' must be a non-empty list of task objects")
    unplaced = value.get("unplaced", [])
    if not isinstance(unplaced, list):
        raise ValueError("'unplaced' must be a list of strings")
    extra = sorted(set(value) - {"tasks", "unplaced"})
    if extra:
        raise ValueError(f"unknown keys {extra}: the answer has only 'tasks' and 'unplaced'")
    out, sources = [], []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise ValueError(f"tasks[{i}] must be an object, not {type(task).__name__}")
        task = dict(task)
        source = task.pop("source_step", "")
        sources.append(source if isinstance(source, str) else json.dumps(source))
        out.append(task)
    return out, [s if isinstance(s, str) else json.dumps(s) for s in unplaced], sources


@dataclass
class Plan:
    """A planned project file: its text, its tasks, what the model could not place, and the
    conversation that made it (``answers`` the model gave, ``errors`` each failed one had)."""

    text: str
    project: ProjectFile
    tasks: list[dict[str, Any]]
    sources: list[str]
    unplaced: list[str]
    answers: int
    errors: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)
    """Headings of the document that no task's source step and no unplaced entry names."""


_NUMBER = re.compile(r"(?:step\s+)?(\d+(?:\.\d+)*)")


def _key(text: str) -> str:
    return " ".join(re.sub(r"[#*`_:]+", " ", text).lower().split())


def unnamed_headings(
    document: PlanDocument, sources: Sequence[str], unplaced: Sequence[str]
) -> list[str]:
    """The Markdown headings of ``document`` that no source step and no unplaced entry names
    (either text holding the other, ignoring case and markup): what the model may have
    dropped, for the person reviewing."""
    named = [k for k in map(_key, [*sources, *unplaced]) if len(k) >= 4]
    out = []
    titles = [step for step in document.steps if re.match(r"#\s", step)]
    for step in document.steps:
        if not step.startswith("#") or titles == [step]:  # not a heading, or the title
            continue
        key = _key(step)
        number = _NUMBER.match(key)  # "step 4.1 ...", "4. ...": named by its number, or 4.x
        mention = re.compile(rf"(?<![\w.]){re.escape(number.group(1))}(?!\w)") if number else None
        if key and not any(
            key in n or n in key or (mention is not None and mention.search(n)) for n in named
        ):
            out.append(step)
    return out


def _comment(text: str, prefix: str = "# ", more: str | None = None) -> list[str]:
    """``text`` as YAML comment lines: every line break a new comment (its lines after the
    first start with ``more``, by default ``prefix``), nothing YAML refuses."""
    out = []
    for i, line in enumerate(text.splitlines() or [""]):
        clean = "".join(c if c.isprintable() else "?" for c in line.replace("\t", " "))
        out.append(((prefix if i == 0 or more is None else more) + clean).rstrip())
    return out


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as people write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def render_project(
    document: PlanDocument,
    agents: PlanAgents,
    planner: str,
    tasks: Sequence[Mapping[str, Any]],
    sources: Sequence[str],
    unplaced: Sequence[str],
    unnamed: Sequence[str] = (),
) -> str:
    """The commented project file: a header (made from DOC by agent A: review it before
    ``coditect run``), the agents, each task under a comment with its source step, and, as
    comments at the end, the steps left unplaced and the headings nothing names."""
    lines = [
        *_comment(f"Generated by `coditect plan` from {document.name} by agent {planner!r}."),
        "# A model wrote it: REVIEW IT (tasks, dependencies, agents) before `coditect run`.",
    ]
    if unplaced:
        lines.append(f"# {len(unplaced)} step(s) of the document are not tasks: listed at the end.")
    if unnamed:
        lines.append(
            f"# {len(unnamed)} heading(s) of the document no task names: listed at the end."
        )
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(document.name).stem).strip("-.") or "plan"
    head: dict[str, Any] = {
        "project": stem,
        "defaults": agents.defaults or {"agent": agents.default},
    }
    lines += _dump(head).splitlines()
    lines += _dump({"agents": agents.agents}).splitlines()
    lines.append("tasks:")
    for task, source in zip(tasks, sources, strict=True):
        if source:
            lines += _comment(f"from: {source}", "  # ", "  #       ")
        lines += ["  " + line for line in _dump([dict(task)]).splitlines()]
    if unplaced:
        lines.append("")
        lines.append("# Steps of the document not placed as tasks (add them by hand if needed):")
        for step in unplaced:
            lines += _comment(step, "# - ", "#   ")
    if unnamed:
        lines.append("")
        lines.append(
            "# Headings of the document that no task and no unplaced step names (covered?):"
        )
        for step in unnamed:
            lines += _comment(step, "# - ")
    return "\n".join(lines) + "\n"


async def _answer(
    llm: BaseLlm, messages: list[Message], schema: dict[str, Any], max_tokens: int | None
) -> tuple[str, object, str]:
    """The model's reply to ``messages``, its JSON value, and what is wrong with it ("" when
    nothing is); the one place the model is called. It is asked as a typed output
    (``output_schema=schema``, the best mode the provider has: llama.cpp's grammar for the
    embedded model, a vendor's JSON Schema response format...); a reply that does not fit the
    schema comes back with the schema's errors, which the planner sends back with the loader's."""
    per_call: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens is not None else {}
    try:
        response = await llm.generate_async(
            messages, output_schema=schema, output_mode="auto", output_retries=0, **per_call
        )
    except LlmOutputValidationError as error:
        return error.reply, None, "\n".join(error.errors)
    return response.text, response.value, ""


def _check_plan(
    document: PlanDocument,
    agents: PlanAgents,
    planner: str,
    value: object,
    output: str,
) -> tuple[Plan | None, str]:
    """The plan an answer's JSON value makes, or the problems to tell the model."""
    try:
        tasks, unplaced, sources = _graph(value)
    except ValueError as error:
        return None, str(error)
    if agents.path is None:  # no agents offered: every task runs on defaults.agent
        for task in tasks:
            task.pop("agent", None)
    unnamed = unnamed_headings(document, sources, unplaced)
    text = render_project(document, agents, planner, tasks, sources, unplaced, unnamed)
    try:
        project = parse_project_file(text, output)
    except ProjectFileError as error:
        problems = str(error)
        problems += _cycle_too(document, agents, planner, tasks, sources, output)
        return None, problems
    return Plan(text, project, tasks, sources, unplaced, 0, unnamed=unnamed), ""


def _cycle_too(
    document: PlanDocument,
    agents: PlanAgents,
    planner: str,
    tasks: list[dict[str, Any]],
    sources: list[str],
    output: str,
) -> str:
    """The loader checks cycles once the rest is clean: load the graph without its unknown
    dependencies too, to say a cycle in the same round."""
    ids = {t.get("id") for t in tasks}
    trimmed = []
    for task in tasks:
        deps = task.get("dependencies")
        if isinstance(deps, list):
            task = {**task, "dependencies": [d for d in deps if d in ids]}
        trimmed.append(task)
    if trimmed == tasks:
        return ""
    text = render_project(document, agents, planner, trimmed, sources, [])
    try:
        parse_project_file(text, output)
    except ProjectFileError as error:
        message = str(error)
        if "dependency cycle" in message:
            cycle = next(line for line in message.splitlines() if "dependency cycle" in line)
            return f"\nalso: {cycle.strip()}"
    return ""


async def make_plan(
    llm: BaseLlm,
    document: PlanDocument,
    agents: PlanAgents,
    *,
    planner: str,
    output: str | os.PathLike[str] = "project.yaml",
    rounds: int = DEFAULT_ROUNDS,
    max_tokens: int | None = None,
) -> Plan:
    """Ask ``llm`` (agent ``planner``) for the task graph of ``document``, check each answer
    with the project-file loader (as the file ``output``), and send the loader's messages back
    until one passes or ``rounds`` answers were given: then :class:`PlanRejectedError` with the
    last problems. Nothing is written. ``max_tokens``: each answer's cap (None: the model's)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    out = os.fspath(output)
    messages = plan_messages(document, agents)
    schema = graph_schema(_offered(agents))
    errors: list[str] = []
    for answer_no in range(1, rounds + 1):
        answer, value, problems = await _answer(llm, messages, schema, max_tokens)
        plan = None
        if not problems:
            plan, problems = _check_plan(document, agents, planner, value, out)
        if plan is not None:
            plan.answers, plan.errors = answer_no, errors
            logger.info(
                "%s: planned %d tasks in %d answer(s)", document.path, len(plan.tasks), answer_no
            )
            return plan
        errors.append(problems)
        logger.info("%s: answer %d refused: %s", document.path, answer_no, problems)
        messages = [
            *messages,
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": "That graph was refused:\n"
                f"{problems}\n\nFix these problems and answer with the whole corrected JSON "
                "object, nothing else.",
            },
        ]
    raise PlanRejectedError(
        f"{document.path}: the model's task graph failed the project-file checks {rounds} "
        f"time(s); the last problems:\n{errors[-1]}",
        path=document.path,
        errors=errors[-1],
        answers=rounds,
    )
