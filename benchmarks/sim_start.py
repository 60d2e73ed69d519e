"""How fast a large simulated cluster starts and serves exec to every agent at once.

    python benchmarks/sim_start.py --nodes 200 [--exec-latency 150] [--concurrency 64] [--baseline-sample 20]

Starts ``cilium-labs sim serve`` as its own process (as the ``sim`` backend does), then prints:
- start: seconds from spawning the server to an API that answers with every agent ready;
- exec: seconds to run ``cilium-dbg status -o json`` in every agent concurrently (a thread pool of the real
  ``kubernetes`` client, as the checks do), next to a sequential baseline (a sample of agents one after the
  other, scaled to all of them), and the speed-up ratio.
Numbers only: nothing is asserted, timings depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from cilium_labs.cluster import Cluster

ARGV = ["cilium-dbg", "status", "-o", "json"]


def start_server(tmp: Path, nodes: int, version: str, latency_ms: float) -> tuple[subprocess.Popen[bytes], float]:
    kc, state = tmp / "kubeconfig", tmp / "state.json"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cilium_labs.sim",
            "serve",
            "--nodes",
            str(nodes),
            "--cilium-version",
            version,
            "--exec-latency",
            f"{latency_ms:g}",
            "--ready-delay",
            "0",
            "--kubeconfig-out",
            str(kc),
            "--state-out",
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    while not state.exists():
        if proc.poll() is not None:
            raise SystemExit(f"sim serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.02)
    while not all(n["agentReady"] for n in _sim_state(kc)["nodes"]):
        time.sleep(0.05)
    return proc, time.monotonic() - t0


def _sim_state(kubeconfig: Path) -> dict[str, Any]:
    """The simulator's admin view, read without the kubernetes client (whose first call costs seconds of model
    set-up that would be charged to the server)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, token = doc["clusters"][0]["cluster"], doc["users"][0]["user"]["token"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    req = urllib.request.Request(cluster["server"] + "/sim/v1/state", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--cilium-version", default="1.16.19")
    ap.add_argument("--exec-latency", type=float, default=150.0, help="simulated ms per exec (default 150)")
    ap.add_argument("--concurrency", type=int, default=64, help="client threads (default 64)")
    ap.add_argument("--baseline-sample", type=int, default=20, help="agents exec'd one by one for the baseline")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        proc, start_s = start_server(Path(tmp), args.nodes, args.cilium_version, args.exec_latency)
        try:
            cluster = Cluster(Path(tmp) / "kubeconfig")
            pods = [p.metadata.name for p in cluster.pods("kube-system", "k8s-app=cilium")]
            cluster.exec("kube-system", pods[0], "cilium-agent", ARGV)  # warm the client up

            sample = pods[: args.baseline_sample]
            t0 = time.monotonic()
            for pod in sample:
                cluster.exec("kube-system", pod, "cilium-agent", ARGV)
            per_exec = (time.monotonic() - t0) / len(sample)
            sequential = per_exec * len(pods)

            t0 = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(lambda p: cluster.exec("kube-system", p, "cilium-agent", ARGV), pods))
            concurrent = time.monotonic() - t0
            ok = sum(1 for r in results if r.exit_code == 0 and json.loads(r.stdout)["cilium"]["state"] == "Ok")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    print(f"nodes:            {args.nodes} (Cilium {args.cilium_version}, exec latency {args.exec_latency:g} ms)")
    print(f"start:            {start_s:.2f} s (spawn to API answering with every agent ready)")
    print(
        f"exec sequential:  {sequential:.2f} s ({per_exec * 1000:.0f} ms each, {len(sample)} measured, "
        f"scaled to {len(pods)})"
    )
    print(f"exec concurrent:  {concurrent:.2f} s ({args.concurrency} threads, {ok}/{len(pods)} answered Ok)")
    print(f"speed-up:         {sequential / concurrent:.1f}x")


if __name__ == "__main__":
    main()
