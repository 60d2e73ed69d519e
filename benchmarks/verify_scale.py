"""How long the full ``verify`` takes on an N-node cluster, in parallel and the recipe's way.

    python benchmarks/verify_scale.py --nodes 100

starts a simulated N-node cluster in a separate process (so the API server and the verifier do not share one
interpreter's lock, as a real cluster and a laptop would not), with Cilium installed, 500 Services backed by a
Deployment, and the simulator's default exec latency (a round trip plus the agent's own work). Every agent then
has N-1 tunnel peers per IP family and 500 Services' frontends. It runs the full verify (health, tunnels,
services) twice against it:

- parallel: ``run_checks(concurrency=16)``, the way ``cilium-labs verify`` does it;
- sequential: the recipe's way, one agent at a time and one command at a time (``concurrency=1``: the same
  commands and comparisons, with never more than one exec in flight).

Before either run, every kind of object verify reads is read once, so neither run is charged for the
``kubernetes`` client loading its model classes (see ``_warm_up``); nothing an agent prints is fetched ahead.

The last line is ``verify N=<n>: parallel <a> s, sequential <b> s, speedup <b/a>x``. Timings are printed, never
asserted: they depend on the machine (which should be otherwise idle: check ``uptime``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

READY = "SIM-READY"


# -- the simulated cluster (child process) ---------------------------------------------------------------------
def _spec(args: argparse.Namespace) -> Any:
    from cilium_labs.spec import LabSpec

    return LabSpec(
        name="bench",
        backend="sim",
        control_planes=1,
        workers=min(max(args.nodes - 1, 0), 100),
        cilium_version=args.cilium_version,
        ip_family=args.ip_family,
        kube_proxy_replacement=args.kpr,
    )


def _populate(cluster: Any, services: int, replicas: int) -> None:
    """A Deployment of ``replicas`` pods and ``services`` ClusterIP Services selecting them."""
    labels = {"app": "echo"}
    cluster.create(
        "apps/deployments",
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "echo", "image": "registry.k8s.io/echoserver:1.10"}]},
                },
            },
        },
    )
    families = ["IPv4", "IPv6"] if cluster.spec.ip_family == "dual" else None
    for i in range(services):
        spec: dict[str, Any] = {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
        if families:
            spec.update({"ipFamilies": families, "ipFamilyPolicy": "RequireDualStack"})
        cluster.create(
            "services",
            "default",
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"}, "spec": spec},
        )


async def _serve(args: argparse.Namespace) -> None:
    from cilium_labs.sim.config import resolve, spec_values
    from cilium_labs.sim.model import SimCluster
    from cilium_labs.sim.server import SimServer

    spec = _spec(args)
    cluster = SimCluster(spec, nodes=args.nodes, ready_delay_s=0.0, pod_start_s=0.0, seed=1)
    cluster.install_cilium(resolve(spec_values(spec), spec.cilium_version, use_chart=False))
    _populate(cluster, args.services, args.replicas)
    with cluster.lock:
        cluster.tick()
    server = SimServer(cluster, exec_latency_ms=args.exec_latency)
    await server.start()
    server.write_kubeconfig(Path(args.kubeconfig_out))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(READY, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


# -- the measurement (parent process) ----------------------------------------------------------------------------
def _start_sim(args: argparse.Namespace, kubeconfig: Path) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--kubeconfig-out",
        str(kubeconfig),
        "--nodes",
        str(args.nodes),
        "--services",
        str(args.services),
        "--replicas",
        str(args.replicas),
        "--exec-latency",
        str(args.exec_latency),
        "--cilium-version",
        args.cilium_version,
        "--ip-family",
        args.ip_family,
    ] + (["--kpr"] if args.kpr else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        if line.strip() == READY:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"the simulated cluster did not start (exit code {proc.wait()})")


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc), for the simulator's share of the work."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(label: str, fn: Any, server_pid: int) -> tuple[float, Any]:
    cpu0, server0 = time.process_time(), _cpu_s(server_pid)
    started = time.perf_counter()
    report = fn()
    took = time.perf_counter() - started
    cpu, server = time.process_time() - cpu0, _cpu_s(server_pid) - server0
    verdict = "passed" if report.ok else f"FAILED with {len(report.findings)} findings"
    print(f"{label}: {took:.2f} s, {verdict} (CPU: verifier {cpu:.1f} s, simulator {server:.1f} s)", flush=True)
    for f in report.findings[:10]:
        print(f"  {f.check} {f.node} {f.kind} {f.object}: expected {f.expected}, found {f.found}", flush=True)
    return took, report


def _warm_up(cluster: Any) -> None:
    """Read each kind of object verify reads, once, before anything is timed.

    The ``kubernetes`` client imports and builds its model classes on first use: a second of CPU that would
    otherwise be charged to whichever run happens to come first. The reads return nothing either run can reuse
    (each verify reads everything afresh); no agent is exec'd, so no output is parsed or rendered in advance.
    """
    cluster.ping()
    cluster.pods("kube-system")
    cluster.nodes()
    cluster.cilium_nodes()
    cluster.services()
    cluster.endpoint_slices()
    cluster.config_map("kube-system", "cilium-config")
    cluster.daemon_set("kube-system", "cilium")
    cluster.deployment("kube-system", "cilium-operator")


def measure(args: argparse.Namespace) -> None:
    from cilium_labs.checks import run_checks
    from cilium_labs.cluster import Cluster

    with tempfile.TemporaryDirectory(prefix="verify-scale-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        started = time.perf_counter()
        proc = _start_sim(args, kubeconfig)
        try:
            print(
                f"simulated cluster: {args.nodes} nodes, Cilium {args.cilium_version}, {args.ip_family}, "
                f"{args.services} services, exec latency {args.exec_latency:g} ms, "
                f"started in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            cluster = Cluster(kubeconfig)
            _warm_up(cluster)
            spec = _spec(args)
            parallel, report = _timed(
                f"parallel (concurrency {args.concurrency})",
                lambda: run_checks(cluster, spec=spec, concurrency=args.concurrency),
                proc.pid,
            )
            checks = ", ".join(f"{c.name} {c.duration_s:.2f} s" for c in report.checks)
            print(f"  checks: {checks}", flush=True)
            if args.skip_sequential:
                print(f"verify N={args.nodes}: parallel {parallel:.2f} s")
                return
            sequential, _ = _timed(
                "sequential (one agent, one command at a time)",
                lambda: run_checks(cluster, spec=spec, concurrency=1),
                proc.pid,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(
        f"verify N={args.nodes}: parallel {parallel:.2f} s, sequential {sequential:.2f} s, "
        f"speedup {sequential / parallel:.1f}x"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=100, help="Nodes in the simulated cluster (default 100).")
    p.add_argument("--services", type=int, default=500, help="Services to create (default 500).")
    p.add_argument("--replicas", type=int, default=3, help="Pods behind every Service (default 3).")
    p.add_argument("--exec-latency", type=float, default=None, help="Per-exec latency in ms (the simulator's default).")
    p.add_argument("--concurrency", type=int, default=16, help="Parallel execs (default 16, as `verify`).")
    p.add_argument("--cilium-version", default=None, help="Simulated Cilium version (default: current stable).")
    p.add_argument("--ip-family", choices=["ipv4", "ipv6", "dual"], default="dual")
    p.add_argument("--kpr", action="store_true", help="Kube-proxy replacement on (NodePort frontends).")
    p.add_argument("--skip-sequential", action="store_true", help="Only the parallel run.")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kubeconfig-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.nodes < 2:
        p.error("--nodes must be at least 2 (tunnels need a peer)")
    if args.exec_latency is None:
        from cilium_labs.spec import SimOptions

        args.exec_latency = SimOptions().exec_latency_ms
    if args.cilium_version is None:
        from cilium_labs.spec import DEFAULT_CILIUM_VERSION

        args.cilium_version = DEFAULT_CILIUM_VERSION
    if args.serve:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        asyncio.run(_serve(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
