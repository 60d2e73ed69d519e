"""``connectivity``: packets really cross the tunnels: pod to pod on every other node, on the same node, through
the Service, through a NodePort, from the host, for each IP family, plus the MTU probe Cilium's own test lacks.

The test workload (``_workload``) is an ``agnhost netexec`` echo server on every schedulable node, an agnhost client
pod and a host-network client on every node, and a NodePort Service. From every client:

* ``pod-to-pod``: ``GET /hostname`` of every echo pod on every *other* node must answer that pod's name (the tunnel);
* ``pod-to-pod-same-node``: the same to the echo pod on the client's own node;
* ``pod-to-service``: the Service's ClusterIP answers (three tries, so a dead backend is likely hit);
* ``pod-to-service-dns``: the Service by name, when the cluster has a ``kube-dns`` Service;
* ``node-to-nodeport`` and ``host-to-pod``: from the host-network client, every node's NodePort and every echo pod;
* ``mtu-large-response``: ``GET /echo?msg=`` of a few kilobytes across the tunnel (several full-size packets each
  way) and ``mtu-df-ping``: a don't-fragment ping of the path MTU toward the echo pod, found the way the client
  pod's kernel finds it (``ip route get``: the route's ``mtu``, else the device's). Cilium's pods have the device
  MTU on ``eth0`` and the smaller route MTU on their routes (``_probes.path_mtu``), so ``eth0``'s MTU would be
  too big to cross a tunnel. A VXLAN underlay that carries less than the nodes think passes every small probe and
  fails exactly these (cilium#14339).

The result carries a matrix (source node x destination node, per family) of the pod-to-pod probes in
``details``; every failed probe is a finding naming the pair, the address and the cause (timeout, refused, no
route, DNS...).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from ..cluster import PodExec
from ..errors import ClusterError
from . import _probes as pr
from ._workload import (
    CLIENT,
    ECHO,
    ECHO_PORT,
    HOST,
    SERVICE_PORT,
    ProbePod,
    Workload,
    WorkloadCheck,
    WorkloadError,
    schedulable_nodes,
)
from .base import Finding, Findings, Skip, register
from .context import CheckContext

NAME = "connectivity"
LARGE_BYTES = 6000
"""Echoed both ways: five or more full-size packets each direction at a 1450-byte route MTU (VXLAN, 1500 underlay)."""
SERVICE_TRIES = 3


@attrs.frozen
class ProbeResult:
    """One probe: who asked whom, where, and what came back."""

    kind: str
    family: int
    src_node: str
    src: str
    dst_node: str | None
    dst: str
    address: str
    ok: bool
    failure: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}

    def finding(self) -> Finding:
        where = f"{self.src_node} -> {self.dst_node}" if self.dst_node else f"{self.src_node} -> {self.dst}"
        return Finding(
            NAME,
            self.src_node,
            self.kind,
            f"{where} {self.address} (IPv{self.family}, from {self.src})",
            EXPECTED.get(self.kind, "an answer"),
            f"{self.failure}: {self.detail}" if self.detail else str(self.failure),
        )


EXPECTED = {
    "pod-to-pod": "HTTP 200 with the echo pod's name",
    "pod-to-pod-same-node": "HTTP 200 with the echo pod's name",
    "pod-to-service": "HTTP 200 from an echo pod, on every try",
    "pod-to-service-dns": "the Service name resolves and answers HTTP 200",
    "node-to-nodeport": "HTTP 200 from an echo pod",
    "host-to-pod": "HTTP 200 with the echo pod's name",
    "mtu-large-response": f"{LARGE_BYTES} bytes echoed back (packets of the full route MTU both ways)",
    "mtu-df-ping": "replies to don't-fragment pings of the path MTU (the pod's route MTU)",
}

Job = Callable[[], list[ProbeResult]]


class ConnectivityCheck(WorkloadCheck):
    name = NAME
    description = "pod to pod across every node pair, same node, Service, NodePort, host to pod, MTU (deploys pods)"
    default = False
    """Opt-in (``--check connectivity``): it deploys a test namespace."""

    def __init__(self, *, concurrency: int = 8, dns: bool = True, **workload: Any) -> None:
        """``workload``: the ``WorkloadCheck`` options (namespace, keep, image, ready_timeout_s)."""
        super().__init__(**workload)
        self.concurrency = concurrency
        self.dns = dns

    def run(self, ctx: CheckContext) -> list[Finding]:
        nodes = ctx.read("nodes", ctx.cluster.nodes)
        schedulable, why = schedulable_nodes(nodes)
        if len(schedulable) < 2:
            others = "; ".join(f"{n}: {w}" for n, w in sorted(why.items()))
            raise Skip(
                f"needs two schedulable nodes for cross-node probes, found {len(schedulable)}"
                + (f" ({others})" if others else "")
            )
        shared = self.workload(ctx)
        try:
            try:
                wl = shared.acquire()
            except WorkloadError as exc:
                return [
                    Finding(
                        NAME, None, "test-pods-not-ready", f"namespace {self.options.namespace}",
                        "echo, client and host-client pods Running and Ready", exc.reason,
                    )
                ]  # fmt: skip
            results, notes = self.probe(ctx, wl)
        finally:
            shared.release()
        findings = Findings(r.finding() for r in results if not r.ok)
        findings.details = details(wl, results, notes, self.options.image)
        return findings

    # -- probing ---------------------------------------------------------------------------------------------
    def families(self, ctx: CheckContext, wl: Workload) -> list[int]:
        if ctx.spec is not None:
            return list(ctx.spec.families)
        fams = {4 if ":" not in ip else 6 for p in wl.pods if p.role == CLIENT for ip in p.ips}
        return sorted(fams)

    def probe(self, ctx: CheckContext, wl: Workload) -> tuple[list[ProbeResult], list[str]]:
        runner = _Runner(ctx, wl.namespace)
        notes: list[str] = []
        dns_name = None
        if self.dns:
            if _has_cluster_dns(ctx):
                dns_name = f"{ECHO}.{wl.namespace}.svc.cluster.local"
            else:
                notes.append("no kube-dns Service in kube-system: the Service is not probed by name")
        jobs: list[Job] = []
        echo_names = {p.name for p in wl.by_role(ECHO)}
        for fam in self.families(ctx, wl):
            for client in wl.by_role(CLIENT):
                src = client.ip(fam)
                if src is None:
                    continue
                for echo in wl.by_role(ECHO):
                    dst = echo.ip(fam)
                    if dst is None:
                        continue
                    if echo.node == client.node:
                        jobs.append(_http_job(runner, "pod-to-pod-same-node", fam, client, echo, dst, echo.name))
                        continue
                    jobs.append(_http_job(runner, "pod-to-pod", fam, client, echo, dst, echo.name))
                    jobs.append(_large_job(runner, fam, client, echo, dst))
                    jobs.append(_df_ping_job(runner, fam, client, echo, dst))
                svc_ip = wl.service_ip(fam)
                if svc_ip:
                    jobs.append(_service_job(runner, "pod-to-service", fam, client, svc_ip, echo_names))
                if dns_name:
                    jobs.append(_service_job(runner, "pod-to-service-dns", fam, client, dns_name, echo_names))
            for host in wl.by_role(HOST):
                for node, ips in sorted(wl.node_ips.items()):
                    node_ip = next((ip for ip in ips if (":" in ip) == (fam == 6)), None)
                    if node_ip and wl.node_port:
                        jobs.append(_nodeport_job(runner, fam, host, node, node_ip, wl.node_port, echo_names))
                for echo in wl.by_role(ECHO):
                    dst = echo.ip(fam)
                    if dst:
                        jobs.append(_http_job(runner, "host-to-pod", fam, host, echo, dst, echo.name))
        ctx.progress(f"connectivity: {len(jobs)} probes from {len(wl.by_role(CLIENT)) + len(wl.by_role(HOST))} clients")
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="probe") as pool:
            out = [r for batch in pool.map(lambda job: job(), jobs) for r in batch]
        return out, notes


class _Runner:
    """Exec into the workload's pods, with the API's transient failures retried."""

    def __init__(self, ctx: CheckContext, namespace: str) -> None:
        self.ctx = ctx
        self.namespace = namespace

    def exec(self, pod: ProbePod, argv: list[str], timeout: float = 30.0) -> PodExec:
        from ..cilium.agents import with_retries

        try:
            return with_retries(
                lambda: self.ctx.cluster.exec(self.namespace, pod.name, pod.container, argv, timeout=timeout),
                what=f"exec in {pod.name}",
            )
        except ClusterError as exc:
            return PodExec("", exc.message, -1, exc.message)


def _http_job(runner: _Runner, kind: str, fam: int, src: ProbePod, dst: ProbePod, address: str, expect: str) -> Job:
    def job() -> list[ProbeResult]:
        res = runner.exec(src, pr.http_argv(pr.url(address, ECHO_PORT, "/hostname")))
        out = pr.classify_http(res, expect_body=expect)
        return [ProbeResult(kind, fam, src.node, src.name, dst.node, dst.name, address, out.ok, out.failure,
                            out.detail)]  # fmt: skip

    return job


def _large_job(runner: _Runner, fam: int, src: ProbePod, dst: ProbePod, address: str) -> Job:
    def job() -> list[ProbeResult]:
        msg = "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(LARGE_BYTES))  # not crypto
        res = runner.exec(src, pr.http_argv(pr.url(address, ECHO_PORT, f"/echo?msg={msg}"), max_time_s=10.0))
        out = pr.classify_http(res, expect_body=msg)
        return [ProbeResult("mtu-large-response", fam, src.node, src.name, dst.node, dst.name, address, out.ok,
                            out.failure, out.detail)]  # fmt: skip

    return job


def _df_ping_job(runner: _Runner, fam: int, src: ProbePod, dst: ProbePod, address: str) -> Job:
    def job() -> list[ProbeResult]:
        path = pr.path_mtu(lambda argv: runner.exec(src, argv), address)
        if path.mtu is None:
            return [ProbeResult("mtu-df-ping", fam, src.node, src.name, dst.node, dst.name, address, False,
                                path.failure, path.how)]  # fmt: skip
        mtu = path.mtu
        size = pr.icmp_payload(mtu, fam)
        res = runner.exec(src, pr.ping_argv(address, size=size, dont_fragment=True, count=2))
        note = f"{size}-byte payload, {mtu}-byte packets with DF; {path.how}"
        if pr.ping_unsupported_df(res):  # busybox ping: a packet of the full MTU leaves whole anyway
            res = runner.exec(src, pr.ping_argv(address, size=size, count=2))
            note = f"{size}-byte payload, {mtu}-byte packets (busybox ping: no DF flag); {path.how}"
        out = pr.classify_ping(res)
        detail = f"{note}: {out.detail}" if out.detail else note
        return [ProbeResult("mtu-df-ping", fam, src.node, src.name, dst.node, dst.name, address, out.ok, out.failure,
                            detail)]  # fmt: skip

    return job


def _service_job(runner: _Runner, kind: str, fam: int, src: ProbePod, address: str, names: set[str]) -> Job:
    def job() -> list[ProbeResult]:
        seen: list[str] = []
        for _ in range(SERVICE_TRIES):
            argv = pr.http_argv(pr.url(address, SERVICE_PORT, "/hostname"))
            if kind == "pod-to-service-dns":
                argv.insert(1, "-4" if fam == 4 else "-6")
            out = pr.classify_http(runner.exec(src, argv))
            if not out.ok:
                return [ProbeResult(kind, fam, src.node, src.name, None, f"service {ECHO}", address, False,
                                    out.failure, out.detail)]  # fmt: skip
            if out.body.strip() not in names:
                return [ProbeResult(kind, fam, src.node, src.name, None, f"service {ECHO}", address, False,
                                    pr.WRONG_ANSWER, f"answered {out.body.strip()[:60]!r}, no echo pod")]  # fmt: skip
            seen.append(out.body.strip())
        return [ProbeResult(kind, fam, src.node, src.name, None, f"service {ECHO}", address, True, None,
                            f"answered by {', '.join(sorted(set(seen)))}")]  # fmt: skip

    return job


def _nodeport_job(runner: _Runner, fam: int, src: ProbePod, node: str, node_ip: str, port: int, names: set[str]) -> Job:
    def job() -> list[ProbeResult]:
        out = pr.classify_http(runner.exec(src, pr.http_argv(pr.url(node_ip, port, "/hostname"))))
        if out.ok and out.body.strip() not in names:
            out = pr.Outcome(False, pr.WRONG_ANSWER, f"answered {out.body.strip()[:60]!r}, no echo pod")
        return [ProbeResult("node-to-nodeport", fam, src.node, src.name, node, f"NodePort {port} on {node}",
                            f"{node_ip}:{port}", out.ok, out.failure, out.detail)]  # fmt: skip

    return job


def _has_cluster_dns(ctx: CheckContext) -> bool:
    try:
        return any(s.metadata.namespace == "kube-system" and s.metadata.name == "kube-dns" for s in ctx.services())
    except ClusterError:
        return False


def details(wl: Workload, results: list[ProbeResult], notes: list[str], image: str) -> dict[str, Any]:
    """The report's view: a pod-to-pod matrix per family (source node -> destination node -> ok/failure)."""
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    for r in results:
        if r.kind not in ("pod-to-pod", "pod-to-pod-same-node") or r.dst_node is None:
            continue
        cell = matrix.setdefault(f"ipv{r.family}", {}).setdefault(r.src_node, {})
        cell[r.dst_node] = "ok" if r.ok else str(r.failure)
    mtu_failures: dict[tuple[int, str, str], list[str]] = {}
    for r in results:
        if r.kind.startswith("mtu-") and r.dst_node is not None:
            failed = mtu_failures.setdefault((r.family, r.src_node, r.dst_node), [])
            if not r.ok:
                failed.append(f"{r.kind}: {r.failure}")
    mtu: dict[str, dict[str, dict[str, str]]] = {}
    for (fam, src, dst), failed in sorted(mtu_failures.items()):
        mtu.setdefault(f"ipv{fam}", {}).setdefault(src, {})[dst] = "; ".join(failed) or "ok"
    return {
        "namespace": wl.namespace,
        "image": image,
        "schedulable_nodes": list(wl.schedulable),
        "matrix": matrix,
        "mtu_matrix": mtu,
        "probes": [r.to_dict() for r in results],
        "passed": sum(1 for r in results if r.ok),
        "failed": sum(1 for r in results if not r.ok),
        "notes": notes,
    }


def format_matrix(details: dict[str, Any]) -> list[str]:
    """The pod-to-pod matrix as text lines (one block per family), for a report's table view."""
    lines: list[str] = []
    for fam, rows in sorted((details.get("matrix") or {}).items()):
        dsts = sorted({d for row in rows.values() for d in row})
        width = max([len(s) for s in (*rows, *dsts)] + [4])
        lines.append(f"{fam}: source \\ destination")
        lines.append(" " * (width + 2) + "  ".join(d.ljust(width) for d in dsts))
        for src in sorted(rows):
            cells = [rows[src].get(d, "-").ljust(width) for d in dsts]
            lines.append(src.ljust(width + 2) + "  ".join(cells))
    return lines


CHECK = ConnectivityCheck()
register(CHECK)

