"""``cilium-labs parse {status,health,tunnel-list,ipcache,service-list} [FILE|-] -o json|table``.

Reads an agent output as someone saved or pasted it, and prints what it says in the normalized shape the checks
use (JSON) or as a table. It is the command-line face of :mod:`cilium_labs.cilium.parse`: useful on its own to
compare two agents' views, and the quickest way to see why a paste does not parse. A paste that is not the
claimed output raises :class:`~cilium_labs.errors.ParseError`, which the main CLI turns into one line and exit 2.
Input is bounded (``cilium_labs._files.MAX_INPUT_BYTES``, 16 MiB); binary input is refused at its first chunk, and
empty input is refused the same way by every subcommand (an empty ``bpf ipcache list`` prints nothing on stdout:
Cilium says ``No entries found.`` on stderr, which is what to give it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from .._files import InputError, read_stream, require_content
from ..cilium import parse as p
from ..cilium.model import AgentStatus, HealthStatus, ServiceTable, TunnelMap
from ..errors import ParseError

_FORMATS = click.Choice(["json", "table"])
_FIX = "give the file the command's text output was saved to, or pipe the output in"


def _read(source: IO[bytes], what: str) -> str:
    """The text of ``source``: bounded, not binary, not empty (the same refusal for every subcommand)."""
    name = getattr(source, "name", None)
    name = "standard input" if name in (None, "<stdin>", 0) or not isinstance(name, str) else name
    what = f"the output of {what}"
    try:
        text = read_stream(source, name=name, what=what, fix=_FIX)
        return require_content(text, name=name, what=what, fix=_FIX + " (2>&1 keeps what Cilium said on stderr)")
    except InputError as exc:
        raise ParseError(exc.message, fix=exc.fix) from None


def _emit(result: Any, output: str, render: Callable[[Any, Console], None]) -> None:
    for warning in getattr(result, "warnings", ()):
        click.echo(f"warning: {warning}", err=True)
    if output == "json":
        click.echo(result.to_json(), nl=False)
        return
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    render(result, console)


def _source_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option("-o", "--output", type=_FORMATS, default="json", show_default=True)(func)
    return click.argument("source", type=click.File("rb"), default="-", metavar="[FILE|-]")(func)


@click.group("parse")
def command() -> None:
    """Parse a saved Cilium agent output (any version, as pasted) into normalized JSON or a table."""


@command.command("status")
@_source_options
def status_cmd(source: IO[bytes], output: str) -> None:
    """`cilium status` (text, --brief or -o json)."""
    _emit(p.parse_status(_read(source, "`cilium status`")), output, _render_status)


@command.command("health")
@_source_options
def health_cmd(source: IO[bytes], output: str) -> None:
    """`cilium-health status` (-o json, or the text form)."""
    _emit(p.parse_health(_read(source, "`cilium-health status`")), output, _render_health)


@command.command("tunnel-list")
@_source_options
def tunnel_cmd(source: IO[bytes], output: str) -> None:
    """`cilium bpf tunnel list` (text or -o json, Cilium <= 1.17)."""
    _emit(p.parse_tunnel_list(_read(source, "`cilium bpf tunnel list`")), output, _render_tunnels)


@command.command("ipcache")
@_source_options
def ipcache_cmd(source: IO[bytes], output: str) -> None:
    """`cilium bpf ipcache list` (text or -o json); JSON lists the tunnel entries only."""
    _emit(p.parse_ipcache(_read(source, "`cilium bpf ipcache list`")), output, _render_tunnels)


@command.command("service-list")
@_source_options
def services_cmd(source: IO[bytes], output: str) -> None:
    """`cilium service list` (text or -o json)."""
    _emit(p.parse_service_list(_read(source, "`cilium service list`")), output, _render_services)


# -- tables ---------------------------------------------------------------------------------------------------


def _render_status(st: AgentStatus, console: Console) -> None:
    table = Table(title=f"agent status ({st.format})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("state")
    table.add_row("healthy", "yes" if st.healthy else "[red]no[/red]")
    table.add_row("cilium", f"{_state(st.cilium)}" + (f"  {st.version}" if st.version else ""))
    if st.version_hint and st.version_hint != st.version:
        table.add_row("version (from format)", st.version_hint)
    for name, comp in st.components():
        if name != "cilium":
            table.add_row(name, _state(comp))
    ctl = st.controllers
    if ctl is not None:
        counts = f"{ctl.healthy}/{ctl.total} healthy" if ctl.total is not None else "unknown"
        failing = ", ".join(c.name for c in ctl.failing if c.failing)
        table.add_row("controllers", counts + (f"  failing: {failing}" if failing else ""))
    if st.cluster_health is not None:
        table.add_row("cluster health", f"{st.cluster_health.reachable}/{st.cluster_health.total} reachable")
    if st.routing is not None:
        proto = f" [{st.routing.protocol}]" if st.routing.protocol else ""
        table.add_row("routing", f"{st.routing.mode}{proto}")
    if st.kube_proxy_replacement:
        table.add_row("kube-proxy replacement", st.kube_proxy_replacement)
    for problem in st.problems:
        table.add_row("problem", f"[red]{problem}[/red]")
    console.print(table)


def _state(comp: Any) -> str:
    if comp is None:
        return "-"
    text = comp.state or "?"
    return f"[red]{text}[/red]" if comp.bad else text


def _render_health(hs: HealthStatus, console: Console) -> None:
    table = Table(title=f"cilium-health: {hs.reachable}/{len(hs.nodes)} nodes reachable")
    for col in ("node", "host", "endpoint", "reachable", "problems"):
        table.add_column(col)
    for n in hs.nodes:
        name = n.name + (" (local)" if n.local else "")
        table.add_row(
            name,
            n.host.address if n.host else "-",
            n.endpoint.address if n.endpoint else "-",
            "yes" if n.reachable else "[red]no[/red]",
            "; ".join(n.problems),
        )
    console.print(table)


def _render_tunnels(tm: TunnelMap, console: Console) -> None:
    ipcache = tm.source == "ipcache"
    entries = tm.tunnel_entries
    title = f"{'ipcache tunnel entries' if ipcache else 'tunnel map'}: {len(entries)}"
    if ipcache and len(tm.entries) > len(entries):
        title += f" (and {len(tm.entries) - len(entries)} local or untunnelled entries)"
    if tm.version_hint:
        title += f"  [dim]format of Cilium {tm.version_hint}[/dim]"
    table = Table(title=title)
    for col in ("prefix", "endpoint", "encrypt key", "cluster"):
        table.add_column(col)
    if ipcache:
        table.add_column("identity")
    for e in entries:
        row = [e.prefix, e.endpoint or "-", _opt(e.encrypt_key), _opt(e.cluster_id)]
        if ipcache:
            row.append(_opt(e.identity))
        table.add_row(*row)
    console.print(table)


def _render_services(tbl: ServiceTable, console: Console) -> None:
    title = f"services: {len(tbl.services)}"
    if tbl.version_hint:
        title += f"  [dim]format of Cilium {tbl.version_hint}[/dim]"
    table = Table(title=title)
    for col in ("id", "frontend", "protocol", "type", "backends"):
        table.add_column(col)
    for s in tbl.services:
        backends = "\n".join(
            b.address + (f" ({b.state})" if b.state else "") + (" (preferred)" if b.preferred else "")
            for b in s.backends
        )
        table.add_row(
            _opt(s.id), s.frontend, s.protocol or "-", (s.type or "-") + (" (remote)" if s.remote else ""), backends
        )
    console.print(table)


def _opt(value: object) -> str:
    return "-" if value is None else str(value)
