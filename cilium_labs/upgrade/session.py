"""The traffic an upgrade is measured with: the connectivity check's workload in a namespace of its own, a Service
per echo pod, and one prober per client pod running for the whole upgrade.

The workload is ``checks._workload``'s (an ``agnhost netexec`` echo pod on every schedulable node, an agnhost
client pod on every node). Probing "pod to a Service" per node pair needs a Service whose only backend is the
echo pod of one node: a Service without a selector and an EndpointSlice written here, labelled
``kubernetes.io/service-name``, which is how Cilium files a slice under its Service (cilium v1.20.0
pkg/k8s/endpoints.go ParseEndpointSliceID reads that label and no other). Nothing here knows a backend: the
Kubernetes API and pod exec are all it uses.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..checks._workload import (
    CLIENT,
    ECHO,
    ECHO_PORT,
    MANAGED_BY,
    SERVICE_PORT,
    ProbePod,
    SharedWorkload,
    Workload,
    WorkloadError,
    WorkloadOptions,
)
from ..checks.context import CheckContext
from ..cilium.agents import Agents, with_retries
from ..cluster import Cluster, PodExec
from ..errors import CiliumLabsError, ClusterError
from ..spec import LabSpec
from . import prober
from .prober import LONG_LIVED, POD, SERVICE, Output, Target

NAMESPACE = "cilium-labs-upgrade"
"""Not the connectivity check's: the verifications before and after deploy (and delete) that one."""
NODE_ANNOTATION = "cilium-labs/node"
STOP_TIMEOUT_S = 30.0

Progress = Callable[[str], None]


class ProbeError(CiliumLabsError):
    """The probes could not be set up (the workload not ready, the prober not runnable in its pods)."""


@attrs.frozen
class ProbeSettings:
    interval_s: float = 0.1
    timeout_s: float = 0.8
    break_after_s: float = 10.0
    """A long-lived exchange with no answer for this long counts as a broken connection."""


@attrs.define
class _Run:
    """One prober: its pod, its targets, the exec running it and what it left."""

    pod: ProbePod
    targets: list[Target]
    stop_file: str
    thread: threading.Thread | None = None
    result: PodExec | None = None
    error: str | None = None


class ProbeSession:
    """Deploy, probe, stop, clean up (``close``), in that order."""

    def __init__(self, cluster: Cluster, *, spec: LabSpec | None, backend: Any = None, namespace: str = NAMESPACE,
                 settings: ProbeSettings = ProbeSettings(), keep: bool = False,
                 progress: Progress = lambda _m: None, ready_timeout_s: float = 180.0) -> None:
        self.cluster = cluster
        self.spec = spec
        self.settings = settings
        self.progress = progress
        self._agents = Agents(cluster, spec.cilium_namespace if spec else "kube-system", concurrency=2)
        ctx = CheckContext(cluster, self._agents, spec=spec, backend=backend, progress=progress)
        self._shared = SharedWorkload(ctx, WorkloadOptions(namespace=namespace, keep=keep,
                                                           ready_timeout_s=ready_timeout_s))
        self.namespace = namespace
        self.workload: Workload | None = None
        self.services: dict[str, str] = {}
        """Destination node -> ClusterIP of the Service in front of its echo pod."""
        self._runs: list[_Run] = []
        self._token = secrets.token_hex(6)
        self._acquired = False

    # -- setting up ------------------------------------------------------------------------------------------
    def deploy(self) -> Workload:
        """The workload, ready, and a Service per echo pod."""
        try:
            self._acquired = True
            wl = self._shared.acquire()
        except WorkloadError as exc:
            raise ProbeError(f"the test pods did not get ready: {exc.reason}",
                             fix=f"see `kubectl -n {self.namespace} get pods -o wide`") from exc
        self.workload = wl
        family = self._family(wl)
        echoes = wl.by_role(ECHO)
        if not echoes:
            raise ProbeError("no echo pod runs: no node is schedulable", fix="untaint a node")
        for index, echo in enumerate(echoes):
            ip = echo.ip(family)
            if ip is None:
                continue
            self.services[echo.node] = self._service(f"{ECHO}-{index}", echo, ip, family)
        return wl

    def _family(self, wl: Workload) -> int:
        if self.spec is not None:
            return int(self.spec.families[0])
        first = next((p.ips[0] for p in wl.pods if p.role == ECHO and p.ips), "0.0.0.0")
        return ipaddress.ip_address(first).version

    def _service(self, name: str, echo: ProbePod, ip: str, family: int) -> str:
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "cilium-labs-upgrade"}
        svc = with_retries(lambda: self.cluster.create({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels,
                         "annotations": {NODE_ANNOTATION: echo.node}},
            "spec": {"type": "ClusterIP", "ipFamilies": [f"IPv{family}"], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": ECHO_PORT, "protocol": "TCP"}]},
        }), what=f"create service {name}")  # fmt: skip
        with_retries(lambda: self.cluster.create({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-{echo.node}"[:63].rstrip("-."), "namespace": self.namespace,
                         "labels": {**labels, "kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": f"IPv{family}",
            "ports": [{"name": "http", "port": ECHO_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": echo.node,
                           "targetRef": {"kind": "Pod", "name": echo.name, "namespace": self.namespace}}],
        }), what=f"create the endpoint slice of {name}")  # fmt: skip
        return str(svc.spec.cluster_ip)

    def targets(self) -> dict[str, list[Target]]:
        """Client node -> what its prober probes: every echo pod (and its Service), directly and long-lived."""
        wl = self.workload
        assert wl is not None
        family = self._family(wl)
        out: dict[str, list[Target]] = {}
        for client in wl.by_role(CLIENT):
            mine: list[Target] = []
            for echo in wl.by_role(ECHO):
                ip = echo.ip(family)
                if ip is None:
                    continue
                mine.append(Target(POD, echo.node, ip, ECHO_PORT, echo.name))
                if echo.node in self.services:
                    mine.append(Target(SERVICE, echo.node, self.services[echo.node], SERVICE_PORT, echo.name))
                mine.append(Target(LONG_LIVED, echo.node, ip, ECHO_PORT))
            out[client.node] = mine
        return out

    def lanes(self) -> list[tuple[str, str, str]]:
        return [(src, t.node, t.kind) for src, ts in self.targets().items() for t in ts]

    def wait_reachable(self, timeout_s: float = 120.0) -> None:
        """Probe every target briefly until each answers (new Services take a moment to reach every node's
        datapath); raise ``ProbeError`` naming what never answered."""
        deadline = time.monotonic() + timeout_s
        while True:
            silent = self._try_once()
            if not silent:
                return
            if time.monotonic() > deadline:
                raise ProbeError(f"the test pods never all answered before the upgrade: {'; '.join(silent[:6])}",
                                 fix=f"run `cilium-labs verify --check connectivity`; see namespace {self.namespace}")
            time.sleep(1.0)

    def _try_once(self) -> list[str]:
        wl = self.workload
        assert wl is not None
        clients = {c.node: c for c in wl.by_role(CLIENT)}
        results: dict[str, Output] = {}
        errors: dict[str, str] = {}

        def one(node: str, targets: list[Target]) -> None:
            argv = self._argv(targets, deadline_ms=int((time.time() + 1.0) * 1000), stop_file=self._stop_file(
                clients[node], "check"))
            res = self._exec(clients[node], argv, timeout=30.0)
            if res.exit_code != 0:
                errors[node] = _describe(res)
            results[node] = prober.parse(res.stdout.splitlines())

        workers = [threading.Thread(target=one, args=(n, ts), daemon=True) for n, ts in self.targets().items()]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        silent = [f"client on {n}: {why}" for n, why in sorted(errors.items())]
        for node, out in sorted(results.items()):
            if out.fatal:
                raise ProbeError(f"the prober cannot run in the client pod on {node}: {out.fatal}",
                                 fix="the workload image needs bash 5 (agnhost has it)")
            for t in self.targets()[node]:
                answers = [p for p in out.probes if p.kind == t.kind and p.node == t.node]
                if not answers or answers[-1].status != "ok":
                    got = answers[-1].status if answers else "nothing"
                    silent.append(f"{node} -> {t.node} {prober.KIND_NAMES[t.kind]} ({got})")
        return silent

    # -- probing ---------------------------------------------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Start one prober per client pod; each stops by itself at ``deadline`` (epoch seconds) at the latest."""
        wl = self.workload
        assert wl is not None
        clients = {c.node: c for c in wl.by_role(CLIENT)}
        for node, targets in self.targets().items():
            run = _Run(clients[node], targets, self._stop_file(clients[node], "run"))
            argv = self._argv(targets, deadline_ms=int(deadline * 1000), stop_file=run.stop_file)
            run.thread = threading.Thread(target=self._probe, args=(run, argv, deadline - time.time() + 60),
                                          name=f"prober-{node}", daemon=True)
            self._runs.append(run)
            run.thread.start()
        n = sum(len(r.targets) for r in self._runs)
        self.progress(f"probing {n} pairs and kinds from {len(self._runs)} client pods every "
                      f"{self.settings.interval_s * 1000:g} ms")

    def _probe(self, run: _Run, argv: list[str], timeout: float) -> None:
        try:
            run.result = self.cluster.exec(self.namespace, run.pod.name, run.pod.container, argv, timeout=timeout)
        except ClusterError as exc:
            run.error = exc.message

    def ended_early(self) -> list[str]:
        """Probers that are no longer running although nobody stopped them, each with why."""
        out = []
        for run in self._runs:
            if run.thread is not None and not run.thread.is_alive():
                why = run.error or (_describe(run.result) if run.result is not None else "no result")
                out.append(f"prober on {run.pod.node} ended: {why}")
        return out

    def stop(self, *, wait_s: float = STOP_TIMEOUT_S) -> tuple[dict[str, Output], float, list[str]]:
        """Stop every prober; what each printed (by client node), when they were told to stop, and problems."""
        stopped = time.time()
        stoppers = [threading.Thread(target=self._stop_one, args=(run,), daemon=True) for run in self._runs]
        for w in stoppers:
            w.start()
        for w in stoppers:
            w.join(wait_s)
        deadline = time.monotonic() + wait_s
        for run in self._runs:
            if run.thread is not None:
                run.thread.join(max(0.1, deadline - time.monotonic()))
        outputs: dict[str, Output] = {}
        problems: list[str] = []
        for run in self._runs:
            if run.thread is not None and run.thread.is_alive():
                problems.append(f"the prober on {run.pod.node} did not end within {wait_s:g}s of its stop file")
                continue
            if run.error:
                problems.append(f"the prober on {run.pod.node} could not run: {run.error}")
                continue
            res = run.result
            if res is None:
                continue
            out = prober.parse(res.stdout.splitlines())
            if res.exit_code != 0 or out.fatal:
                problems.append(f"the prober on {run.pod.node}: {out.fatal or _describe(res)}")
            if out.unreadable:
                problems.append(f"the prober on {run.pod.node} printed {out.unreadable} lines it should not have")
            outputs[run.pod.node] = out
        return outputs, stopped, problems

    def _stop_one(self, run: _Run) -> None:
        try:
            # bash, not touch: what the pods surely have is what the prober runs with (a `local` lab's exec shim
            # runs only commands it knows, cilium_labs/local/shim.py)
            argv = ["bash", "-c", ': > "$1"', "stop", run.stop_file]
            with_retries(lambda: self._checked(run.pod, argv), what="stop a prober")
        except ClusterError as exc:
            run.error = run.error or f"could not be stopped ({exc.message}); it stops at its deadline"

    def _checked(self, pod: ProbePod, argv: list[str]) -> PodExec:
        res = self.cluster.exec(self.namespace, pod.name, pod.container, argv, timeout=15.0)
        if res.exit_code == -1:
            raise ClusterError(res.reason or "the exec did not finish", status=503)
        return res

    def close(self) -> None:
        """Delete the namespace (unless kept)."""
        if self._acquired:
            self._acquired = False
            try:
                self._shared.release()
            except ClusterError as exc:
                self.progress(f"warning: could not delete namespace {self.namespace}: {exc.message}")
        self._agents.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _argv(self, targets: list[Target], *, deadline_ms: int, stop_file: str) -> list[str]:
        s = self.settings
        return prober.argv(targets, interval_ms=max(1, round(s.interval_s * 1000)),
                           timeout_ms=max(1, round(s.timeout_s * 1000)), deadline_ms=deadline_ms,
                           stop_file=stop_file, break_ms=max(1, round(s.break_after_s * 1000)))  # fmt: skip

    def _stop_file(self, pod: ProbePod, what: str) -> str:
        # pods of the simulator and of `local` share this host's /tmp: a name per run and pod
        return f"/tmp/cilium-labs-upgrade-{self._token}-{what}-{pod.name}.stop"

    def _exec(self, pod: ProbePod, argv: list[str], *, timeout: float) -> PodExec:
        try:
            return with_retries(lambda: self.cluster.exec(self.namespace, pod.name, pod.container, argv,
                                                          timeout=timeout), what=f"exec in {pod.name}")
        except ClusterError as exc:
            return PodExec("", exc.message, -1, exc.message)


def _describe(res: PodExec) -> str:
    lines = [ln for ln in (res.reason or res.stderr).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {res.exit_code}"
