"""``cilium-labs local``: build the local backend's programs, say what is built, inject real faults.

``build`` compiles Kubernetes, etcd, KWOK, Helm and Cilium through the Go module proxy into the cache
(``$CILIUM_LABS_CACHE_DIR`` or ``~/.cache/cilium-labs``); a warm cache builds nothing. ``status`` says what is
built and what a ``--backend local`` lab still needs. ``fault`` breaks a running local lab's real parts.
"""

from __future__ import annotations

import json
import time

import click

from ..errors import UsageError


@click.group("local")
def command() -> None:
    """Real Cilium agents in network namespaces of this host (see docs/local.md).

    \b
    cilium-labs local build                    # Kubernetes, etcd, KWOK, Helm, Cilium (cold: ~25 min on 2 cores)
    cilium-labs local status                   # what is built, for which Go
    cilium-labs run --backend local --workers 2
    cilium-labs local fault --lab NAME vxlan-blocked:NODE:PEER
    """


@command.command("build")
@click.option("--cilium-version", default=None, help="Cilium release to build (default: the newest buildable).")
@click.option("--force", is_flag=True, help="Rebuild even what the cache has.")
def build_cmd(cilium_version: str | None, force: bool) -> None:
    """Build every program a local lab runs, through the Go module proxy; cached, so a second run is instant."""
    from ..local import build, components

    version = cilium_version or components.DEFAULT_CILIUM
    components.cilium(version)  # refuse an unbuildable version before any work
    start = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - start:6.0f}s] {message}", err=True)

    built = build.build_all(version, progress=progress, force=force)
    for name, b in built.items():
        click.echo(f"{name:<12} {b.component.version:<8} {b.directory}")
    click.echo(f"done in {time.monotonic() - start:.0f}s", err=True)


@command.command("status")
@click.option("--cilium-version", default=None, help="Cilium release to report on (default: the newest buildable).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def status_cmd(cilium_version: str | None, output: str) -> None:
    """What is built for the local backend, and the command that builds the rest."""
    from ..local import build, components

    version = cilium_version or components.DEFAULT_CILIUM
    gover = build.go_version()
    rows = []
    for comp in components.all_for(version):
        found = build.find(comp, gover)
        rows.append({"component": comp.name, "version": comp.version, "built": found is not None,
                     "directory": str(found.directory) if found else None, "module": comp.module})
    if output == "json":
        click.echo(json.dumps({"go": gover, "cache": str(build.local_root()), "components": rows}, indent=2))
        return
    click.echo(f"Go {gover}, cache {build.local_root()}")
    for r in rows:
        click.echo(f"  {r['component']:<12} {r['version']:<8} {'built' if r['built'] else 'not built':<10} "
                   f"{r['module']}")
    if not all(r["built"] for r in rows):
        click.echo(f"build the rest: cilium-labs local build --cilium-version {version}")


@command.command("fault")
@click.option("--lab", "lab_name", required=True, help="The local lab's name.")
@click.option("--clear", is_flag=True, help="Undo the lab's faults first (what can be undone).")
@click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (default XDG state).")
@click.argument("faults", nargs=-1)
def fault_cmd(lab_name: str, clear: bool, state_dir: str | None, faults: tuple[str, ...]) -> None:
    """Break a running local lab's real parts: agent-stop:NODE, vxlan-blocked:NODE:PEER, route-deleted:NODE:PEER,
    ciliumnode-deleted:NODE."""
    from ..backends.local import LocalBackend
    from ..lab import Lab

    if not faults and not clear:
        raise UsageError("no fault given", fix="e.g. cilium-labs local fault --lab NAME agent-stop:NODE")
    lab = Lab.open(lab_name, state_dir=state_dir)
    if not isinstance(lab.backend, LocalBackend):
        raise UsageError(f"lab {lab_name!r} is on the {lab.backend.name} backend, not local",
                         fix="faults of a sim lab are given with --fault at `cilium-labs up`")
    for applied in lab.backend.set_faults(list(faults), clear=clear):
        click.echo(f"applied {applied}")
