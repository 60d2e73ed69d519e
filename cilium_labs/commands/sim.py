"""``cilium-labs sim``: run a simulated cluster in the foreground (``serve``) and list the faults it can inject.

``serve`` is also what the ``sim`` backend starts in the background: it writes the kubeconfig (0600) only once
the server answers, and, with ``--state-out``, a small JSON file (pid, url, port) the backend waits for.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from ..errors import CiliumLabsError, UsageError
from ..spec import DEFAULT_CILIUM_VERSION, LabSpec
from ..spec import load as load_spec

MAX_NODES = 1000


def build_spec(spec_path: str | None, name: str | None, nodes: int | None, cilium_version: str | None,
               ip_family: str | None, routing: str | None, tunnel_protocol: str | None,
               kpr: bool | None) -> tuple[LabSpec, int | None]:
    """The lab spec for ``serve`` and the node count to simulate (None = the spec's own)."""
    base = load_spec(spec_path) if spec_path else LabSpec(backend="sim")
    changes: dict[str, Any] = {"backend": "sim"}
    if name:
        changes["name"] = name
    if cilium_version:
        changes["cilium_version"] = cilium_version
    if ip_family:
        changes["ip_family"] = ip_family
    if routing:
        changes["routing"] = routing
    if tunnel_protocol:
        changes["tunnel_protocol"] = tunnel_protocol
    if kpr is not None:
        changes["kube_proxy_replacement"] = kpr
    count: int | None = None
    if nodes is not None:
        if not 1 <= nodes <= MAX_NODES:
            raise UsageError(f"--nodes {nodes} is outside 1..{MAX_NODES}", fix="simulate 1 to 1000 nodes")
        cps = min(base.control_planes, nodes)
        changes["control_planes"] = cps
        changes["workers"] = min(nodes - cps, 100)
        count = nodes
    return base.replace(**changes), count


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    from ..sim.tls import write_private

    write_private(path, json.dumps(data, indent=2) + "\n")


async def _serve(spec: LabSpec, count: int | None, *, faults: tuple[str, ...], exec_latency_ms: float,
                 ready_delay_s: float, install: bool, values: dict[str, Any] | None, use_chart: bool,
                 kubeconfig_out: Path, state_out: Path | None, port: int, seed: int | None) -> None:
    from ..sim.config import resolve, spec_values
    from ..sim.model import SimCluster
    from ..sim.server import SimServer

    cluster = SimCluster(spec, nodes=count, ready_delay_s=ready_delay_s, pod_start_s=min(1.0, ready_delay_s),
                         seed=seed)
    cluster.set_faults(faults)
    source = "not installed"
    if install:
        vals = values if values is not None else spec_values(spec)
        loop = asyncio.get_running_loop()
        cfg = await loop.run_in_executor(None, lambda: resolve(vals, spec.cilium_version, use_chart=use_chart))
        cluster.install_cilium(cfg)
        source = cfg.source
    bridge = None
    if spec.sim.datapath == "netns":  # the real kernel datapath (root): cilium_labs.sim.datapath_bridge
        from ..sim.datapath_bridge import NetnsBridge

        bridge = NetnsBridge(cluster)
        await asyncio.get_running_loop().run_in_executor(None, bridge.start)
    server = SimServer(cluster, port=port, exec_latency_ms=exec_latency_ms)
    try:
        await server.start()
    except BaseException:
        if bridge is not None:
            bridge.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        server.write_kubeconfig(kubeconfig_out)
        if state_out is not None:
            _write_private_json(state_out, {"pid": os.getpid(), "url": server.url, "port": server.port,
                                            "kubeconfig": str(kubeconfig_out)})
        click.echo(f"simulated cluster {spec.name}: {len(cluster.nodes)} nodes, Cilium "
                   f"{spec.cilium_version if install else '-'} ({source}), API {server.url}", err=True)
        click.echo(f"kubeconfig: {kubeconfig_out}  (export KUBECONFIG={kubeconfig_out})", err=True)
        if cluster.faults:
            click.echo("faults: " + ", ".join(str(f) for f in cluster.faults), err=True)
        await stop.wait()
    finally:
        await server.stop()
        if bridge is not None:
            bridge.stop()
        if state_out is not None:
            state_out.unlink(missing_ok=True)


@click.group("sim")
def command() -> None:
    """A simulated Cilium cluster behind a real Kubernetes API on 127.0.0.1 (no Docker needed)."""


@command.command("serve")
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False), help="Lab spec YAML to simulate.")
@click.option("--name", help="Lab name (nodes are NAME-control-plane, NAME-worker, ...).")
@click.option("--nodes", type=int, help="Number of nodes (control planes first). Default: the spec's.")
@click.option("--cilium-version", help=f"Cilium version to simulate (default {DEFAULT_CILIUM_VERSION}).")
@click.option("--ip-family", type=click.Choice(["ipv4", "ipv6", "dual"]))
@click.option("--routing", type=click.Choice(["tunnel", "native"]))
@click.option("--tunnel-protocol", type=click.Choice(["vxlan", "geneve"]))
@click.option("--kube-proxy-replacement/--no-kube-proxy-replacement", "kpr", default=None)
@click.option("--fault", "faults", multiple=True, metavar="FAULT", help="Inject a fault, e.g. agent-down:NODE "
              "(repeatable; `cilium-labs sim faults` lists them).")
@click.option("--exec-latency", "exec_latency_ms", type=click.FloatRange(0, 60000), default=150.0,
              show_default=True, help="Milliseconds each exec takes.")
@click.option("--ready-delay", "ready_delay_s", type=click.FloatRange(0, 600), default=3.0, show_default=True,
              help="Seconds over which the agents become ready.")
@click.option("--no-cilium", is_flag=True, help="Start without Cilium (install it later through the backend).")
@click.option("--values", "values_path", type=click.Path(exists=True, dir_okay=False),
              help="Helm values YAML to install with (default: derived from the spec).")
@click.option("--no-chart", is_flag=True, help="Do not render the real chart even when one is found.")
@click.option("--kubeconfig-out", type=click.Path(dir_okay=False), required=True, help="Where to write the "
              "kubeconfig (mode 0600).")
@click.option("--state-out", type=click.Path(dir_okay=False), help="Write pid/url/port JSON here once serving.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (0 = any free one).")
@click.option("--seed", type=int, help="Seed for names and addresses (reproducible runs).")
def serve(spec_path: str | None, name: str | None, nodes: int | None, cilium_version: str | None,
          ip_family: str | None, routing: str | None, tunnel_protocol: str | None, kpr: bool | None,
          faults: tuple[str, ...], exec_latency_ms: float, ready_delay_s: float, no_cilium: bool,
          values_path: str | None, no_chart: bool, kubeconfig_out: str, state_out: str | None, port: int,
          seed: int | None) -> None:
    """Serve a simulated cluster in the foreground until SIGTERM or Ctrl-C."""
    from ..sim.faults import parse_faults
    from ..sim.model import node_names

    try:
        spec, count = build_spec(spec_path, name, nodes, cilium_version, ip_family, routing, tunnel_protocol, kpr)
        names = [n for n, _ in node_names(spec, count)]
        parsed = tuple(str(f) for f in parse_faults(faults, names))
        values: dict[str, Any] | None = None
        if values_path:
            loaded = _load_values(values_path)
            if not isinstance(loaded, dict):
                raise UsageError(f"{values_path} is not a mapping of Helm values", fix="check the YAML")
            values = loaded
        asyncio.run(_serve(spec, count, faults=parsed, exec_latency_ms=exec_latency_ms, ready_delay_s=ready_delay_s,
                           install=not no_cilium, values=values, use_chart=not no_chart,
                           kubeconfig_out=Path(kubeconfig_out), state_out=Path(state_out) if state_out else None,
                           port=port, seed=seed))
    except CiliumLabsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


@command.command("faults")
def faults_cmd() -> None:
    """List the faults the simulator can inject."""
    from ..sim.faults import describe

    for usage, text in describe().items():
        click.echo(f"{usage:<40} {text}")


def _load_values(path: str) -> Any:
    """A ``--values`` file: bounded, text, YAML (one line for anything else)."""
    from .._files import read_text

    fix = "give a YAML file of Helm values"
    try:
        return yaml.safe_load(read_text(path, what="Helm values (YAML)", fix=fix)) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML ({type(exc).__name__})", fix=fix) from None
