"""``coditect agents`` and ``coditect doctor``: which agents can be used here, and what is missing.

Both only look (no network) unless ``doctor --ping`` asks each usable agent for one token (and
starts each MCP server to list its tools). The checks live in :mod:`coditect_core.app.doctor`;
this module renders them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .options import JsonOpt
from .output import ExitCode, Shown, console, fail_for, print_json
from .project_path import ProjectArg, project_file

if TYPE_CHECKING:
    from ..app.doctor import AgentCheck, RayCheck
    from ..project import ProjectFile

__all__ = ["register"]


def _read(project: Path | None, as_json: bool) -> ProjectFile:
    from ..errors import ProjectFileError
    from ..project import read_project_file

    path = project_file(project, as_json=as_json)
    try:
        return read_project_file(path)
    except ProjectFileError as error:
        fail_for(error, ExitCode.BAD_INPUT, as_json=as_json)


def _verdict(check: AgentCheck) -> str:
    if check.usable:
        if check.ping is not None:
            return f"[green]usable[/] ({check.ping['latency_s']:.2f}s)"
        return "[green]usable[/]"
    return "[red]not usable[/]"


def _problems(check: AgentCheck) -> list[str]:
    out = list(check.problems)
    if check.ping is not None and not check.ping.get("ok"):
        out.append(f"ping failed: {check.ping.get('error')}")
    return out


def _agents_table(checks: list[AgentCheck], title: str) -> None:
    from rich.table import Table

    escape = Shown().markup
    table = Table(title=escape(title), title_justify="left")
    for column in ("agent", "type", "model", "tasks", "status"):
        table.add_column(column, justify="right" if column == "tasks" else "left")
    for c in checks:
        table.add_row(
            escape(c.name),
            escape(c.type if c.interface == "api" else f"{c.type} ({c.interface})"),
            escape(c.model or ""),
            str(len(c.tasks)),
            _verdict(c),
        )
    out = console()
    out.print(table)
    for c in checks:
        for problem in _problems(c):
            out.print(f"  [bold]{escape(c.name)}[/]: {escape(problem)}", soft_wrap=True)


def _ray_section(check: RayCheck) -> None:
    """The cluster ``doctor --ray-address`` looked at: versions, nodes, where agents fit."""
    from rich.markup import escape

    out = console()
    if not check.connected:
        out.print(f"ray: [red]cannot connect[/] to {escape(check.address)}")
        return
    cluster, driver = check.cluster, check.driver
    out.print(
        f"ray: {escape(str(cluster['address']))}: Ray {cluster['ray']}, Python "
        f"{cluster['python']} (this driver: Ray {driver['ray']}, Python {driver['python']}); "
        f"{len(check.nodes)} node{'s' if len(check.nodes) != 1 else ''}",
        soft_wrap=True,
    )
    for node in check.nodes:
        has = node["resources"]
        amounts = ", ".join(f"{has.get(k, 0):g} {k}" for k in ("CPU", "GPU"))
        head = " (head)" if node["head"] else ""
        out.print(f"  node {escape(node['id'][:12])}{head} {escape(node['address'])}: {amounts}")
    for agent in check.agents:
        names = {"num_cpus": "CPU", "num_gpus": "GPU"}
        needs = ", ".join(f"{v:g} {names.get(k, k)}" for k, v in agent["needs"].items() if v)
        verdict = f"fits {len(agent['nodes'])} of {len(check.nodes)} nodes"
        if not agent["nodes"]:
            verdict = "[red]fits no node[/]"
        out.print(f"  agent {escape(agent['agent'])} ({agent['on']}, {needs}): {verdict}")


def _state_info(spec: ProjectFile, state: Path | None) -> dict[str, Any]:
    from ..errors import StateError
    from ..store import StateStore, state_path_for

    db = state_path_for(spec.path, state)
    info: dict[str, Any] = {"path": str(db), "exists": db.exists(), "ok": True}
    if not db.exists():
        return info
    try:
        with StateStore.open(db, readonly=True) as store:
            runs = store.runs(spec.name)
            holder = store.lock_holder(spec.name)
    except StateError as error:
        info.update(ok=False, error=str(error))
        return info
    info["runs"] = len(runs)
    info["last_run"] = None if not runs else {"run_id": runs[-1].run_id, "status": runs[-1].status}
    info["running"] = None if holder is None else holder.describe()
    return info


def register(app: typer.Typer) -> None:
    @app.command("agents")
    def agents_command(project: ProjectArg = None, as_json: JsonOpt = False) -> None:
        """List the project's agents, and what each one misses to be used here.

        Each with its type, model, how many tasks use it, and whether it can be used here (or
        what is missing: SDK extra, key, command, variable).

        No network traffic; `coditect doctor --ping` also calls each one.

        Examples:

          coditect agents examples/cloud.yaml

          coditect agents project.yaml --json | jq '.agents[].problems'
        """
        from ..app.doctor import check_agents

        spec = _read(project, as_json)
        _, checks = check_agents(spec)
        if as_json:
            print_json({"project": spec.name, "agents": [c.to_dict() for c in checks]})
            return
        usable = sum(c.usable for c in checks)
        _agents_table(checks, f"{spec.name}: {usable} of {len(checks)} agents usable")

    @app.command("doctor")
    def doctor_command(
        project: ProjectArg = None,
        ping: Annotated[
            bool,
            typer.Option(
                "--ping",
                help="Also call each usable agent for one token (and check servers), and "
                "start each MCP server to list its tools.",
            ),
        ] = False,
        timeout: Annotated[
            float, typer.Option(min=0.1, metavar="SECONDS", help="Seconds each ping may take.")
        ] = 20.0,
        state: Annotated[
            Path | None,
            typer.Option(
                metavar="FILE",
                help="State database (default: .coditect/state.db beside the file).",
            ),
        ] = None,
        ray_address: Annotated[
            str | None,
            typer.Option(
                metavar="ADDR",
                help="Also check the Ray cluster at ADDR: connection, versions, nodes, "
                "resources, and where each agent's requests fit.",
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check that a project can run here: file, state, agents, extras.

        Python, installed extras, the project file, its state, every agent its tasks use and
        their MCP servers (--ping starts each one); with --ray-address, the Ray cluster too. Exit
        code 0 when every task's agent is usable (and fits on the cluster), 1 when one is not
        (or the cluster cannot be reached), 2 for a bad project file.

        Examples:

          coditect doctor examples/quickstart.yaml

          coditect doctor examples/cloud.yaml --ping

          coditect doctor project.yaml --ping --timeout 5 --json

          coditect doctor project.yaml --ray-address HEAD_IP:6379
        """
        import asyncio
        import platform
        import sys

        from .. import __version__
        from ..app.doctor import (
            check_agents,
            check_mcp_servers,
            check_ray_cluster,
            installed_extras,
            ping_agents,
            start_mcp_servers,
        )
        from ..llm_abstractions.pricing import price_data_version

        spec = _read(project, as_json)
        resolved, checks = check_agents(spec)
        mcp_checks = check_mcp_servers(spec)
        if ping:
            asyncio.run(ping_agents(resolved, checks, wait_s=timeout))
            asyncio.run(start_mcp_servers(spec, mcp_checks, wait_s=timeout))
        state_info = _state_info(spec, state)
        blocking = [c for c in checks if c.tasks and not c.usable]
        problems = [
            f"agent {c.name!r} ({len(c.tasks)} task(s)): " + "; ".join(_problems(c))
            for c in blocking
        ]
        problems.extend(
            f"MCP server {m.name!r} (of {', '.join(m.agents)}): " + "; ".join(m.problems)
            for m in mcp_checks
            if m.used and not m.ok
        )
        if not state_info["ok"]:
            problems.append(f"state: {state_info['error']}")
        ray_check = None
        if ray_address:
            ray_check = asyncio.run(check_ray_cluster(resolved, checks, ray_address))
            problems.extend(f"ray: {problem}" for problem in ray_check.problems)
        ok = not problems
        extras = installed_extras()
        if as_json:
            print_json(
                {
                    "ok": ok,
                    "python": platform.python_version(),
                    "coditect_core": __version__,
                    "executable": sys.executable,
                    "extras": extras,
                    "prices": price_data_version(),
                    "project": {
                        "name": spec.name,
                        "file": spec.path,
                        "tasks": len(spec.task_ids),
                        "agents": len(checks),
                    },
                    "state": state_info,
                    "agents": [c.to_dict() for c in checks],
                    "mcp_servers": [m.to_dict() for m in mcp_checks],
                    "ray": ray_check.to_dict() if ray_check else None,
                    "problems": problems,
                }
            )
            raise typer.Exit(int(ExitCode.OK if ok else ExitCode.TASK_FAILED))
        out = console()
        escape = Shown().markup
        out.print(
            f"coditect-core {__version__}, Python {platform.python_version()} "
            f"[dim]({escape(sys.executable)})[/]"
        )
        out.print(
            "extras: "
            + ", ".join(
                f"[green]{k}[/]" if v else f"[dim]{k} (not installed)[/]" for k, v in extras.items()
            )
        )
        out.print(f"prices: {escape(price_data_version())} [dim](never updated online)[/]")
        out.print(
            f"project: [bold]{escape(spec.name)}[/] [dim]{escape(spec.path)}[/]: "
            f"{len(spec.task_ids)} tasks, {len(checks)} agents"
        )
        if not state_info["exists"]:
            out.print(f"state: not run yet [dim]({escape(state_info['path'])})[/]")
        elif state_info["ok"]:
            last = state_info["last_run"]
            line = f"state: {state_info['runs']} run(s)"
            if last:
                line += f", last: {last['run_id']} {last['status']}"
            if state_info["running"]:
                line += f"; running now: {state_info['running']}"
            out.print(f"{escape(line)} [dim]({escape(state_info['path'])})[/]")
        _agents_table(checks, "agents" + (" (pinged)" if ping else ""))
        unpriced = [c for c in checks if c.tasks and c.price == "unknown"]
        if unpriced:
            names = ", ".join(f"{c.name} ({c.model or 'default model'})" for c in unpriced)
            out.print(
                f"no known price: {escape(names)}: their costs show as unknown "
                "(set price: {input, output} on the agent)",
                soft_wrap=True,
            )
        for m in mcp_checks:
            if not m.ok:
                verdict = "[red]failed[/]: " + escape("; ".join(m.problems))
            elif m.tools is not None:
                verdict = f"[green]ok[/]: {len(m.tools)} tools: " + escape(", ".join(m.tools))
            else:
                verdict = "[green]ok[/] [dim](--ping starts it and lists its tools)[/]"
            users = escape(", ".join(m.agents)) or "no agent"
            out.print(
                f"MCP server [bold]{escape(m.name)}[/] ({m.transport}, {users}): {verdict}",
                soft_wrap=True,
            )
        if ray_check is not None:
            _ray_section(ray_check)
        if ok:
            out.print("[green]ok[/]: every agent the tasks use is usable")
        else:
            if blocking:
                uses = ", ".join(f"{c.name} ({len(c.tasks)})" for c in blocking)
                out.print(
                    f"[red]not ready[/]: tasks use agents that are not usable: {escape(uses)}"
                )
            if not state_info["ok"]:
                out.print(f"[red]state[/]: {escape(state_info['error'])}")
            for m in mcp_checks:
                if m.used and not m.ok:
                    out.print(f"[red]not ready[/]: MCP server {escape(m.name)} failed")
            for problem in ray_check.problems if ray_check else []:
                out.print(f"[red]ray[/]: {escape(problem)}", soft_wrap=True)
        raise typer.Exit(int(ExitCode.OK if ok else ExitCode.TASK_FAILED))
