"""What a lab of real agents costs, phase by phase, next to the simulator doing the same steps.

    python benchmarks/local_lab.py [--workers 2] [--cilium-version 1.19.4] [--wait 420]

Runs the same lifecycle twice through the library, on the ``sim`` backend (API-only, the baseline) and on the
``local`` backend (real kube-apiserver and real cilium-agents; root, after ``cilium-labs local build``), and
prints per phase: up (control plane and nodes), install (Helm until every agent and the operator are ready),
verify (every check the backend can run, polled until it passes: the health probes of Cilium >= 1.17 need one
probe interval to clear), down; then the local/sim ratio. Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec

PHASES = ("up", "install", "verify", "down")


def measure(backend: str, workers: int, version: str, wait_s: float, state: Path) -> dict[str, float | str]:
    spec = LabSpec(name=f"bench-{backend}", backend=backend, workers=workers, cilium_version=version)
    lab = Lab(spec, keep="always", state_dir=state)
    out: dict[str, float | str] = {}
    t0 = time.monotonic()
    lab.up()
    out["up"] = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        lab.install(timeout_s=600)
        out["install"] = time.monotonic() - t0
        t0 = time.monotonic()
        report = lab.verify(wait_s=wait_s)
        out["verify"] = time.monotonic() - t0
        out["result"] = "passed" if report.ok else "FAILED: " + "; ".join(
            f"{f.check} {f.node or ''} {f.kind} {f.object}" for f in report.errors[:6])
    finally:
        t0 = time.monotonic()
        lab.down()
        out["down"] = time.monotonic() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cilium-version", default="1.19.4")
    parser.add_argument("--wait", type=float, default=420.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cilium-labs-bench-") as tmp:
        sim = measure("sim", args.workers, args.cilium_version, args.wait, Path(tmp) / "sim")
        local = measure("local", args.workers, args.cilium_version, args.wait, Path(tmp) / "local")
    print(f"{'phase':<10}{'sim (s)':>10}{'local (s)':>12}{'local/sim':>12}")
    for phase in PHASES:
        a, b = float(sim[phase]), float(local[phase])
        print(f"{phase:<10}{a:>10.1f}{b:>12.1f}{b / a if a else float('inf'):>11.1f}x")
    total_a = sum(float(sim[p]) for p in PHASES)
    total_b = sum(float(local[p]) for p in PHASES)
    print(f"{'total':<10}{total_a:>10.1f}{total_b:>12.1f}{total_b / total_a:>11.1f}x")
    print(f"verify result: sim {sim['result']}; local {local['result']}")


if __name__ == "__main__":
    main()
