"""The simulated cluster: an object store with the few controllers a fresh kind cluster runs.

``SimCluster`` holds every object in its API JSON shape and keeps them consistent the way kube-controller-manager,
the scheduler and the kubelets would: Deployments get ReplicaSets and Pods, DaemonSets a Pod per node, Pods a node,
an IP from their node's pod CIDR and readiness over time, Services a ClusterIP and EndpointSlices of their ready
Pods. ``install_cilium`` adds what the Cilium chart creates. Time passes lazily: ``tick`` applies whatever became
due, so the model needs no thread of its own and stays deterministic under a given seed.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from ..spec import LabSpec
from . import helm_release
from . import objects as ob
from .config import CiliumConfig
from .faults import Fault, parse_faults
from .resources import BY_KEY, Resource
from .selectors import SelectorError, match_label_selector_object, parse_field_selector, parse_label_selector

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

NODE_NET4 = ipaddress.ip_network("172.18.0.0/16")
NODE_NET6 = ipaddress.ip_network("fc00:c111::/64")
CILIUM_NS = "kube-system"
T = TypeVar("T")


class ApiError(Exception):
    """An API failure answered as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def not_found(res: Resource, name: str) -> ApiError:
    what = f"{res.plural}.{res.group}" if res.group else res.plural
    return ApiError(404, "NotFound", f'{what} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural} if res.group else
                    {"name": name, "kind": res.plural})


@attrs.define
class SimNode:
    name: str
    role: str
    ips: list[str]
    """InternalIPs, IPv4 first."""
    k8s_cidrs: list[str]
    """``spec.podCIDRs`` (kube-controller-manager allocation)."""
    cilium_cidrs: list[str] = attrs.field(factory=list)
    """CiliumNode ``spec.ipam.podCIDRs`` once Cilium is installed (= k8s CIDRs in kubernetes IPAM)."""
    router_ips: list[str] = attrs.field(factory=list)
    health_ips: list[str] = attrs.field(factory=list)

    @property
    def ipv4(self) -> str | None:
        return next((ip for ip in self.ips if ":" not in ip), None)

    @property
    def ipv6(self) -> str | None:
        return next((ip for ip in self.ips if ":" in ip), None)

    @property
    def tunnel_endpoint(self) -> str:
        return self.ipv4 or self.ips[0]


@attrs.define
class PodRuntime:
    """What a kubelet knows about a pod and the API object does not say."""

    created: float
    node: str | None = None
    host_network: bool = False
    started_at: float | None = None
    ips: list[str] = attrs.field(factory=list)
    agent: bool = False
    start_delay: float = 1.0
    never_ready: bool = False
    """Its readiness probe always fails (an exec probe of ``false``): it runs, keeps its IP, is never Ready."""


NEVER_READY_COMMANDS = (["false"], ["/bin/false"], ["/usr/bin/false"])


def _never_ready(spec: Mapping[str, Any]) -> bool:
    """A container's readiness probe that cannot pass: ``exec: {command: [false]}`` exits 1, so the kubelet
    keeps the pod not Ready (and the EndpointSlice controller lists it with ``ready: false``)."""
    return any(
        ((c.get("readinessProbe") or {}).get("exec") or {}).get("command") in NEVER_READY_COMMANDS
        for c in spec.get("containers") or []
    )


def clone(obj: Any) -> Any:
    """A deep copy of JSON-shaped data (several times faster than ``copy.deepcopy`` on large pod templates)."""
    return json.loads(json.dumps(obj))


def _quantity(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{round(value * 1000)}m"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value))
    return str(value)


MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
ENDPOINTSLICE_CONTROLLER = "endpointslice-controller.k8s.io"


def _controller_managed(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY) == ENDPOINTSLICE_CONTROLLER


def api_normalize(obj: Any, key: str = "") -> Any:
    """What the API server does to manifests (YAML-typed as Helm renders them) before it stores them: resource
    quantities, label/annotation values and env values become strings."""
    if isinstance(obj, dict):
        if key in ("limits", "requests", "capacity", "allocatable"):
            return {k: _quantity(v) for k, v in obj.items()}
        if key in ("labels", "annotations", "nodeSelector", "data"):
            return {k: v if isinstance(v, str) else ("true" if v is True else "false" if v is False else str(v))
                    for k, v in obj.items()}
        return {k: api_normalize(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        if key == "env":
            return [{**e, "value": str(e["value"])} if isinstance(e, dict) and "value" in e
                    and not isinstance(e["value"], str) else api_normalize(e) for e in obj]
        return [api_normalize(x) for x in obj]
    return obj


def node_names(spec: LabSpec, count: int | None = None) -> list[tuple[str, str]]:
    """kind-style ``(name, role)`` for the spec, or for ``count`` nodes (control planes first, then workers)."""
    if count is None:
        return spec.node_names()
    cps = min(spec.control_planes, count)
    out: list[tuple[str, str]] = []
    for i in range(cps):
        out.append((f"{spec.name}-control-plane{'' if i == 0 else i + 1}", "control-plane"))
    for i in range(count - cps):
        out.append((f"{spec.name}-worker{'' if i == 0 else i + 1}", "worker"))
    return out


def _subnets(cidr: str, new_prefix: int, count: int, field: str) -> list[IPNet]:
    net = ipaddress.ip_network(cidr)
    prefix = max(new_prefix, net.prefixlen)
    available = 2 ** (prefix - net.prefixlen)
    if count > available:
        from ..errors import SpecError

        raise SpecError(field, f"{cidr} holds only {available} per-node /{prefix} ranges, {count} nodes need one each",
                        fix="use a larger pod CIDR or fewer nodes")
    return list(itertools.islice(net.subnets(new_prefix=prefix), count))


class SimCluster:
    """The whole simulated cluster. All public methods are thread-safe (one re-entrant lock)."""

    def __init__(
        self,
        spec: LabSpec,
        *,
        nodes: int | None = None,
        faults: Iterable[str | Fault] = (),
        ready_delay_s: float = 3.0,
        pod_start_s: float = 1.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.ready_delay_s = ready_delay_s
        self.pod_start_s = pod_start_s
        self.rng = random.Random(seed)
        self.clock = clock
        self.lock = threading.RLock()
        self.store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in BY_KEY}
        self.rv = itertools.count(1000)
        self.runtime: dict[tuple[str, str], PodRuntime] = {}
        self.cilium: CiliumConfig | None = None
        self.agent_ready_at: dict[str, float] = {}
        self.cni_ready_at: dict[str, float] = {}
        self.node_ready_since: dict[str, str] = {}
        self.used_ips: set[str] = set()
        self.service_ips: set[str] = set()
        self.node_ports: set[int] = set()
        self.slice_names: dict[tuple[str, str, str], str] = {}
        self.frontend_ids: dict[tuple[str, int, str, str], int] = {}
        self._node_index: dict[str, list[tuple[str, str]]] | None = None
        self._nodes_by_name: dict[str, SimNode] = {}
        self._pending_services: set[tuple[str, str]] = set()
        self._status_inputs: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._node_ready_seen: dict[str, tuple[bool, str]] = {}
        self.revision = 0
        """Bumped by every change that can alter what the API or an agent shows: rendered agent outputs are
        cached per revision (``render_cached``), so they are computed once however many agents print them."""
        self._render_cache: dict[Hashable, Any] = {}
        self._render_revision = -1
        self._dirty = True
        self._next_due = 0.0
        self.started = dt.datetime.now(dt.timezone.utc)
        self.nodes: list[SimNode] = self._make_nodes(nodes)
        self.faults: list[Fault] = parse_faults(faults, self.node_names())
        self._bootstrap()
        self.tick()

    def _changed(self) -> None:
        """Something was written: reconcile on the next ``tick`` and invalidate rendered outputs."""
        self._dirty = True
        self.revision += 1

    def render_cached(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()`` computed once per revision for ``key`` (outputs every agent prints alike)."""
        with self.lock:
            if self._render_revision != self.revision:
                self._render_cache.clear()
                self._render_revision = self.revision
            if key in self._render_cache:
                return cast(T, self._render_cache[key])
            revision = self.revision
            value = make()
            if self.revision == revision:  # ``make`` may tick; never keep what an older state produced
                self._render_cache[key] = value
            return value

    # -- nodes and bootstrap ---------------------------------------------------------------------------------
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> SimNode | None:
        if len(self._nodes_by_name) != len(self.nodes):
            self._nodes_by_name = {n.name: n for n in self.nodes}
        return self._nodes_by_name.get(name)

    def _make_nodes(self, count: int | None) -> list[SimNode]:
        names = node_names(self.spec, count)
        fams = self.spec.families
        per_family: dict[int, list[IPNet]] = {}
        for cidr in self.spec.pod_cidrs:
            net = ipaddress.ip_network(cidr)
            per_family[net.version] = _subnets(cidr, 24 if net.version == 4 else 64, len(names), "pod_cidrs")
        out = []
        for i, (name, role) in enumerate(names):
            ips = []
            if 4 in fams:
                ips.append(str(NODE_NET4.network_address + 2 + i))
            if 6 in fams:
                ips.append(str(NODE_NET6.network_address + 2 + i))
            cidrs = [str(per_family[f][i]) for f in fams]
            out.append(SimNode(name, role, ips, cidrs))
        return out

    def _bootstrap(self) -> None:
        k8s = "v" + ".".join(str(x) for x in self.spec.k8s_version_tuple)
        workers = any(n.role == "worker" for n in self.nodes)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage"):
            self._put("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}})
        for n in self.nodes:
            obj = ob.node_object(n.name, n.role, n.ips, n.k8s_cidrs, lab=self.spec.name, k8s_version=k8s,
                                 tainted=n.role == "control-plane" and workers, rng=self.rng)
            self._put("nodes", obj)
        cp_ips = [n.ips for n in self.nodes if n.role == "control-plane"]
        kubernetes = ob.service("kubernetes", "default",
                                [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                                labels={"component": "apiserver", "provider": "kubernetes"})
        self._create_service(kubernetes, first_ip=1)
        self._put("discovery.k8s.io/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4" if ":" not in cp_ips[0][0] else "IPv6",
            "endpoints": [{"addresses": [ips[0]], "conditions": {"ready": True, "serving": True,
                                                                   "terminating": False}} for ips in cp_ips],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]})
        self._put("endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {
            "name": "kubernetes", "namespace": "default", "labels": {
                "endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ips[0]} for ips in cp_ips],
                         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]})
        dns_labels = {"k8s-app": "kube-dns"}
        dns_ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                     {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                     {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]
        self._create_service(ob.service("kube-dns", "kube-system", dns_ports, selector=dns_labels, labels={
            "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}),
            first_ip=10)
        self._put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "coredns", "namespace": "kube-system"}, "data": {"Corefile": ob.COREDNS_COREFILE}})
        coredns = ob.container("coredns", "registry.k8s.io/coredns/coredns:v1.12.0", ports=[
            {"containerPort": 53, "name": "dns", "protocol": "UDP"},
            {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
            {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}])
        tolerations = [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                       {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
        self.create("apps/deployments", "kube-system", ob.deployment(
            "coredns", "kube-system", dict(dns_labels), dict(dns_labels), 2,
            ob.pod_template(dns_labels, [coredns], tolerations=tolerations, serviceAccountName="coredns",
                            priorityClassName="system-cluster-critical")))
        for n in self.nodes:
            if n.role != "control-plane":
                continue
            for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                image = "registry.k8s.io/etcd:3.5.21-0" if comp == "etcd" else f"registry.k8s.io/{comp}:{k8s}"
                self.create("pods", "kube-system", {"apiVersion": "v1", "kind": "Pod", "metadata": {
                    "name": f"{comp}-{n.name}", "labels": {"component": comp, "tier": "control-plane"}},
                    "spec": {"containers": [ob.container(comp, image)], "hostNetwork": True, "nodeName": n.name,
                             "priorityClassName": "system-node-critical"}})
        if not self.spec.kube_proxy_replacement:
            kp_labels = {"k8s-app": "kube-proxy"}
            self.create("apps/daemonsets", "kube-system", ob.daemonset(
                "kube-proxy", "kube-system", dict(kp_labels), dict(kp_labels),
                ob.pod_template(kp_labels, [ob.container("kube-proxy", f"registry.k8s.io/kube-proxy:{k8s}")],
                                hostNetwork=True, tolerations=[{"operator": "Exists"}],
                                priorityClassName="system-node-critical")))

    # -- store primitives --------------------------------------------------------------------------------------
    def _stamp(self, res: Resource, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", ob.new_uid(self.rng))
        meta.setdefault("creationTimestamp", ob.now_rfc3339())
        meta["resourceVersion"] = str(next(self.rv))
        self.revision += 1
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        return obj

    def _put(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        res = BY_KEY[key]
        ns = obj.get("metadata", {}).get("namespace", "") if res.namespaced else ""
        self._stamp(res, obj, ns or None)
        self.store[key][(ns or "", obj["metadata"]["name"])] = obj
        return obj

    def _touch(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        self.revision += 1

    def _objects(self, key: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self.store[key]
        if namespace is None:
            return list(items.values())
        return [o for (ns, _), o in items.items() if ns == namespace]

    def resource_version(self) -> str:
        return str(next(self.rv))

    # -- public API: reads ------------------------------------------------------------------------------------
    def served(self, res: Resource) -> bool:
        return not res.cilium or self.cilium is not None

    def list_objects(self, key: str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [clone(o) for o in self.select(key, namespace, label_selector=label_selector,
                                                  field_selector=field_selector)]

    def select(self, key: str, namespace: str | None = None, *, label_selector: str = "",
               field_selector: str = "") -> list[dict[str, Any]]:
        """The stored objects a list returns, sorted, *not* copied: hold ``lock`` until done reading them (the
        server serializes them straight away instead of copying a thousand EndpointSlices first)."""
        res = BY_KEY[key]
        try:
            by_label = parse_label_selector(label_selector)
            by_field = parse_field_selector(field_selector, res.fields)
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        with self.lock:
            self.tick()
            out = [o for o in self._objects(key, namespace)
                   if by_label((o.get("metadata") or {}).get("labels") or {}) and by_field(o)]
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    def get(self, key: str, namespace: str | None, name: str) -> dict[str, Any]:
        res = BY_KEY[key]
        with self.lock:
            self.tick()
            obj = self.store[key].get((namespace or "", name))
            if obj is None:
                raise not_found(res, name)
            return clone(obj)

    # -- public API: writes ------------------------------------------------------------------------------------
    def create(self, key: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        res = BY_KEY[key]
        obj = clone(dict(body))
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        meta = obj["metadata"]
        with self.lock:
            if res.namespaced:
                ns = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") and meta["namespace"] != ns:
                    raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                   "namespace sent on the request")
                if ("", ns) not in self.store["namespaces"]:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                                   {"name": ns, "kind": "namespaces"})
                meta["namespace"] = ns
            else:
                ns = ""
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + ob.rand_suffix(self.rng)
                else:
                    raise ApiError(422, "Invalid", f'{res.kind} "" is invalid: metadata.name: Required value: '
                                   "name or generateName is required",
                                   {"kind": res.kind, "causes": [{"reason": "FieldValueRequired",
                                                                  "message": "Required value: name or generateName "
                                                                  "is required", "field": "metadata.name"}]})
            name = meta["name"]
            if (ns, name) in self.store[key]:
                what = f"{res.plural}.{res.group}" if res.group else res.plural
                raise ApiError(409, "AlreadyExists", f'{what} "{name}" already exists',
                               {"name": name, "kind": res.plural, **({"group": res.group} if res.group else {})})
            for k in ("uid", "resourceVersion", "creationTimestamp"):
                meta.pop(k, None)
            obj = api_normalize(obj)
            meta = obj["metadata"]
            self._admit(key, obj)
            self._put(key, obj)
            if key == "services" and not self._dirty:
                # a new Service changes nothing but its own endpoints: reconcile just those (creating 500
                # Services must not re-run every controller 500 times)
                self._pending_services.add((ns, name))
                self.revision += 1
            else:
                self._changed()
            self.tick()
            return clone(self.store[key][(ns, name)])

    def replace(self, key: str, namespace: str | None, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        res = BY_KEY[key]
        with self.lock:
            cur = self.store[key].get((namespace or "", name))
            if cur is None:
                raise not_found(res, name)
            obj = clone(dict(body))
            meta = obj.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp", "namespace", "name"):
                meta[k] = cur["metadata"].get(k)
            if key != "nodes" and "status" in cur and "status" not in obj:
                obj["status"] = cur["status"]
            self._stamp(res, obj, namespace)
            self.store[key][(namespace or "", name)] = obj
            self._changed()
            self.tick()
            return clone(obj)

    def patch(self, key: str, namespace: str | None, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (also used for strategic-merge patches: maps merge, lists are replaced)."""
        with self.lock:
            cur = self.get(key, namespace, name)
            return self.replace(key, namespace, name, _merge_patch(cur, patch))

    def delete(self, key: str, namespace: str | None, name: str) -> dict[str, Any]:
        res = BY_KEY[key]
        with self.lock:
            obj = self.store[key].pop((namespace or "", name), None)
            if obj is None:
                raise not_found(res, name)
            self._on_delete(key, obj)
            self._changed()
            self.tick()
        if key in ("pods", "services", "namespaces", "nodes"):
            gone = clone(obj)
            gone["metadata"]["deletionTimestamp"] = ob.now_rfc3339()
            if key == "namespaces":
                gone["status"] = {"phase": "Terminating"}
            return gone
        details = {"name": name, "kind": res.plural, "uid": obj["metadata"]["uid"]}
        if res.group:
            details["group"] = res.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    # -- admission (defaults and allocation on create) ---------------------------------------------------------
    def _admit(self, key: str, obj: dict[str, Any]) -> None:
        if key == "namespaces":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif key == "services":
            self._admit_service(obj)
        elif key == "discovery.k8s.io/endpointslices":
            self._admit_endpoint_slice(obj)
        elif key == "pods":
            spec = obj.setdefault("spec", {})
            if not spec.get("containers"):
                raise ApiError(422, "Invalid", f'Pod "{obj["metadata"]["name"]}" is invalid: spec.containers: '
                               "Required value")
            for c in spec["containers"]:
                c.setdefault("imagePullPolicy", "IfNotPresent")
                c.setdefault("terminationMessagePath", "/dev/termination-log")
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            self.runtime[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = PodRuntime(
                created=self.clock(), host_network=bool(spec.get("hostNetwork")), start_delay=self.pod_start_s,
                never_ready=_never_ready(spec))
        elif key in ("apps/deployments", "apps/daemonsets", "apps/replicasets"):
            spec = obj.setdefault("spec", {})
            tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not match_label_selector_object(spec.get("selector"), tmpl_labels) or not spec.get("selector"):
                raise ApiError(422, "Invalid", f'{obj.get("kind")} "{obj["metadata"]["name"]}" is invalid: '
                               "spec.template.metadata.labels: Invalid value: selector does not match template "
                               "labels")
            obj["metadata"]["generation"] = 1
            obj["status"] = {}

    @staticmethod
    def _admit_endpoint_slice(obj: dict[str, Any]) -> None:
        """What the API server checks and defaults on an EndpointSlice someone else than the EndpointSlice
        controller manages (a selector-less Service's): the address type, and TCP for a port without a protocol
        (k8s.io/api discovery/v1 ``EndpointPort.Protocol`` "Defaults to TCP"). Endpoint conditions are kept as
        given: ``ready``/``serving``/``terminating`` may each be absent (unknown)."""
        name = obj["metadata"]["name"]
        kind = obj.get("addressType")
        if kind not in ("IPv4", "IPv6", "FQDN"):
            raise ApiError(422, "Invalid", f'EndpointSlice.discovery.k8s.io "{name}" is invalid: addressType: '
                           + ("Required value" if not kind else f'Unsupported value: "{kind}": supported values: '
                              '"FQDN", "IPv4", "IPv6"'))
        for p in obj.get("ports") or []:
            p.setdefault("protocol", "TCP")
        for i, ep in enumerate(obj.get("endpoints") or []):
            if not ep.get("addresses"):
                raise ApiError(422, "Invalid", f'EndpointSlice.discovery.k8s.io "{name}" is invalid: '
                               f"endpoints[{i}].addresses: Required value: must contain at least 1 address")
            ep.setdefault("conditions", {})

    def _admit_service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        kind = spec.setdefault("type", "ClusterIP")
        if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            raise ApiError(422, "Invalid", f'Service "{obj["metadata"]["name"]}" is invalid: spec.type: '
                           f'Unsupported value: "{kind}"')
        ports = spec.get("ports") or []
        if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
            raise ApiError(422, "Invalid", f'Service "{obj["metadata"]["name"]}" is invalid: spec.ports: '
                           "Required value")
        for p in ports:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
            if kind in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                p["nodePort"] = self._alloc_node_port()
            elif p.get("nodePort"):
                if p["nodePort"] in self.node_ports:
                    raise ApiError(422, "Invalid", f'Service "{obj["metadata"]["name"]}" is invalid: '
                                   f'spec.ports[{ports.index(p)}].nodePort: Invalid value: {p["nodePort"]}: '
                                   "provided port is already allocated")
                self.node_ports.add(p["nodePort"])
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "ExternalName":
            return
        name = obj["metadata"]["name"]
        ips = self._service_families(name, spec)
        if spec.get("clusterIP") == "None":
            return
        allocated: list[str] = []
        try:
            for i, fam in enumerate([4 if f == "IPv4" else 6 for f in spec["ipFamilies"]]):
                allocated.append(self._alloc_service_ip(fam, ips[i] if i < len(ips) else None, name))
        except ApiError:
            self.service_ips.difference_update(allocated)
            raise
        spec["clusterIP"] = allocated[0]
        spec["clusterIPs"] = allocated
        obj["status"] = {"loadBalancer": {}}

    def _service_families(self, name: str, spec: dict[str, Any]) -> list[str]:
        """``clusterIP``/``clusterIPs``/``ipFamilies``/``ipFamilyPolicy`` as the API server settles them on create
        (kubernetes v1.36.3 pkg/registry/core/service/strategy.go ``normalizeClusterIPs`` and
        pkg/registry/core/service/storage/alloc.go ``initIPFamilyFields``): the requested addresses in family
        order, with ``spec.ipFamilies`` and ``spec.ipFamilyPolicy`` filled in."""

        def invalid(field: str, value: Any, why: str) -> ApiError:
            return ApiError(422, "Invalid", f'Service "{name}" is invalid: {field}: Invalid value: '
                            f"{json.dumps(value)}: {why}")

        single = spec.get("clusterIP") or ""
        ips = [str(ip) for ip in spec.get("clusterIPs") or []]
        if single and not ips:
            ips = [single]
        elif ips and not single:
            single = spec["clusterIP"] = ips[0]
        if ips and ips[0] != single:
            raise invalid("spec.clusterIPs[0]", ips[0], "must match `clusterIP` when both are specified")
        headless = single == "None"
        if headless:
            ips = ["None"]
        if ips:
            spec["clusterIPs"] = ips
        else:
            spec.pop("clusterIPs", None)
        policy = spec.get("ipFamilyPolicy")
        if policy is None:
            policy = "RequireDualStack" if headless and not spec.get("selector") else "SingleStack"
            spec["ipFamilyPolicy"] = policy
        if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
            raise ApiError(422, "Invalid", f'Service "{name}" is invalid: spec.ipFamilyPolicy: Unsupported value: '
                           f'"{policy}"')
        families = [str(f) for f in spec.get("ipFamilies") or []]
        if policy == "SingleStack" and len(ips) == 2:
            raise invalid("spec.ipFamilyPolicy", policy,
                          "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified")
        if policy == "SingleStack" and len(families) == 2:
            raise invalid("spec.ipFamilyPolicy", policy,
                          "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
        configured = {"IPv4" if f == 4 else "IPv6" for f in self.spec.families}
        for i, ip in enumerate([] if headless else ips):
            try:
                fam = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
            except ValueError:
                raise invalid(f"spec.clusterIPs[{i}]", ip, "must be a valid IP address") from None
            if i < len(families) and families[i] != fam:
                raise invalid(f"spec.ipFamilies[{i}]", families[i], f"does not match the IP family of {ip}")
            if i >= len(families):
                if fam not in configured:
                    raise invalid(f"spec.clusterIPs[{i}]", ips, f"{fam} is not configured on this cluster")
                families.append(fam)
        default = "IPv4" if self.spec.families[0] == 4 else "IPv6"
        if headless and not spec.get("selector"):
            families = families or [default]
            if len(families) < 2 and policy != "SingleStack":
                families.append("IPv6" if families[0] == "IPv4" else "IPv4")
            spec["ipFamilies"] = families
            return ips
        if policy == "RequireDualStack" and len(configured) < 2:
            raise invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services")
        for i, fam in enumerate(families):
            if fam not in configured:
                raise invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster")
        families = families or [default]
        if policy != "SingleStack" and len(families) == 1 and len(configured) == 2:
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        spec["ipFamilies"] = families
        return [] if headless else ips

    def _service_cidr(self, fam: int) -> IPNet:
        for cidr in self.spec.service_cidrs:
            net = ipaddress.ip_network(cidr)
            if net.version == fam:
                return net
        raise ApiError(422, "Invalid", f"no IPv{fam} service CIDR in this cluster")

    def _alloc_service_ip(self, fam: int, wanted: str | None, name: str, offset: int | None = None) -> str:
        net = self._service_cidr(fam)
        if wanted:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                raise ApiError(422, "Invalid", f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: '
                               f'"{wanted}": must be a valid IP address') from None
            if ip not in net or str(ip) in self.service_ips:
                taken = str(ip) in self.service_ips
                why = (f"failed to allocate IP {wanted}: provided IP is already allocated" if taken
                       else f"provided IP is not in the valid range. The range of valid IPs is {net}")
                raise ApiError(422, "Invalid", f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: '
                               f'"{wanted}": {why}')
            self.service_ips.add(str(ip))
            return str(ip)
        if offset is not None:
            ip = net.network_address + offset
        else:
            size = min(net.num_addresses - 2, 65534)
            while True:
                ip = net.network_address + self.rng.randint(16, size)
                if str(ip) not in self.service_ips:
                    break
        self.service_ips.add(str(ip))
        return str(ip)

    def _alloc_node_port(self) -> int:
        while True:
            port = self.rng.randint(30000, 32767)
            if port not in self.node_ports:
                self.node_ports.add(port)
                return port

    def _create_service(self, obj: dict[str, Any], first_ip: int) -> None:
        """Bootstrap services get the well-known addresses (.1 for kubernetes, .10 for kube-dns)."""
        spec = obj["spec"]
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        fam = self.spec.families[0]
        spec["clusterIP"] = str(self._service_cidr(fam).network_address + first_ip)
        obj["metadata"]["namespace"] = obj["metadata"].get("namespace", "default")
        self._admit_service(obj)
        self._put("services", obj)

    # -- deletion cascade --------------------------------------------------------------------------------------
    def _on_delete(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        if key == "namespaces":
            for other_key, items in self.store.items():
                if BY_KEY[other_key].namespaced:
                    for (ns, name) in [k for k in items if k[0] == meta["name"]]:
                        self._on_delete(other_key, items.pop((ns, name)))
            return
        if key == "pods":
            rt = self.runtime.pop((meta["namespace"], meta["name"]), None)
            if rt:
                self.used_ips.difference_update(rt.ips)
        if key == "services":
            self.service_ips.difference_update(obj["spec"].get("clusterIPs") or [])
            for p in obj["spec"].get("ports") or []:
                self.node_ports.discard(p.get("nodePort"))
        for other_key, items in self.store.items():
            for k, other in list(items.items()):
                refs = other.get("metadata", {}).get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    items.pop(k)
                    self._on_delete(other_key, other)

    # -- faults -------------------------------------------------------------------------------------------------
    def set_faults(self, faults: Iterable[str | Fault], *, replace: bool = False) -> list[Fault]:
        parsed = parse_faults(faults, self.node_names())
        with self.lock:
            self.faults = parsed if replace else self.faults + [f for f in parsed if f not in self.faults]
            self._changed()
            return list(self.faults)

    def faults_for(self, kind: str, node: str | None = None) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind and (node is None or f.node == node)]

    def agent_down(self, node: str) -> bool:
        return bool(self.faults_for("agent-down", node))

    # -- time ---------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        """Apply everything that became due (readiness, scheduling, endpoints)."""
        with self.lock:
            now = self.clock()
            if not self._dirty and now < self._next_due:
                if self._pending_services:
                    pending, self._pending_services = self._pending_services, set()
                    self.revision += 1
                    self._reconcile_endpoints(only=pending)
                return
            self._dirty = False
            self._pending_services.clear()
            self._reconcile(now)

    def _reconcile(self, now: float) -> None:
        self.revision += 1  # time passed or something was written: readiness and endpoints may have moved
        due: list[float] = []
        for node, at in self.agent_ready_at.items():
            if node not in self.cni_ready_at:
                if at <= now and not self.agent_down(node):
                    self.cni_ready_at[node] = at
                elif at > now:
                    due.append(at)
        self._reconcile_workloads()
        self._reconcile_pods(now, due)
        self._reconcile_status()
        self._reconcile_endpoints()
        self._reconcile_nodes()
        self._next_due = min(due) if due else float("inf")

    def _reconcile_workloads(self) -> None:
        for ds in list(self._objects("apps/daemonsets")):
            self._sync_daemonset(ds)
        for dep in list(self._objects("apps/deployments")):
            self._sync_deployment(dep)
        for rs in list(self._objects("apps/replicasets")):
            self._sync_replicaset(rs)

    def _owned(self, key: str, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        ns = owner["metadata"].get("namespace")
        return [o for o in self._objects(key, ns)
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]

    def _sync_deployment(self, dep: dict[str, Any]) -> None:
        template = dep["spec"]["template"]
        h = ob.template_hash(template)
        owned = self._owned("apps/replicasets", dep)
        current = next((rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == h), None)
        replicas = int(dep["spec"].get("replicas", 1))
        for rs in owned:
            if rs is not current and rs["spec"]["replicas"] != 0:
                rs["spec"]["replicas"] = 0
                self._touch(rs)
        if current is None:
            tmpl = clone(template)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = clone(dep["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            ns = dep["metadata"]["namespace"]
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": f"{dep['metadata']['name']}-{h}", "namespace": ns,
                "labels": dict(tmpl["metadata"]["labels"]),
                "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                "deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [ob.owner_ref("apps/v1", "Deployment", dep)]},
                "spec": {"replicas": replicas, "selector": selector, "template": tmpl}, "status": {}}
            self._put("apps/replicasets", rs)
        elif current["spec"]["replicas"] != replicas:
            current["spec"]["replicas"] = replicas
            self._touch(current)

    def _sync_replicaset(self, rs: dict[str, Any]) -> None:
        pods = self._owned("pods", rs)
        want = int(rs["spec"].get("replicas", 1))
        for pod in pods[want:]:
            self.store["pods"].pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
            self._on_delete("pods", pod)
        for _ in range(want - len(pods)):
            prefix = rs["metadata"]["name"] + "-"
            self._spawn_pod(rs, "ReplicaSet", prefix, rs["spec"]["template"], None)

    def _sync_daemonset(self, ds: dict[str, Any]) -> None:
        pods = {p["spec"].get("nodeName"): p for p in self._owned("pods", ds)}
        tmpl = ds["spec"]["template"]
        revision = ob.template_hash(tmpl)[:9]
        for n in self.nodes:
            node_obj = self.store["nodes"][("", n.name)]
            if n.name in pods or not _node_fits(tmpl.get("spec") or {}, node_obj, daemon=True):
                continue
            pod = self._spawn_pod(ds, "DaemonSet", ds["metadata"]["name"] + "-", tmpl, n.name)
            pod["metadata"]["labels"].update({"controller-revision-hash": revision, "pod-template-generation": "1"})

    def _spawn_pod(self, owner: dict[str, Any], kind: str, prefix: str, template: Mapping[str, Any],
                   node: str | None) -> dict[str, Any]:
        ns = owner["metadata"]["namespace"]
        while True:
            name = prefix + ob.rand_suffix(self.rng)
            if (ns, name) not in self.store["pods"]:
                break
        tmpl = clone(dict(template))
        meta = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        if node:
            spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": ns, "generateName": prefix, "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [ob.owner_ref("apps/v1", kind, owner)]}, "spec": spec}
        self._admit("pods", pod)
        self._put("pods", pod)
        rt = self.runtime[(ns, name)]
        is_agent = kind == "DaemonSet" and owner["metadata"]["name"] == "cilium" and ns == CILIUM_NS
        rt.agent = is_agent
        return pod

    # -- pods ----------------------------------------------------------------------------------------------------
    def _schedule(self, pod: dict[str, Any]) -> str | None:
        spec = pod["spec"]
        ns = pod["metadata"]["namespace"]
        candidates = []
        for n in self.nodes:
            node_obj = self.store["nodes"][("", n.name)]
            if not _node_fits(spec, node_obj, daemon=False):
                continue
            if not self._affinity_fits(spec, ns, n.name):
                continue
            candidates.append(n.name)
        if not candidates:
            return None
        load: dict[str, int] = {c: 0 for c in candidates}
        for other_rt in self.runtime.values():
            if other_rt.node in load and not other_rt.host_network:
                load[other_rt.node] += 1
        return min(candidates, key=lambda c: (load[c], candidates.index(c)))

    def _affinity_fits(self, spec: Mapping[str, Any], ns: str, node: str) -> bool:
        affinity = spec.get("affinity") or {}
        for kind, want in (("podAffinity", True), ("podAntiAffinity", False)):
            terms = (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
            for term in terms:
                if term.get("topologyKey") != "kubernetes.io/hostname":
                    continue
                namespaces = term.get("namespaces") or [ns]
                present = any(
                    pns in namespaces
                    and match_label_selector_object(term.get("labelSelector"),
                                                    self.store["pods"][(pns, pname)]["metadata"].get("labels") or {})
                    for pns, pname in self._pods_on(node)
                )
                if present != want:
                    return False
        return True

    def _pods_on(self, node: str) -> list[tuple[str, str]]:
        """Pods bound to ``node`` (an index rebuilt per reconcile, kept current as pods are scheduled)."""
        if self._node_index is None:
            self._node_index = {}
            for key, rt in self.runtime.items():
                if rt.node and key in self.store["pods"]:
                    self._node_index.setdefault(rt.node, []).append(key)
        return self._node_index.get(node, [])

    def _pod_ips(self, node: SimNode) -> list[str]:
        cidrs = node.cilium_cidrs or node.k8s_cidrs
        out = []
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr)
            top = min(net.num_addresses - 2, 65534)
            for _ in range(1000):
                ip = str(net.network_address + self.rng.randint(2, top))
                if ip not in self.used_ips:
                    break
            self.used_ips.add(ip)
            out.append(ip)
        return out

    def _reconcile_pods(self, now: float, due: list[float]) -> None:
        self._node_index = None
        for (ns, name), pod in self.store["pods"].items():
            rt = self.runtime.get((ns, name))
            if rt is None:
                continue
            if rt.node is None:
                rt.node = pod["spec"].get("nodeName") or self._schedule(pod)
                if rt.node:
                    pod["spec"]["nodeName"] = rt.node
                    if self._node_index is not None:
                        self._node_index.setdefault(rt.node, []).append((ns, name))
            node = self.node(rt.node) if rt.node else None
            if rt.started_at is None and node is not None:
                net_at: float | None
                if rt.agent:
                    ready_at = self.agent_ready_at.get(node.name)
                    net_at = rt.created if ready_at is None else min(rt.created + 0.2 * self.pod_start_s, ready_at)
                else:
                    net_at = rt.created if rt.host_network else self.cni_ready_at.get(node.name)
                if net_at is not None:
                    start = max(net_at, rt.created) + (0 if rt.agent else rt.start_delay)
                    if start <= now:
                        rt.started_at = start
                        rt.ips = list(node.ips) if rt.host_network else self._pod_ips(node)
                        if not rt.host_network and self.cilium is not None:  # the agent writes its CEP
                            from .endpoints import cilium_endpoint  # imports the agent, which imports this
                            self._put("cilium.io/ciliumendpoints", cilium_endpoint(pod, node.name, node.ips[0],
                                                                                   rt.ips))
                    else:
                        due.append(start)
            ready = self._pod_ready(rt, now, due)
            crashing = rt.agent and self.agent_down(rt.node or "")
            inputs = (pod["metadata"]["resourceVersion"], rt.node, rt.started_at, tuple(rt.ips), ready, crashing)
            if self._status_inputs.get((ns, name)) == inputs:
                continue  # same pod, same facts: the status it was given still holds
            new_status = _pod_status(pod, rt, node, ready, crashing)
            if new_status != pod.get("status"):
                pod["status"] = new_status
                self._touch(pod)
            self._status_inputs[(ns, name)] = (pod["metadata"]["resourceVersion"], *inputs[1:])

    def _pod_ready(self, rt: PodRuntime, now: float, due: list[float]) -> bool:
        if rt.started_at is None or rt.node is None:
            return False
        if rt.agent:
            if self.agent_down(rt.node):
                return False
            at = self.agent_ready_at.get(rt.node, rt.started_at)
            if at > now:
                due.append(at)
                return False
            return True
        return not rt.never_ready

    # -- controller status fields -----------------------------------------------------------------------------
    def _reconcile_status(self) -> None:
        for rs in self._objects("apps/replicasets"):
            pods = self._owned("pods", rs)
            ready = sum(1 for p in pods if _is_ready(p))
            rs_status = {"availableReplicas": ready, "fullyLabeledReplicas": len(pods), "observedGeneration": 1,
                         "readyReplicas": ready, "replicas": len(pods)}
            self._set_status(rs, {k: v for k, v in rs_status.items() if v or k in ("replicas", "observedGeneration")})
        for dep in self._objects("apps/deployments"):
            pods = [p for rs in self._owned("apps/replicasets", dep) for p in self._owned("pods", rs)]
            ready = sum(1 for p in pods if _is_ready(p))
            want = int(dep["spec"].get("replicas", 1))
            status: dict[str, Any] = {"observedGeneration": 1, "replicas": len(pods), "updatedReplicas": len(pods)}
            if ready:
                status["readyReplicas"] = ready
                status["availableReplicas"] = ready
            if want - ready > 0:
                status["unavailableReplicas"] = want - ready
            avail = ready >= want - want // 4
            status["conditions"] = [
                {"type": "Available", "status": "True" if avail else "False",
                 "reason": "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if avail else
                 "Deployment does not have minimum availability.",
                 "lastTransitionTime": dep["metadata"]["creationTimestamp"],
                 "lastUpdateTime": dep["metadata"]["creationTimestamp"]},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{dep["metadata"]["name"]}-{ob.template_hash(dep["spec"]["template"])}" '
                            "has successfully progressed.",
                 "lastTransitionTime": dep["metadata"]["creationTimestamp"],
                 "lastUpdateTime": dep["metadata"]["creationTimestamp"]},
            ]
            self._set_status(dep, status)
        for ds in self._objects("apps/daemonsets"):
            pods = self._owned("pods", ds)
            desired = sum(1 for n in self.nodes if _node_fits(ds["spec"]["template"].get("spec") or {},
                                                              self.store["nodes"][("", n.name)], daemon=True))
            ready = sum(1 for p in pods if _is_ready(p))
            status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": desired,
                      "numberMisscheduled": 0, "numberReady": ready, "observedGeneration": 1,
                      "updatedNumberScheduled": len(pods)}
            if ready:
                status["numberAvailable"] = ready
            if desired - ready > 0:
                status["numberUnavailable"] = desired - ready
            self._set_status(ds, status)

    def _set_status(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") != status:
            obj["status"] = status
            self._touch(obj)

    # -- endpoints --------------------------------------------------------------------------------------------
    def _reconcile_endpoints(self, only: set[tuple[str, str]] | None = None) -> None:
        """EndpointSlices and Endpoints of every Service (or of the ``only`` ones, just created)."""
        live: set[tuple[str, str]] = {("default", "kubernetes")}
        if only is None:
            services = self._objects("services")
        else:
            services = [self.store["services"][k] for k in sorted(only) if k in self.store["services"]]
        running: dict[str, list[dict[str, Any]]] = {}
        selected: dict[tuple[str, tuple[tuple[str, Any], ...]], list[dict[str, Any]]] = {}
        for svc in services:
            selector = svc["spec"].get("selector")
            if not selector:
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            memo = (ns, tuple(sorted(selector.items())))  # Services sharing a selector share its pods
            if memo not in selected:
                if ns not in running:
                    running[ns] = [p for p in self._objects("pods", ns) if p.get("status", {}).get("podIPs")
                                   and not p["metadata"].get("deletionTimestamp")]
                chosen = [p for p in running[ns]
                          if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
                chosen.sort(key=lambda p: p["metadata"]["name"])
                selected[memo] = chosen
            pods = selected[memo]
            families = [4 if f == "IPv4" else 6 for f in svc["spec"].get("ipFamilies") or ["IPv4"]]
            ports = [_slice_port(p, pods) for p in svc["spec"].get("ports") or []]
            for fam in families:
                slice_key = (ns, name, f"IPv{fam}")
                if slice_key not in self.slice_names:
                    self.slice_names[slice_key] = f"{name}-{ob.rand_suffix(self.rng)}"
                slice_name = self.slice_names[slice_key]
                live.add((ns, slice_name))
                endpoints = []
                for p in pods:
                    ip = next((a["ip"] for a in p["status"]["podIPs"] if (":" in a["ip"]) == (fam == 6)), None)
                    if ip is None:
                        continue
                    ready = _is_ready(p)
                    endpoints.append({"addresses": [ip],
                                      "conditions": {"ready": ready, "serving": ready, "terminating": False},
                                      "nodeName": p["spec"].get("nodeName"),
                                      "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns,
                                                    "uid": p["metadata"]["uid"]}})
                body = {"addressType": f"IPv{fam}", "endpoints": endpoints, "ports": ports}
                cur = self.store["discovery.k8s.io/endpointslices"].get((ns, slice_name))
                if cur is None:
                    self._put("discovery.k8s.io/endpointslices", {
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": slice_name, "namespace": ns, "generateName": f"{name}-",
                                     "labels": {MANAGED_BY: ENDPOINTSLICE_CONTROLLER,
                                                "kubernetes.io/service-name": name},
                                     "ownerReferences": [ob.owner_ref("v1", "Service", svc)]},
                        **body})
                elif any(cur.get(k) != v for k, v in body.items()):
                    cur.update(body)
                    self._touch(cur)
            subsets = []
            ready_addrs = [{"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName"),
                            "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns,
                                          "uid": p["metadata"]["uid"]}} for p in pods if _is_ready(p)]
            not_ready = [{"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName")}
                         for p in pods if not _is_ready(p)]
            if ready_addrs or not_ready:
                subset: dict[str, Any] = {"ports": ports}
                if ready_addrs:
                    subset["addresses"] = ready_addrs
                if not_ready:
                    subset["notReadyAddresses"] = not_ready
                subsets.append(subset)
            ep = self.store["endpoints"].get((ns, name))
            if ep is None:
                self._put("endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {
                    "name": name, "namespace": ns, "labels": dict(svc["metadata"].get("labels") or {}),
                    "ownerReferences": [ob.owner_ref("v1", "Service", svc, controller=False)]},
                    "subsets": subsets})
            elif ep.get("subsets") != subsets:
                ep["subsets"] = subsets
                self._touch(ep)
            live.add((ns, name))
        if only is not None:
            return  # nothing else changed: no slice became stale
        # the controller removes only the slices it manages (kube-controller-manager's EndpointSlice controller
        # selects by this label): a selector-less Service's own slices stay as their owner wrote them
        store = self.store["discovery.k8s.io/endpointslices"]
        for k in [k for k, sl in store.items() if k not in live and _controller_managed(sl)]:
            del store[k]

    def _reconcile_nodes(self) -> None:
        for n in self.nodes:
            obj = self.store["nodes"][("", n.name)]
            ready = n.name in self.cni_ready_at
            if self._node_ready_seen.get(n.name) == (ready, obj["metadata"]["resourceVersion"]):
                continue  # neither readiness nor the object changed since its conditions were set
            key = f"{n.name}:{ready}"
            if key not in self.node_ready_since:
                self.node_ready_since[key] = ob.now_rfc3339()
            since = self.node_ready_since[key]
            conds = ob.node_conditions(ready, since)
            old = obj["status"].get("conditions") or []
            if [(c["type"], c["status"]) for c in old] != [(c["type"], c["status"]) for c in conds]:
                obj["status"]["conditions"] = conds
                self._touch(obj)
            self._node_ready_seen[n.name] = (ready, obj["metadata"]["resourceVersion"])

    # -- Cilium --------------------------------------------------------------------------------------------------
    def install_cilium(self, cfg: CiliumConfig) -> None:
        """Create what the chart creates (ConfigMap, DaemonSet, operator, CiliumNodes, CRDs) and start the
        agents' rollout: each becomes ready within ``ready_delay_s``."""
        with self.lock:
            if self.cilium is not None:
                self._uninstall_cilium()
            self.cilium = cfg
            ver = "v" + ".".join(str(x) for x in cfg.version_tuple)
            self._put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "cilium-config", "namespace": CILIUM_NS}, "data": dict(cfg.data)})
            self._put("secrets", helm_release.release_secret(cfg, CILIUM_NS, ob.now_rfc3339()))
            for plural in ("ciliumnodes", "ciliumendpoints", "ciliumidentities", "ciliumnetworkpolicies",
                           "ciliumclusterwidenetworkpolicies"):
                res = BY_KEY[f"cilium.io/{plural}"]
                self._put("apiextensions.k8s.io/customresourcedefinitions", {
                    "metadata": {"name": f"{plural}.cilium.io", "labels": {"io.cilium/app": "operator"}},
                    "spec": {"group": "cilium.io", "names": {"kind": res.kind, "listKind": res.list_kind,
                                                             "plural": plural, "singular": res.kind.lower(),
                                                             "shortNames": list(res.short_names)},
                             "scope": "Namespaced" if res.namespaced else "Cluster",
                             "versions": [{"name": "v2", "served": True, "storage": True}]},
                    "status": {"conditions": [{"type": "Established", "status": "True"}]}})
            ds = _find(cfg.rendered, "DaemonSet", "cilium")
            if ds is None:
                labels = {"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent",
                          "app.kubernetes.io/part-of": "cilium"}
                agent = ob.container("cilium-agent", f"quay.io/cilium/cilium:{ver}", command=["cilium-agent"])
                init = [ob.container(n, f"quay.io/cilium/cilium:{ver}") for n in (
                    "config", "mount-cgroup", "apply-sysctl-overwrites", "mount-bpf-fs", "clean-cilium-state",
                    "install-cni-binaries")]
                ds = ob.daemonset("cilium", CILIUM_NS, dict(labels), {"k8s-app": "cilium"}, ob.pod_template(
                    labels, [agent], initContainers=init, hostNetwork=True, serviceAccountName="cilium",
                    priorityClassName="system-node-critical", tolerations=[{"operator": "Exists"}]))
            ds = api_normalize(clone(ds))
            ds.setdefault("metadata", {})["namespace"] = CILIUM_NS
            for key in ("ciliumnodes",):
                self.store[f"cilium.io/{key}"].clear()
            self._assign_cilium_cidrs(cfg)
            start = self.clock()
            count = len(self.nodes)
            for i, n in enumerate(self.nodes):
                frac = 0.3 + 0.7 * (i + 1) / count if count else 1.0
                self.agent_ready_at[n.name] = start + self.ready_delay_s * frac
                self._put("cilium.io/ciliumnodes", self._cilium_node(n))
            self._admit("apps/daemonsets", ds)
            self._put("apps/daemonsets", ds)
            envoy = _find(cfg.rendered, "DaemonSet", "cilium-envoy")  # the chart's, from 1.16 on by default
            if envoy is not None:
                envoy = api_normalize(clone(envoy))
                envoy.setdefault("metadata", {})["namespace"] = CILIUM_NS
                self._admit("apps/daemonsets", envoy)
                self._put("apps/daemonsets", envoy)
            op = _find(cfg.rendered, "Deployment", "cilium-operator")
            if op is None:
                op_labels = {"io.cilium/app": "operator", "name": "cilium-operator",
                             "app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": "cilium-operator"}
                op = ob.deployment("cilium-operator", CILIUM_NS, dict(op_labels),
                                   {"io.cilium/app": "operator", "name": "cilium-operator"}, cfg.operator_replicas,
                                   ob.pod_template(op_labels, [ob.container(
                                       "cilium-operator", f"quay.io/cilium/operator-generic:{ver}")],
                                       hostNetwork=True, tolerations=[{"operator": "Exists"}],
                                       serviceAccountName="cilium-operator"))
            op = api_normalize(clone(op))
            op.setdefault("metadata", {})["namespace"] = CILIUM_NS
            self._admit("apps/deployments", op)
            self._put("apps/deployments", op)
            self._changed()
            self.tick()

    def uninstall_cilium(self) -> None:
        """Remove what ``install_cilium`` created (``helm uninstall``): agents go, nodes keep their CNI config."""
        with self.lock:
            self._uninstall_cilium()
            self.cilium = None
            self._changed()
            self.tick()

    def _uninstall_cilium(self) -> None:
        for key, ns, name in (("apps/daemonsets", CILIUM_NS, "cilium"), ("apps/daemonsets", CILIUM_NS, "cilium-envoy"),
                              ("apps/deployments", CILIUM_NS, "cilium-operator"),
                              ("configmaps", CILIUM_NS, "cilium-config"),
                              ("secrets", CILIUM_NS, f"sh.helm.release.v1.{helm_release.RELEASE_NAME}.v1")):
            obj = self.store[key].pop((ns, name), None)
            if obj:
                self._on_delete(key, obj)
        self.store["cilium.io/ciliumnodes"].clear()
        self.agent_ready_at.clear()

    def _assign_cilium_cidrs(self, cfg: CiliumConfig) -> None:
        """kubernetes IPAM uses the Node's podCIDRs; cluster-pool has the operator carve the pool."""
        pools: dict[int, list[IPNet]] = {}
        if cfg.ipam != "kubernetes":
            for fam in cfg.families:
                nets, mask = cfg.cluster_pool(fam)
                subnets: list[IPNet] = []
                for net in nets:
                    subnets += list(itertools.islice(net.subnets(new_prefix=max(mask, net.prefixlen)),
                                                     len(self.nodes) - len(subnets)))
                pools[fam] = subnets
        for i, n in enumerate(self.nodes):
            if cfg.ipam == "kubernetes":
                n.cilium_cidrs = [c for c in n.k8s_cidrs if ipaddress.ip_network(c).version in cfg.families]
            else:
                n.cilium_cidrs = [str(pools[f][i]) for f in cfg.families if i < len(pools.get(f, []))]
            ips = self._pod_ips(n) if n.cilium_cidrs else []
            n.router_ips = ips
            n.health_ips = self._pod_ips(n) if n.cilium_cidrs else []

    def _cilium_node(self, n: SimNode) -> dict[str, Any]:
        node_obj = self.store["nodes"][("", n.name)]
        addresses = [{"ip": ip, "type": "InternalIP"} for ip in n.ips]
        addresses += [{"ip": ip, "type": "CiliumInternalIP"} for ip in n.router_ips]
        health = {("ipv6" if ":" in ip else "ipv4"): ip for ip in n.health_ips}
        return {"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {
            "name": n.name, "labels": dict(node_obj["metadata"]["labels"]),
            "ownerReferences": [ob.owner_ref("v1", "Node", node_obj, controller=False)]},
            "spec": {"addresses": addresses, "alibaba-cloud": {}, "azure": {}, "encryption": {}, "eni": {},
                     "health": health, "ingress": {}, "ipam": {"podCIDRs": list(n.cilium_cidrs), "pools": {}}},
            "status": {"alibaba-cloud": {}, "azure": {}, "eni": {}, "ipam": {"operator-status": {}}}}

    def agent_pod(self, node: str) -> dict[str, Any] | None:
        for (ns, name), rt in self.runtime.items():
            if rt.agent and rt.node == node:
                return self.store["pods"].get((ns, name))
        return None

    def agent_nodes(self) -> set[str]:
        """Nodes that run an agent pod (one pass, for per-exec views on large clusters)."""
        return {rt.node for rt in self.runtime.values() if rt.agent and rt.node}

    def pod_runtime(self, namespace: str, name: str) -> PodRuntime | None:
        return self.runtime.get((namespace, name))


# -- helpers ---------------------------------------------------------------------------------------------------


def _find(objs: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for o in objs:
        if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name:
            return dict(o)
    return None


def _tolerates(spec: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    for t in spec.get("tolerations") or []:
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == taint.get("key") and (not t.get("effect") or t.get("effect") == taint.get("effect")):
            return True
    return False


def _node_fits(spec: Mapping[str, Any], node: Mapping[str, Any], *, daemon: bool) -> bool:
    labels = node["metadata"].get("labels") or {}
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(spec, taint):
            return False
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    node_aff = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = node_aff.get("nodeSelectorTerms") or []
    if terms:
        def term_ok(term: Mapping[str, Any]) -> bool:
            for expr in term.get("matchExpressions") or []:
                if not _expr_ok(expr, labels):
                    return False
            for expr in term.get("matchFields") or []:
                if not _expr_ok(expr, {"metadata.name": node["metadata"]["name"]}):
                    return False
            return True

        if not any(term_ok(t) for t in terms):
            return False
    return True


def _expr_ok(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = str(expr.get("key")), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return True


def _is_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _slice_port(port: Mapping[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    target = port.get("targetPort", port.get("port"))
    number = target
    if isinstance(target, str) and not target.isdigit():
        number = None
        for p in pods:
            for c in p["spec"].get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == target:
                        number = cp.get("containerPort")
        if number is None:
            number = port.get("port")
    out: dict[str, Any] = {"port": int(number), "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        out["name"] = port["name"]
    return out


def _pod_status(pod: Mapping[str, Any], rt: PodRuntime, node: SimNode | None, ready: bool,
                crashing: bool) -> dict[str, Any]:
    spec = pod["spec"]
    created = pod["metadata"]["creationTimestamp"]
    status: dict[str, Any] = {"qosClass": "BestEffort"}
    if node is None:
        status["phase"] = "Pending"
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/0 nodes are available: no node matches the pod's scheduling "
                                            "constraints.", "lastTransitionTime": created}]
        return status
    started = rt.started_at is not None
    status["hostIP"] = node.ips[0]
    status["hostIPs"] = [{"ip": ip} for ip in node.ips]
    status["startTime"] = created
    if started:
        status["phase"] = "Running"
        status["podIP"] = rt.ips[0]
        status["podIPs"] = [{"ip": ip} for ip in rt.ips]
    else:
        status["phase"] = "Pending"

    def cond(kind: str, ok: bool) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": created}

    status["conditions"] = [cond("PodReadyToStartContainers", started), cond("Initialized", started),
                            cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", True)]
    statuses = []
    for c in spec.get("containers") or []:
        cs: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                              "ready": ready, "restartCount": 0, "started": started}
        if not started:
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        elif crashing:
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off 5m0s restarting failed "
                                       f"container={c['name']} pod={pod['metadata']['name']}"}}
            cs["restartCount"] = 7
            cs["started"] = False
            cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": created,
                                              "finishedAt": created}}
        else:
            cs["state"] = {"running": {"startedAt": created}}
            cs["containerID"] = "containerd://" + pod["metadata"]["uid"].replace("-", "")[:32] * 2
        statuses.append(cs)
    status["containerStatuses"] = statuses
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": started, "restartCount": 0,
             "started": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": created,
                                                        "finishedAt": created}} if started else
             {"waiting": {"reason": "PodInitializing"}}}
            for c in spec["initContainers"]]
    return status


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out
