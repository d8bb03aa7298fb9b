"""The YAML project file: agents and a task graph, read into ``AgentConfig``s and ``AgentTask``s.

The format (every key is optional unless marked *required*)::

    project: refactor-task-executor        # name; default: the file name
    description: ...
    runner: local                          # local | ray
    budget: {max_cost_usd: 5.0, max_tokens: 200000}
    keep_backups: 5                        # state backups kept (coditect state backup)
    workspace: .                           # the folder tools work in (default: this file's)
    defaults:
      agent: local                         # for tasks that name none (or the only agent)
      max_concurrency: 4                   # tasks running at once
      timeout: 600                         # seconds per task
      priority: medium                     # critical | high | medium | low
    agents:                                # *required*: name -> settings
      claude:
        type: anthropic-claude             # *required*: anthropic-claude, openai-gpt,
                                           #   google-gemini, meta-llama, openai-compatible,
                                           #   local, custom
        interface: api                     # api | cli | script | interactive | hybrid
        model: claude-sonnet-4-5
        api_key: "${ANTHROPIC_API_KEY}"    # quote ${...} inside { } or [ ]
        base_url: ...                      # OpenAI-compatible servers
        system_prompt: ...
        temperature: 0.2                   # 0 to 2
        max_tokens: 1024
        timeout: 120                       # seconds per call
        capabilities: [code, testing]      # code research design testing deployment
                                           #   documentation analysis planning
        fallbacks: [gpt]                   # agents tried when this one fails
        fallback_on: retryable             # retryable | any
        on_truncated: warn                 # a reply cut at max_tokens: accept | warn | fail
        enabled: true
        command: [claude, -p]              # argv of a cli/script agent (never a shell)
        reviewer: gpt                      # the critic of a hybrid agent
        provider: my-plugin                # LLM registry name of a custom agent
        options: {top_p: 0.9}              # passed to the provider class as is
        requests_per_minute: 50
        tokens_per_minute: 40000
        max_concurrency: 2                 # calls to this agent at once
        price: {input: 3.0, output: 15.0}  # USD per million tokens
        resources: {num_cpus: 1, num_gpus: 0}   # per call, on a Ray cluster
        cache: true                        # answer a request seen before from the call
                                           #   journal (temperature 0 or unset); always; false
        tools: [mypkg.tools:lookup]        # an api agent's tools: built-in names, Python
                                           #   functions (package.module:function)
        max_turns: 20                      # model turns of its agent loop per task
        max_tool_calls: 100                # tool calls per task
        tool_timeout: 60                   # seconds per tool call
        max_parallel_tools: 4              # calls of one turn running at once
        description: ...
        mcp_servers: [github]              # MCP servers whose tools it may call (below)
    mcp_servers:                           # name -> an MCP server (needs the [mcp] extra)
      github:                              # a stdio server: command, args, env, cwd
        command: github-mcp-server         #   (the server gets PATH, HOME... and its env
        args: [stdio]                      #   only: never this process's provider keys)
        env: {GITHUB_PERSONAL_ACCESS_TOKEN: "${GITHUB_TOKEN}"}
        cwd: .                             # relative to the project file's folder
        tools: [get_issue, search_code]    # allow-list (default: every tool it offers)
        prefix: gh_                        # before each tool name (default: github__)
        startup_timeout: 30                # seconds to start and list its tools
        call_timeout: 120                  # seconds per tool call
      docs:                                # a streamable HTTP server: url, headers
        url: https://docs.example.com/mcp
        headers: {Authorization: "Bearer ${DOCS_TOKEN}"}
    tasks:                                 # *required*: a list
      - id: TASK-001                       # *required*: letters, digits, _ . -
        title: Update executor imports     # *required*
        description: ...
        agent: claude
        priority: high
        phase: implementation
        dependencies: [TASK-000]
        deliverables: [...]
        success_criteria: [...]
        tags: [...]
        estimated_hours: 1.5
        timeout: 300                       # seconds, for this task
        metadata: {any: json}
        output_schema: schemas/plan.json   # its output is JSON matching this JSON Schema
                                           # (inline, or a .json file beside this file)
        output_mode: auto                  # auto | native | tool | prompted
        output_retries: 2                  # re-asks of an invalid reply (0 to 10)

``${VAR}`` and ``${VAR:-default}`` are expanded from the environment in the string settings of
agents and MCP servers (``$${`` is a literal ``${``); task text is taken literally. An unset
variable is an error only for an agent the run uses (or an MCP server of one). Every error is a
:class:`~coditect_core.errors.ProjectFileError` naming the file, the line, the field
(``tasks[3].dependencies[0]``) and the bad value.

The package splits along its seams: :mod:`._yaml` (safe parsing with lines), :mod:`.schema`
(types), :mod:`.checks` (cross-field rules), :mod:`.env` (``${VAR}``), :mod:`.diagnostics`
(error text), :mod:`.output_schemas` (a task's ``output_schema``: inline or a file, checked),
:mod:`.loader` (the API).
"""

from __future__ import annotations

from ._yaml import MAX_FILE_BYTES, paused_gc
from .loader import (
    AgentSettings,
    Project,
    ProjectFile,
    load_project,
    parse_project_file,
    read_project_file,
)
from .schema import (
    AgentSpec,
    BudgetSpec,
    DefaultsSpec,
    PriceSpec,
    ProjectSpec,
    ResourcesSpec,
    TaskSpec,
)

__all__ = [
    "MAX_FILE_BYTES",
    "AgentSettings",
    "AgentSpec",
    "BudgetSpec",
    "DefaultsSpec",
    "PriceSpec",
    "Project",
    "ProjectFile",
    "ProjectSpec",
    "ResourcesSpec",
    "TaskSpec",
    "load_project",
    "parse_project_file",
    "paused_gc",
    "read_project_file",
]
