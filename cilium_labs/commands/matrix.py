"""``cilium-labs matrix``: one command for versions x tunnel protocols x IP families (x backends).

Each axis flag takes a comma-separated list; every combination is a cell, each cell its own lab run with
``run``'s lifecycle, ``--parallel`` at a time; one table at the end (or ``-o json``/``-o junit``). Exit 0 only if
every cell passed, 1 otherwise, 130 when Ctrl-C stopped it (the running cells are torn down first, and the table
lists the cells not run).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from .._console import table_console
from ..errors import UsageError
from ..lab import KEEP_CHOICES

_OUTPUTS = ("table", "json", "junit")
_AXIS_FLAGS = {
    "backends": "backend",
    "cilium_versions": "cilium_version",
    "tunnel_protocols": "tunnel_protocol",
    "ip_families": "ip_family",
    "kpr": "kube_proxy_replacement",
}


def _axis_option(flag: str, dest: str, example: str) -> Any:
    return click.option(flag, dest, metavar="LIST", help=f"Comma-separated values of this axis, e.g. {example}.")


@click.command("matrix")
@click.option("--file", "matrix_file", type=click.Path(dir_okay=False),
              help="Matrix file: axes, exclude, extra (per-cell values or faults), run options.")  # fmt: skip
@_axis_option("--backend", "backends", "sim or sim,kind")
@_axis_option("--cilium-version", "cilium_versions", "1.16.19,1.18.12,1.20.0")
@_axis_option("--tunnel-protocol", "tunnel_protocols", "vxlan,geneve")
@_axis_option("--ip-family", "ip_families", "ipv4,dual")
@click.option("--kube-proxy-replacement", "kpr", metavar="true|false|both", help="Kube-proxy replacement axis.")
@click.option("--axis", "more_axes", multiple=True, metavar="FIELD=V1,V2",
              help="Any other spec field as an axis (repeatable), e.g. --axis k8s-version=1.33.1,1.34.0.")  # fmt: skip
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="Base lab spec (lab.yaml) of every cell.")
@click.option("--name", help="Base of the cells' lab names (default: matrix): NAME-1-20-0-vxlan-ipv4 ...")
@click.option("--control-planes", type=int, help="Control-plane nodes per cell.")
@click.option("--workers", type=int, help="Worker nodes per cell.")
@click.option("--k8s-version", help="Kubernetes version of every cell.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help="Extra Helm value for every cell.")
@click.option("--fault", "faults", multiple=True, help="A simulator fault in every cell (per cell: --file extra).")
@click.option("--datapath", type=click.Choice(["api", "netns"]), help="Simulator datapath (sim backend).")
@click.option("--exec-latency", type=float, help="Simulated exec latency in ms (sim backend).")
@click.option("--gcp-project", help="GCP project (gcp backend).")
@click.option("--check", "checks", help="Comma-separated checks (default: every check each cell's backend can run).")
@click.option("--wait", default=None, help="Let each cell's checks converge for up to this long (default: run's).")
@click.option("--parallel", type=click.IntRange(1, 256), default=None,
              help="Cells at once (default: per backend, from this machine's cores and memory, gcp's quota).")
@click.option("--keep", type=click.Choice(list(KEEP_CHOICES)), default=None,
              help="Keep cells' labs: always, never (default), on-failure (only the cells that failed).")
@click.option("--fail-fast", is_flag=True, default=None, help="Stop at the first cell that fails (cancel the rest).")
@click.option("--strict", is_flag=True, default=None, help="Warnings fail a cell too (as run --strict).")
@click.option("-o", "--output", type=click.Choice(_OUTPUTS), default="table", show_default=True)
@click.option("--junit-file", type=click.Path(dir_okay=False), help="Also write the JUnit XML here.")
@click.option("--artifacts", type=click.Path(file_okay=False), help="Logs of failed cells go to ARTIFACTS/<cell>.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (default XDG state).")
@click.pass_context
def command(ctx: click.Context, matrix_file: str | None, more_axes: tuple[str, ...], checks: str | None,
            wait: str | None, parallel: int | None, keep: str | None, fail_fast: bool | None, strict: bool | None,
            output: str, junit_file: str | None, artifacts: str | None, **opts: Any) -> None:  # fmt: skip
    """Run a lab per combination of the axes and print one table: rows the cells, columns the checks.

    Exit 0 only if every cell passed. A combination the spec or the backend cannot do is shown as skipped with
    the reason; a failing cell does not stop the others (unless --fail-fast); Ctrl-C tears down the running
    cells (respecting --keep) and lists the ones not run.

    \b
    Examples:
        cilium-labs matrix --backend sim --cilium-version 1.16.19,1.18.12,1.20.0 \\
            --tunnel-protocol vxlan,geneve --ip-family ipv4,dual --parallel 2
        cilium-labs matrix --file matrix.yaml --keep on-failure -o junit > matrix.xml
    """
    from .. import matrix as matrix_mod
    from .verify import parse_duration

    axes = _axes(opts, more_axes)
    if not axes and not matrix_file:
        raise UsageError("no axes: nothing to multiply",
                         fix="give lists, e.g. --cilium-version 1.18.12,1.20.0 --tunnel-protocol vxlan,geneve, "
                             "or --file matrix.yaml")  # fmt: skip
    mspec = matrix_mod.prepare(matrix_file) if matrix_file else None
    base = _base_spec(opts, mspec.base if mspec is not None else None)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    verbose = (ctx.find_root().obj or {}).get("verbose", 0)

    def progress(message: str) -> None:
        err.print(Text.assemble(("› ", "dim"), message))

    def cell_output(cell: Any, line: str) -> None:
        err.print(Text.assemble((f"  {cell.name}: ", "dim"), line))

    try:
        result = matrix_mod.matrix(
            mspec,
            base=base,
            axes=axes or None,
            name=opts.get("name"),
            checks=[c.strip() for c in checks.split(",") if c.strip()] if checks else None,
            wait_s=parse_duration(wait) or 0.0 if wait is not None else None,
            parallel=parallel,
            keep=keep,
            fail_fast=fail_fast,
            strict=strict,
            state_dir=opts.get("state_dir"),
            artifacts_dir=artifacts,
            progress=progress,
            cell_output=cell_output if verbose else None,
        )
        code = 0 if result.ok else 1
    except matrix_mod.MatrixInterrupted as stop:
        result, code = stop.result, 130
    if junit_file:
        with open(junit_file, "w") as fh:
            fh.write(result.to_junit())
    if output == "json":
        click.echo(result.to_json())
    elif output == "junit":
        click.echo(result.to_junit(), nl=False)
    else:
        from ..matrix.report import TABLE_WIDTH, render_table

        console = table_console()
        console.width = min(console.width, TABLE_WIDTH)
        render_table(result, console)
    if code == 130:
        not_run = [c.cell.name for c in result.cells if c.status == "not-run"]
        progress(f"interrupted: {len(not_run)} cell(s) not run" + (f": {', '.join(not_run)}" if not_run else ""))
    sys.exit(code)


def _axes(opts: dict[str, Any], more: tuple[str, ...]) -> dict[str, Any]:
    axes: dict[str, Any] = {}
    for dest, field in _AXIS_FLAGS.items():
        if opts.get(dest) is not None:
            axes[field] = opts[dest]
    for item in more:
        key, eq, values = item.partition("=")
        if not eq or not key.strip() or not values.strip():
            raise UsageError(f"--axis {item!r} is not FIELD=V1,V2", fix="e.g. --axis k8s-version=1.33.1,1.34.0")
        axes[key.strip()] = values
    return axes


def _base_spec(opts: dict[str, Any], file_base: Any) -> Any:
    """The spec every cell starts from: the matrix file's (or ``--spec``), the single-valued flags over it,
    through ``run``'s own builder."""
    from ..cli import build_spec

    base_opts = {k: v for k, v in opts.items() if k not in _AXIS_FLAGS and k != "name"}
    return build_spec(base_opts, base=None if opts.get("spec_file") else file_base)


__all__ = ["command"]
