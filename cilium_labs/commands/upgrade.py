"""``cilium-labs upgrade``: upgrade (or downgrade, or restart) Cilium on a lab and measure what the traffic lost.

Exit 0 when both verifications passed, no long-lived connection broke and no pair went longer than ``--max-gap``
without answers; 1 otherwise; 2 for a usage mistake; 130 on Ctrl-C (the probes stop, Cilium is left as it is,
and the version each agent runs is printed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import click
from rich.console import Console
from rich.text import Text

from .._console import table_console
from .._signals import sigterm_as_interrupt
from ..errors import UsageError
from ..state import StateStore
from .verify import parse_duration

_OUTPUTS = ("table", "json", "junit")


def duration(text: str, option: str) -> float:
    """``"100ms"``, ``"1.5s"``, ``"2m"`` -> seconds (more than 0)."""
    raw = text.strip().lower()
    seconds: float | None
    if raw.endswith("ms") and raw[:-2].replace(".", "", 1).isdigit():
        seconds = float(raw[:-2]) / 1000
    else:
        seconds = parse_duration(raw, option=option)
    if not seconds or seconds <= 0:
        raise UsageError(f"{option} {text!r} is not a duration above zero", fix=f"e.g. {option} 250ms or 1s")
    return seconds


@click.command("upgrade")
@click.argument("lab_name", metavar="[NAME]", required=False)
@click.option("--lab", "lab_option", help="The lab to upgrade (as `cilium-labs list` names it).")
@click.option("--cilium-version", "version", required=True,
              help="The version to go to: newer upgrades, older downgrades, the same restarts the agents in place.")
@click.option("--max-gap", default="1s", show_default=True,
              help="The longest any node pair may go without answers before the upgrade fails.")
@click.option("--probe-interval", default="100ms", show_default=True, help="How often every pair is probed.")
@click.option("--probe-timeout", default="800ms", show_default=True,
              help="A probe not answered within this failed (keep it under 1s, the kernel's SYN resend time).")
@click.option("--settle", default="5s", show_default=True, help="How long to keep probing after the rollout.")
@click.option("--timeout", "timeout", default="10m", show_default=True, help="For the install step and rollout.")
@click.option("-o", "--output", type=click.Choice(_OUTPUTS), default="table", show_default=True,
              help="Report format.")
@click.option("--junit-file", type=click.Path(dir_okay=False), help="Also write the JUnit XML report here.")
@click.option("--json-file", type=click.Path(dir_okay=False), help="Also write the JSON report here.")
@click.option("--keep-workload", is_flag=True, help="Leave the test namespace (cilium-labs-upgrade) afterwards.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (default XDG state).")
def command(lab_name: str | None, lab_option: str | None, version: str, max_gap: str, probe_interval: str,
            probe_timeout: str, settle: str, timeout: str, output: str, junit_file: str | None,
            json_file: str | None, keep_workload: bool, state_dir: str | None) -> None:
    """Upgrade (or downgrade) Cilium on a lab while every node pair is probed, and report the disruption.

    Before: a verification. During: from a client pod on every node, every 100 ms, a fresh TCP connection and
    request to the echo pod of every node, the same through a Service per echo pod, and one long-lived
    connection per pair exchanging a message each interval; meanwhile the lab's installer upgrades Cilium and
    the agents restart. After: a verification on the new version. The report gives, per pair and kind, probes
    sent and failed and the longest gap, when it began against each agent's restart, and the rollout's timeline.

    \b
    Examples:
        cilium-labs upgrade --lab mylab --cilium-version 1.20.0
        cilium-labs upgrade --lab mylab --cilium-version 1.18.12 --max-gap 250ms -o json > upgrade.json
        cilium-labs upgrade --lab mylab --cilium-version 1.20.0 -o junit > upgrade.xml
    """
    from ..lab import Lab
    from ..upgrade import UpgradeOptions

    name = lab_option or lab_name
    if not name:
        raise UsageError("which lab? pass --lab NAME", fix="see `cilium-labs list`")
    if lab_option and lab_name and lab_option != lab_name:
        raise UsageError(f"two labs named: {lab_name} and --lab {lab_option}", fix="name one")
    options = UpgradeOptions(
        max_gap_s=duration(max_gap, "--max-gap"),
        probe_interval_s=duration(probe_interval, "--probe-interval"),
        probe_timeout_s=duration(probe_timeout, "--probe-timeout"),
        settle_s=duration(settle, "--settle") if settle.strip() not in ("0", "0s") else 0.0,
        timeout_s=duration(timeout, "--timeout"),
        keep_workload=keep_workload,
    )
    options.check()
    store = StateStore(state_dir)
    if not store.exists(name):
        raise UsageError(f"no lab named {name!r} is recorded in {store.root}", fix="see `cilium-labs list`")
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def progress(message: str) -> None:
        err.print(Text.assemble(("› ", "dim"), message))

    lab = Lab.open(name, state_dir=state_dir, progress=progress)
    with sigterm_as_interrupt():
        report = lab.upgrade(version, **attrs.asdict(options))
    if junit_file:
        Path(junit_file).write_text(report.to_junit())
    if json_file:
        Path(json_file).write_text(report.to_json() + "\n")
    if output == "json":
        click.echo(report.to_json())
    elif output == "junit":
        click.echo(report.to_junit(), nl=False)
    else:
        report.render_table(table_console())
    sys.exit(0 if report.ok else 1)



__all__ = ["command", "duration"]
