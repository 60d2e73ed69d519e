"""``cilium-labs verify`` and ``cilium-labs agents``: the checks, and the recipe's exec loop as one command.

``verify`` works on any cluster a kubeconfig reaches (or a lab by name); it exits 0 only when every check passed
(warnings, such as API hiccups that retries absorbed, are shown and pass unless ``--strict``), so a CI job can gate
on it. ``--wait`` is a hard bound on the whole command. ``agents exec -- status`` runs one agent command on every
agent at once and prints the outputs grouped by node: what the recipe did with
``for pod in ...; kubectl exec $pod -- cilium status``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from .._console import table_console
from ..cilium.agents import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, AgentResult, Agents
from ..cluster import Cluster
from ..errors import UsageError
from ..report import Report
from ..spec import LabSpec

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")
_OUTPUTS = ("table", "json", "junit")
PING_TIMEOUT_S = 10.0
"""Without ``--wait``, the API server must answer ``/version`` within this (it answers in milliseconds when up)."""


def parse_duration(text: str | float | int | None, *, option: str = "--wait") -> float | None:
    """``"5m"``, ``"90s"``, ``"1h30m"``, ``"45"`` (seconds) -> seconds; None, ``""`` and ``"0"`` -> None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text) or None
    raw = text.strip().lower()
    if raw in ("", "0", "0s", "none", "no"):
        return None
    try:
        return float(raw) or None
    except ValueError:
        pass
    m = _DURATION.match(raw)
    if not m or not any(m.groups()):
        raise UsageError(f"{option} {text!r} is not a duration", fix=f"write it like 5m, 90s or 1h30m ({option} 5m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds or None


def print_report(report: Report, output: str, console: Console | None = None) -> None:
    """Print a report as ``table`` (people), ``json`` or ``junit`` (machines, on stdout unadorned)."""
    if output == "json":
        click.echo(report.to_json())
    elif output == "junit":
        click.echo(report.to_junit(), nl=False)
    elif output == "table":
        report.render_table(console or table_console())
    else:
        raise UsageError(f"unknown output format {output!r}", fix=f"use one of: {', '.join(_OUTPUTS)}")


def resolve_kubeconfig(kubeconfig: str | None, lab: str | None = None) -> tuple[Path, LabSpec | None]:
    """The kubeconfig to use and, for a lab, its spec: ``--kubeconfig``, else the lab's, else $KUBECONFIG,
    else ``~/.kube/config`` (the order kubectl uses)."""
    spec: LabSpec | None = None
    if lab:
        from ..spec import from_dict
        from ..state import StateStore

        state = StateStore().load(lab)
        spec = from_dict(state.spec)
        if not kubeconfig:
            if not state.kubeconfig:
                raise UsageError(f"lab {lab!r} has no kubeconfig yet", fix=f"bring it up: cilium-labs up --name {lab}")
            kubeconfig = state.kubeconfig
    if not kubeconfig:
        env = os.environ.get("KUBECONFIG", "")
        kubeconfig = next((p for p in env.split(os.pathsep) if p), "") or str(Path.home() / ".kube" / "config")
    path = Path(kubeconfig).expanduser()
    if not path.exists():
        raise UsageError(f"kubeconfig {path} does not exist", fix="pass --kubeconfig PATH (or --lab NAME)")
    if not path.is_file():
        raise UsageError(f"kubeconfig {path} is not a regular file", fix="pass --kubeconfig PATH (or --lab NAME)")
    return path, spec


def _progress_printer(enabled: bool) -> Any:
    err = Console(stderr=True, highlight=False)

    def progress(message: str) -> None:
        if enabled:
            err.print(Text.assemble(("› ", "dim"), message))

    return progress


def _cluster_options(fn: Any) -> Any:
    for decorator in reversed(
        [
            click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig (default: $KUBECONFIG)."),
            click.option("--context", help="Kubeconfig context (default: the current one)."),
            click.option("--lab", help="A lab made by cilium-labs: its kubeconfig and spec from the lab state."),
            click.option(
                "--namespace", "-n", default=None, help="Namespace of the Cilium agents.  [default: kube-system]"
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 512),
                default=DEFAULT_CONCURRENCY,
                show_default=True,
                help="Agent execs in flight at once.",
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


# -- verify ----------------------------------------------------------------------------------------------------


@click.command("verify")
@click.option(
    "--check",
    "checks",
    help="Comma-separated checks: health,tunnels,services (the default), connectivity, encapsulation, preflight "
    "(encapsulation and preflight need --lab: they use the lab's backend).",
)
@click.option("-o", "--output", type=click.Choice(_OUTPUTS), default="table", show_default=True, help="Report format.")
@click.option("--wait", default=None, help="Poll until every check passes or this much time passed (5m, 90s).")
@click.option("--interval", default="5s", show_default=True, help="Pause between polls with --wait.")
@click.option(
    "--exec-timeout",
    default=f"{DEFAULT_TIMEOUT_S:g}s",
    show_default=True,
    help="Per-command limit in each agent; a slower agent is a finding.",
)
@click.option("--junit-file", type=click.Path(dir_okay=False), help="Also write the JUnit XML report here.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1), not only errors.")
@_cluster_options
def verify(
    checks: str | None,
    output: str,
    wait: str | None,
    interval: str,
    exec_timeout: str,
    junit_file: str | None,
    strict: bool,
    kubeconfig: str | None,
    context: str | None,
    lab: str | None,
    namespace: str | None,
    concurrency: int,
) -> None:
    """Verify Cilium on a cluster: agent health, tunnel maps and service tables on every agent at once.

    Exit 0 only when every check passed, 1 when any error was found (or, with --strict, any warning). --wait is
    a hard bound on the whole command: no API call or agent exec runs past it.

    \b
    Examples:
        cilium-labs verify --kubeconfig ~/.kube/config
        cilium-labs verify --check tunnels,services -o json
        cilium-labs verify --wait 5m -o junit > verify.xml
        cilium-labs verify --lab mylab --strict
    """
    from .. import checks as checks_mod

    begun = time.monotonic()  # --wait bounds the command from here, kubeconfig loading included
    names = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
    checks_mod.base.select(names)  # an unknown check name is a usage error before anything is contacted
    wait_s = parse_duration(wait)
    interval_s = parse_duration(interval, option="--interval") or 5.0
    exec_timeout_s = parse_duration(exec_timeout, option="--exec-timeout") or DEFAULT_TIMEOUT_S
    path, spec = resolve_kubeconfig(kubeconfig, lab)
    ns = namespace or (spec.cilium_namespace if spec is not None else "kube-system")
    cluster = Cluster(path, context)
    progress = _progress_printer(output == "table" or wait_s is not None)
    backend = None
    if lab:  # a lab's backend brings the capabilities the traffic checks need (node_exec, capture)
        from ..lab import Lab

        backend = Lab.open(lab).backend
    kwargs: dict[str, Any] = dict(
        spec=spec,
        backend=backend,
        names=names,
        namespace=ns,
        concurrency=concurrency,
        progress=progress,
        exec_timeout_s=exec_timeout_s,
        strict=strict,
    )
    if wait_s:
        left = max(0.1, wait_s - (time.monotonic() - begun))
        report = checks_mod.wait_for(cluster, timeout_s=left, interval_s=interval_s, **kwargs)
    else:
        # without --wait nothing is polled: an API server that does not answer is said at once, not after the
        # retries of every read
        cluster.ping(timeout=PING_TIMEOUT_S)
        report = checks_mod.run_checks(cluster, **kwargs)
    if junit_file:
        Path(junit_file).write_text(report.to_junit())
    print_report(report, output)
    sys.exit(0 if report.ok else 1)


# -- agents ----------------------------------------------------------------------------------------------------


@click.group("agents")
def agents() -> None:
    """The Cilium agent pods: list them, or run one command on all of them at once."""


@agents.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_cluster_options
def agents_list(
    output: str,
    kubeconfig: str | None,
    context: str | None,
    lab: str | None,
    namespace: str | None,
    concurrency: int,
) -> None:
    """Agent pods, their nodes and readiness, and the detected Cilium version and CLI."""
    path, spec = resolve_kubeconfig(kubeconfig, lab)
    ns = namespace or (spec.cilium_namespace if spec is not None else "kube-system")
    with Agents(Cluster(path, context), ns, concurrency=concurrency) as ag:
        found = ag.agents
        version = ag.version_str if found else None
        cli = ag.cli if found else None
    if output == "json":
        data = {
            "namespace": ns,
            "cilium_version": version,
            "cli": cli,
            "agents": [
                {"node": a.node, "pod": a.pod, "phase": a.phase, "ready": a.ready, "image": a.image} for a in found
            ],
        }
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"{len(found)} Cilium agents in {ns} (Cilium {version or 'unknown'}, `{cli}`)")
    for col in ("node", "pod", "phase", "ready", "image"):
        table.add_column(col)
    for a in found:
        table.add_row(a.node, a.pod, a.phase, "yes" if a.ready else Text("no", style="red"), a.image)
    table_console().print(table)


@agents.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.option("--node", "nodes", multiple=True, help="Only the agent on this node (repeatable).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--timeout", default=f"{DEFAULT_TIMEOUT_S:g}s", show_default=True, help="Per-agent limit.")
@_cluster_options
def agents_exec(
    command: tuple[str, ...],
    nodes: tuple[str, ...],
    output: str,
    timeout: str,
    kubeconfig: str | None,
    context: str | None,
    lab: str | None,
    namespace: str | None,
    concurrency: int,
) -> None:
    """Run an agent command on every agent at once; print the outputs grouped by node.

    The command goes to the agent CLI (`cilium-dbg`, or `cilium` on agents older than 1.15) unless it names its
    own program (`cilium-health ...`). Exit 0 only if it succeeded on every agent.

    \b
    Examples:
        cilium-labs agents exec -- status --brief
        cilium-labs agents exec -- bpf tunnel list
        cilium-labs agents exec --node kind-worker -- cilium-health status -o json
    """
    timeout_s = parse_duration(timeout, option="--timeout") or DEFAULT_TIMEOUT_S
    path, spec = resolve_kubeconfig(kubeconfig, lab)
    ns = namespace or (spec.cilium_namespace if spec is not None else "kube-system")
    with Agents(Cluster(path, context), ns, concurrency=concurrency, timeout_s=timeout_s) as ag:
        by_node = ag.by_node()
        if not by_node:
            raise UsageError(f"no Cilium agent pods (k8s-app=cilium) in namespace {ns}", fix="check --namespace")
        unknown = [n for n in nodes if n not in by_node]
        if unknown:
            raise UsageError(
                f"no agent on node {', '.join(unknown)}", fix=f"agents run on: {', '.join(sorted(by_node))}"
            )
        chosen = [by_node[n] for n in sorted(nodes)] if nodes else list(by_node.values())
        results = ag.run_all(list(command), agents=chosen)
    ordered = [results[n] for n in sorted(results)]
    if output == "json":
        click.echo(json.dumps([_result_dict(r) for r in ordered], indent=2))
    else:
        _print_grouped(ordered)
    sys.exit(0 if all(r.ok for r in ordered) else 1)


def _result_dict(r: AgentResult) -> dict[str, Any]:
    return {
        "node": r.node,
        "pod": r.agent.pod,
        "argv": list(r.argv),
        "exit_code": r.exit_code if r.answered else None,
        "error": r.error,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "duration_s": round(r.duration_s, 3),
    }


def _print_grouped(results: list[AgentResult]) -> None:
    console = table_console(soft_wrap=True)
    for r in results:
        if r.ok:
            status = Text("exit 0", style="green")
        elif r.answered:
            status = Text(f"exit {r.exit_code}", style="red")
        else:
            status = Text(r.error or "no answer", style="red")
        console.print(Rule(Text.assemble((r.node, "bold"), f" ({r.agent.pod}) · ", status, f" · {r.duration_s:.2f} s")))
        if r.stdout:
            console.print(Text(r.stdout.rstrip("\n")))
        if r.stderr:
            console.print(Text(r.stderr.rstrip("\n"), style="yellow"))


__all__ = ["agents", "parse_duration", "print_report", "resolve_kubeconfig", "verify"]
