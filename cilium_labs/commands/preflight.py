"""``cilium-labs preflight``: is the tunnel port open between every pair of a lab's nodes?

Builds a temporary VXLAN link (and Geneve, when the lab uses it or ``--protocol geneve`` asks) between each pair
of nodes through the backend's node access, pings across, removes it, and prints each blocked pair with the
firewall rule that would open it. Exit 0 when every pair passes, 1 when one is blocked.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .._console import table_console
from ..errors import UsageError


@click.command("preflight")
@click.argument("lab", required=False)
@click.option("--name", "name_opt", help="The lab (same as the LAB argument).")
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    type=click.Choice(["vxlan", "geneve"]),
    help="Tunnel protocol(s) to probe (default: vxlan, plus geneve when the lab uses it).",
)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where lab state lives (default: ~/.cilium-labs).")
def command(
    lab: str | None, name_opt: str | None, protocols: tuple[str, ...], output: str, state_dir: str | None
) -> None:
    """Probe the tunnel port between every pair of a lab's nodes.

    \b
    Examples:
        cilium-labs preflight mylab
        cilium-labs preflight mylab --protocol vxlan --protocol geneve -o json
    """
    from ..checks.preflight import run_preflight
    from ..lab import Lab

    name = lab or name_opt
    if not name:
        raise UsageError("which lab?", fix="give its name: cilium-labs preflight NAME")
    err = Console(stderr=True, highlight=False)
    opened = Lab.open(name, state_dir=state_dir, progress=lambda m: err.print(f"[dim]›[/] {m}") if output == "table"
                      else None)  # fmt: skip
    report = run_preflight(opened.spec, opened.backend, protocols=list(protocols) or None, progress=opened.progress)
    if output == "json":
        click.echo(report.to_json())
    else:
        render(report.checks[0].details.get("pairs", []), table_console())
    sys.exit(0 if report.ok else 1)


def render(pairs: list[dict[str, Any]], console: Console) -> None:
    """One row per node pair and protocol; the rules to open blocked directions under the table."""
    table = Table(title="tunnel pre-flight")
    for col in ("nodes", "protocol", "status", "detail"):
        table.add_column(col)
    colour = {"ok": "green", "blocked": "red", "error": "red", "unsupported": "yellow", "in-use": "yellow"}
    for p in pairs:
        status = str(p["status"])
        table.add_row(
            f"{p['a']} ({p['a_ip']}) <-> {p['b']} ({p['b_ip']})",
            f"{p['protocol']}/{p['port']}",
            f"[{colour.get(status, 'white')}]{status}[/]",
            str(p.get("detail", "")),
        )
    console.print(table)
    rules = [r for p in pairs for r in p.get("rules", [])]
    if rules:
        console.print("[bold]To open the blocked directions:[/]")
        for rule in rules:
            console.print(f"  {rule}", markup=False, highlight=False, soft_wrap=True)  # keep it copy-pastable
