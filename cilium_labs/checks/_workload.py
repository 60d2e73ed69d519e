"""The test workload the traffic checks share: an echo server on every schedulable node, a client pod and a
host-network client on every node, and a NodePort Service in front of the echo servers.

``connectivity`` and ``encapsulation`` may run at the same time in one verification; they share one deployment
through the check context (``acquire``/``release``, counted), and the last one out deletes the namespace unless
the user asked to keep it. Every image is pinned: ``registry.k8s.io/e2e-test-images/agnhost:2.52``, the tag the
Kubernetes e2e suite itself uses (test/utils/image/manifest.go), which has curl, ping (busybox), nslookup and the
``netexec`` HTTP echo server.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..backends.base import LoadImage
from ..errors import CiliumLabsError, ClusterError, UsageError
from .context import CheckContext

AGNHOST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.52"
DEFAULT_NAMESPACE = "cilium-labs-test"
MANAGED_BY = "cilium-labs"
ECHO_PORT = 8080
SERVICE_PORT = 80
ROLE_LABEL = "cilium-labs/role"
ECHO, CLIENT, HOST = "echo", "client", "host-client"


@attrs.frozen
class ProbePod:
    """One pod of the workload: its role, node and addresses."""

    name: str
    role: str
    node: str
    ips: tuple[str, ...]
    container: str

    def ip(self, family: int) -> str | None:
        return next((ip for ip in self.ips if ipaddress.ip_address(ip).version == family), None)


@attrs.frozen
class Workload:
    """What was deployed and is ready."""

    namespace: str
    pods: tuple[ProbePod, ...]
    service_ips: tuple[str, ...]
    node_port: int
    node_ips: dict[str, tuple[str, ...]]
    schedulable: tuple[str, ...]

    def by_role(self, role: str) -> list[ProbePod]:
        return sorted((p for p in self.pods if p.role == role), key=lambda p: p.node)

    def on(self, role: str, node: str) -> ProbePod | None:
        return next((p for p in self.pods if p.role == role and p.node == node), None)

    def service_ip(self, family: int) -> str | None:
        return next((ip for ip in self.service_ips if ipaddress.ip_address(ip).version == family), None)


def schedulable_nodes(nodes: list[Any]) -> tuple[list[str], dict[str, str]]:
    """Nodes a pod without tolerations can land on, and why each other node cannot."""
    ok: list[str] = []
    why: dict[str, str] = {}
    for n in nodes:
        name = n.metadata.name
        if getattr(n.spec, "unschedulable", False):
            why[name] = "cordoned (spec.unschedulable)"
            continue
        taints = [t for t in (getattr(n.spec, "taints", None) or []) if t.effect in ("NoSchedule", "NoExecute")]
        if taints:
            why[name] = "tainted " + ", ".join(f"{t.key}:{t.effect}" for t in taints)
            continue
        ok.append(name)
    return sorted(ok), why


def manifests(namespace: str, image: str = AGNHOST_IMAGE) -> list[dict[str, Any]]:
    """The namespace, three DaemonSets and the NodePort Service, as API objects."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "cilium-labs-connectivity"}
    tolerate_all = [{"operator": "Exists"}]

    def daemonset(name: str, args: list[str], *, host: bool = False, tolerate: bool = True) -> dict[str, Any]:
        pod_labels = {**labels, ROLE_LABEL: name}
        container: dict[str, Any] = {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": args,
        }
        if name == ECHO:
            container["ports"] = [{"name": "http", "containerPort": ECHO_PORT}]
            container["readinessProbe"] = {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 2}
        spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1, "containers": [container]}
        if tolerate:
            spec["tolerations"] = tolerate_all
        if host:
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        return {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
            "spec": {
                "selector": {"matchLabels": {ROLE_LABEL: name}},
                "template": {"metadata": {"labels": pod_labels}, "spec": spec},
            },
        }

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(labels)}},
        daemonset(ECHO, ["netexec", f"--http-port={ECHO_PORT}"], tolerate=False),
        daemonset(CLIENT, ["pause"]),
        daemonset(HOST, ["pause"], host=True),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": ECHO, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "type": "NodePort",
                "ipFamilyPolicy": "PreferDualStack",
                "selector": {ROLE_LABEL: ECHO},
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": ECHO_PORT, "protocol": "TCP"}],
            },
        },
    ]


class WorkloadError(Exception):
    """The workload could not be made ready; ``reason`` says which pods and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@attrs.frozen
class WorkloadOptions:
    """Where the shared test workload goes, whether it stays, its image, and how long it may take to get ready:
    one set for the connectivity and encapsulation checks, which share one deployment."""

    namespace: str = DEFAULT_NAMESPACE
    keep: bool = False
    image: str = AGNHOST_IMAGE
    ready_timeout_s: float = 180.0


class SharedWorkload:
    """Deploy once per verification, shared by the checks that need it, deleted by the last one out."""

    def __init__(self, ctx: CheckContext, options: WorkloadOptions = WorkloadOptions()) -> None:
        self.ctx = ctx
        self.options = options
        self._lock = threading.Lock()
        self._users = 0
        self._workload: Workload | None = None
        self._error: WorkloadError | None = None

    @classmethod
    def of(cls, ctx: CheckContext, options: WorkloadOptions) -> SharedWorkload:
        return ctx.cached(f"workload:{options.namespace}", lambda: cls(ctx, options))

    def acquire(self) -> Workload:
        """The ready workload (deploying it if nobody has); raises ``WorkloadError`` when it cannot get ready."""
        with self._lock:
            self._users += 1
            if self._workload is None and self._error is None:
                try:
                    self._workload = self._deploy()
                except WorkloadError as exc:
                    self._error = exc
            if self._error is not None:
                raise self._error
            assert self._workload is not None
            return self._workload

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            deployed = self._workload is not None or self._error is not None
            self._workload = None
            self._error = None
            if deployed and not self.options.keep:
                self.ctx.progress(f"deleting test namespace {self.options.namespace}")
                self.ctx.cluster.delete_namespace(self.options.namespace)

    # -- deploy ------------------------------------------------------------------------------------------------
    def _deploy(self) -> Workload:
        cluster = self.ctx.cluster
        existing: Any = cluster.namespace(self.options.namespace)
        if existing is not None:
            owner = (existing.metadata.labels or {}).get("app.kubernetes.io/managed-by")
            if owner != MANAGED_BY:
                raise UsageError(
                    f"namespace {self.options.namespace} exists and was not made by cilium-labs",
                    fix="choose another test namespace for the connectivity check",
                )
            self.ctx.progress(f"deleting the test namespace {self.options.namespace} left by an earlier run")
            cluster.delete_namespace(self.options.namespace)
            self._wait(lambda: cluster.namespace(self.options.namespace) is None, 120.0, "the old test namespace to go")
        backend = self.ctx.backend
        if isinstance(backend, LoadImage):  # kind: put the pinned image on the nodes, as with Cilium's images
            try:
                backend.load_image(self.options.image)
            except CiliumLabsError as exc:
                self.ctx.progress(f"could not preload {self.options.image} ({exc.message}); the nodes will pull it")
        self.ctx.progress(f"deploying test pods ({self.options.image}) in namespace {self.options.namespace}")
        for obj in manifests(self.options.namespace, self.options.image):
            cluster.create(obj)
        return self._wait_ready()

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise WorkloadError(f"gave up after {timeout:g}s waiting for {what}")
            time.sleep(0.5)

    def _wait_ready(self) -> Workload:
        cluster = self.ctx.cluster
        nodes: list[Any] = self.ctx.read("nodes", cluster.nodes)
        schedulable, _ = schedulable_nodes(nodes)
        all_nodes = sorted(str(n.metadata.name) for n in nodes)
        deadline = time.monotonic() + self.options.ready_timeout_s
        last = "no pods yet"
        while True:
            pods: list[Any] = cluster.pods(self.options.namespace)
            found: list[ProbePod] = []
            waiting: list[str] = []
            for p in pods:
                role = (p.metadata.labels or {}).get(ROLE_LABEL)
                if role not in (ECHO, CLIENT, HOST):
                    continue
                ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
                ips = tuple(x.ip for x in (p.status.pod_ips or []) if x.ip) or (
                    (p.status.pod_ip,) if p.status.pod_ip else ()
                )
                if p.status.phase != "Running" or not ready or not ips or not p.spec.node_name:
                    waiting.append(f"{p.metadata.name} on {p.spec.node_name or '?'}: {_pod_state(p)}")
                    continue
                found.append(ProbePod(p.metadata.name, role, p.spec.node_name, ips, role))
            expected: dict[str, set[str]] = {ECHO: set(schedulable), CLIENT: set(all_nodes), HOST: set(all_nodes)}
            missing = [
                f"{role} on {node}"
                for role, want in expected.items()
                for node in sorted(want - {p.node for p in found if p.role == role})
            ]
            if not missing:
                svc: Any = cluster.core.read_namespaced_service(ECHO, self.options.namespace)
                ips = tuple(ip for ip in (svc.spec.cluster_ips or [svc.spec.cluster_ip]) if ip and ip != "None")
                node_port = next((p.node_port for p in svc.spec.ports or [] if p.node_port), 0)
                infos = self.ctx.node_infos()
                return Workload(
                    self.options.namespace,
                    tuple(found),
                    ips,
                    int(node_port or 0),
                    {n: infos[n].internal_ips for n in infos},
                    tuple(schedulable),
                )
            last = "; ".join(waiting[:6] or missing[:6])
            if time.monotonic() > deadline:
                raise WorkloadError(
                    f"test pods not ready after {self.options.ready_timeout_s:g}s: {last}"
                    + (f" (missing: {', '.join(missing[:6])})" if missing and waiting else "")
                )
            time.sleep(1.0)


class WorkloadCheck:
    """A check that deploys the shared test workload (``WorkloadOptions``: namespace, keep, image,
    ready_timeout_s, given as keywords)."""

    def __init__(self, **options: Any) -> None:
        self.options = WorkloadOptions(**options)

    def workload(self, ctx: CheckContext) -> SharedWorkload:
        return SharedWorkload.of(ctx, self.options)


def _pod_state(pod: Any) -> str:
    for cs in pod.status.container_statuses or []:
        waiting = getattr(cs.state, "waiting", None) if cs.state else None
        if waiting is not None and waiting.reason:
            return f"{waiting.reason}: {waiting.message or ''}".strip(": ")
    return str(pod.status.phase or "Pending")


def read_or_error(fn: Callable[[], Any], what: str) -> Any:
    """A Kubernetes read whose failure is a ``WorkloadError`` (a finding), not an exception out of the check."""
    try:
        return fn()
    except ClusterError as exc:
        raise WorkloadError(f"{what}: {exc.message}") from exc
