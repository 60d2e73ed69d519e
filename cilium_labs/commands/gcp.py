"""``cilium-labs gc --backend gcp --project P [--yes]``: list labs past their expiry and delete them.

Labs are found in the cloud by their ``cilium-labs`` label (see ``cilium_labs.backends.gcp_gc`` for why not
from local state), so gc also finds labs created on another machine. Nothing is deleted without a "yes": on a
terminal gc asks; in a script it needs ``--yes`` (without it, and without a terminal, it lists and exits 1 so a
forgotten lab cannot pass unnoticed). ``--dry-run`` only lists.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..backends import gcp_gc
from ..errors import BackendError, CiliumLabsError, UsageError
from ..state import StateStore, state_root


def _say(message: str) -> None:
    click.echo(f"› {message}", err=True)


def _interactive() -> bool:
    """Whether someone can answer a question (a terminal on stdin)."""
    return sys.stdin.isatty()


def _fmt_time(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "no expires label"


def _forget(store: StateStore, name: str, project: str) -> None:
    """Drop the local record of a deleted lab, if it is this GCP lab (a kind lab may share the name)."""
    if not store.exists(name):
        return
    try:
        state = store.load(name)
    except CiliumLabsError:
        return
    if state.backend == "gcp" and (state.spec.get("gcp") or {}).get("project") == project:
        store.remove(name)


@click.command("gc")
@click.option("--backend", type=click.Choice(["gcp"]), default="gcp", show_default=True, help="Where to look.")
@click.option("--project", required=True, help="GCP project ID to search for labs.")
@click.option("--yes", is_flag=True, help="Delete without asking (for scripts).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State root holding local Terraform states (default: $CILIUM_LABS_STATE_DIR or ~/.local/state/cilium-labs).",
)
def gc(backend: str, project: str, yes: bool, dry_run: bool, state_dir: Path | None) -> None:
    """Delete GCP labs whose 'expires' label is in the past."""
    root = state_root(state_dir)
    now = time.time()
    labs = gcp_gc.list_labs(project)
    local = gcp_gc.local_workdirs(root)
    if not labs:
        click.echo(f"no cilium-labs labs in project {project}")
        return
    expired = [lab for lab in labs if lab.expired(now)]
    for lab in labs:
        if lab.expired(now):
            state = "EXPIRED"
        elif lab.expires_at is None:
            state = "unknown expiry, kept"
        else:
            state = f"expires in {(lab.expires_at - now) / 3600:.1f} h"
        how = "terraform state here" if (lab.name, project) in local else "no local state: gcloud"
        names = ", ".join(i.name for i in lab.instances)
        click.echo(f"{lab.name}: {state} ({_fmt_time(lab.expires_at)}); {len(lab.instances)} VMs [{names}]; {how}")
    if not expired:
        click.echo("nothing has expired")
        return
    if dry_run:
        click.echo(f"dry run: would delete {len(expired)} lab(s): {', '.join(lab.name for lab in expired)}")
        return
    if not yes:
        if not _interactive():
            raise UsageError(
                f"{len(expired)} expired lab(s) found and not deleted",
                fix="pass --yes to delete them without a terminal (or --dry-run to only list)",
            )
        click.confirm(f"delete {len(expired)} expired lab(s) with everything in them?", abort=True)
    store = StateStore(root)
    failed = []
    for lab in expired:
        try:
            how = gcp_gc.reap(lab, state_root=root, progress=_say)
        except BackendError as exc:
            failed.append(f"{lab.name}: {exc.message}")
            continue
        _forget(store, lab.name, project)
        click.echo(f"{lab.name}: deleted ({how})")
    if failed:
        raise BackendError(f"{len(failed)} lab(s) not fully deleted: " + "; ".join(failed), fix="re-run gc")


command = gc
"""Registered by ``cilium_labs.cli`` under its own name, ``gc``."""

__all__ = ["command", "gc"]
