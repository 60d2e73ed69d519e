"""``LabSpec``: what lab to build, validated up front so nothing is created from a spec that cannot work.

A spec is frozen (attrs) and round-trips through YAML (``lab.yaml``). Loading refuses unknown keys and names the
closest known one, because a typo such as ``wokers: 3`` silently giving a 2-worker lab is the worst outcome.
Every validation error is a ``SpecError`` that names the field and says how to fix it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import attr
import attrs
import yaml

from ._files import InputError, read_text, require_content
from .errors import SpecError

DEFAULT_CILIUM_VERSION = "1.20.0"
"""Current stable Cilium (cilium-cli moved its default to v1.20.0 in August 2026)."""
DEFAULT_K8S_VERSION = "1.33.1"
"""A Kubernetes release with a published kindest/node image and pkgs.k8s.io packages."""

Routing = Literal["tunnel", "native"]
TunnelProtocol = Literal["vxlan", "geneve"]
IPFamily = Literal["ipv4", "ipv6", "dual"]
Installer = Literal["helm", "cilium-cli"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-[0-9A-Za-z.-]+)?$")

DEFAULT_POD_CIDRS = {"ipv4": "10.244.0.0/16", "ipv6": "fd00:10:244::/56"}
DEFAULT_SERVICE_CIDRS = {"ipv4": "10.96.0.0/16", "ipv6": "fd00:10:96::/112"}


def parse_version(value: str, field: str) -> tuple[int, int, int]:
    """``"1.16.3"``/``"v1.16"`` -> ``(1, 16, 3)``; anything else is a ``SpecError`` naming ``field``."""
    m = _VERSION.match(str(value).strip())
    if not m:
        raise SpecError(field, f"{value!r} is not a version", fix="write it as MAJOR.MINOR.PATCH, e.g. 1.20.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _families(ip_family: str) -> list[int]:
    return {"ipv4": [4], "ipv6": [6], "dual": [4, 6]}[ip_family]


def _default_cidrs(table: dict[str, str], ip_family: str) -> tuple[str, ...]:
    return tuple(table["ipv4" if f == 4 else "ipv6"] for f in _families(ip_family))


@attrs.frozen(kw_only=True)
class KindOptions:
    """``kind`` backend section."""

    node_image: str | None = None
    """kindest/node image; default ``kindest/node:v<k8s_version>``."""
    cilium_image: str | None = None
    """A locally built agent image (``my/cilium:dev``) to load into the nodes instead of the release image."""
    extra_config: dict[str, Any] = attrs.field(factory=dict)
    """Merged into the rendered kind Cluster config (kind.x-k8s.io/v1alpha4)."""
    preload_images: bool = True
    """Pull Cilium's images once on the host and ``kind load`` them, instead of every node pulling."""
    reuse_cluster: bool = False
    """Adopt an existing kind cluster of the lab's name instead of refusing to touch it."""


@attrs.frozen(kw_only=True)
class VagrantOptions:
    """``vagrant`` backend section."""

    box: str = "generic/debian12"
    """Vagrant box every node boots (a libvirt box)."""
    box_url: str | None = None
    """A local ``.box`` file or URL, for boxes not on Vagrant Cloud."""
    cpus: int = 2
    """vCPUs per VM."""
    memory_mb: int = 2048
    """Memory per VM, in MiB."""
    driver: Literal["kvm", "qemu"] = "kvm"
    """``qemu`` for software emulation where /dev/kvm is not usable."""
    provision: bool = True
    """Run ``bootstrap/`` (kubeadm) in the VMs; off for bare VMs (the project's own tests)."""
    kernel: str | None = None
    """Host path of a kernel to boot directly (boxes without a bootloader, e.g. a locally built one)."""
    initrd: str | None = None
    """Host path of the initrd that goes with ``kernel`` (optional)."""
    kernel_cmdline: str | None = None
    """Kernel command line with ``kernel``; default ``root=/dev/vda rw console=ttyS0 net.ifnames=0``."""
    boot_timeout: int = 0
    """Seconds Vagrant waits for SSH; 0 picks 300 for kvm and 900 for qemu (software emulation)."""


@attrs.frozen(kw_only=True)
class GcpOptions:
    """``gcp`` backend section."""

    project: str | None = None
    """GCP project ID the VMs are created in (required for the gcp backend)."""
    region: str = "us-central1"
    """Region of the lab's subnet."""
    zone: str = "us-central1-a"
    """Zone of the VMs."""
    machine_type: str = "e2-standard-2"
    """GCE machine type of every node."""
    image: str = "debian-cloud/debian-12"
    """Boot image of every node (``project/family``)."""
    admin_source_ranges: tuple[str, ...] = ()
    """Who may reach SSH and the API server; empty = the caller's public address as /32."""
    allow_world: bool = False
    """Must be true, in so many words, before 0.0.0.0/0 is accepted in ``admin_source_ranges``."""
    ttl_hours: float = 4.0
    """Hours until the lab counts as expired (its ``expires`` label); ``cilium-labs gc`` deletes it after that."""
    external_etcd: bool = False
    """Run etcd outside the control plane (kubeadm external etcd)."""
    labels: dict[str, str] = attrs.field(factory=dict)
    """Extra GCE labels on every resource."""


@attrs.frozen(kw_only=True)
class SimOptions:
    """``sim`` backend section."""

    exec_latency_ms: float = 150.0
    """How long each simulated ``kubectl exec`` into an agent takes, in ms."""
    faults: tuple[str, ...] = ()
    """Faults to inject once the agents are up, e.g. ``agent-down:NODE`` (the README lists them)."""
    datapath: Literal["api", "netns"] = "api"
    """``netns``: a real kernel datapath (root only): namespaces, VXLAN, routes."""


@attrs.frozen(kw_only=True)
class ExistingOptions:
    """``existing`` backend section: a cluster someone already has."""

    kubeconfig: str | None = None
    """Kubeconfig of the cluster; default ``$KUBECONFIG``, else ``~/.kube/config``."""
    context: str | None = None
    """Context in that kubeconfig; default its current context."""


@attrs.frozen(kw_only=True)
class LocalOptions:
    """``local`` backend section: real Kubernetes and Cilium programs in network namespaces of this host."""

    faults: tuple[str, ...] = ()
    """Applied once Cilium is rolled out: ``agent-stop:NODE``, ``vxlan-blocked:NODE:PEER``,
    ``route-deleted:NODE:PEER``, ``ciliumnode-deleted:NODE``."""


_SECTIONS: dict[str, type] = {
    "kind": KindOptions,
    "local": LocalOptions,
    "vagrant": VagrantOptions,
    "gcp": GcpOptions,
    "sim": SimOptions,
    "existing": ExistingOptions,
}


@attrs.frozen(kw_only=True)
class LabSpec:
    """A lab: nodes, Kubernetes, Cilium and its datapath settings, and per-backend options."""

    name: str = "cilium-lab"
    """Lab name: a DNS label of at most 40 characters; nodes, state folder and cloud resources are named after it."""
    backend: str = "kind"
    """Where the nodes run: kind, sim, vagrant, gcp, existing (or a plugin's name)."""
    control_planes: int = 1
    """Control-plane nodes (1..7)."""
    workers: int = 2
    """Worker nodes (0..100)."""
    k8s_version: str = DEFAULT_K8S_VERSION
    """Kubernetes version of the nodes."""
    cilium_version: str = DEFAULT_CILIUM_VERSION
    """Cilium release to install (quote it: "1.20.0")."""
    routing: Routing = "tunnel"
    """Cilium's routing mode: tunnel (an overlay between nodes) or native (the underlay routes pod CIDRs)."""
    tunnel_protocol: TunnelProtocol = "vxlan"
    """Encapsulation with routing: tunnel: vxlan or geneve."""
    ip_family: IPFamily = "ipv4"
    """IP families of pods and Services: ipv4, ipv6 or dual."""
    pod_cidrs: tuple[str, ...] = ()
    """Empty = the default for the IP families (10.244.0.0/16, fd00:10:244::/56)."""
    service_cidrs: tuple[str, ...] = ()
    """Empty = the default for the IP families (10.96.0.0/16, fd00:10:96::/112)."""
    node_cidr: str = "172.16.0.0/24"
    """Underlay for VM backends (the original recipe's GCE subnet); kind uses Docker's network."""
    kube_proxy_replacement: bool = False
    """Run without kube-proxy, Cilium replacing it."""
    mtu: int = 0
    """0 lets Cilium detect it."""
    installer: Installer = "helm"
    """How Cilium is installed: helm or cilium-cli."""
    chart: str | None = None
    """Chart source: None (the Cilium Helm repository), ``oci://...``, or a local chart directory/.tgz."""
    cilium_namespace: str = "kube-system"
    """Namespace Cilium is installed in."""
    helm_values: dict[str, Any] = attrs.field(factory=dict)
    """Extra Helm values, merged last over the generated ones."""
    kind: KindOptions = attrs.field(factory=KindOptions)
    vagrant: VagrantOptions = attrs.field(factory=VagrantOptions)
    gcp: GcpOptions = attrs.field(factory=GcpOptions)
    sim: SimOptions = attrs.field(factory=SimOptions)
    existing: ExistingOptions = attrs.field(factory=ExistingOptions)
    local: LocalOptions = attrs.field(factory=LocalOptions)

    def __attrs_post_init__(self) -> None:
        if not self.pod_cidrs:
            object.__setattr__(self, "pod_cidrs", _default_cidrs(DEFAULT_POD_CIDRS, self.ip_family))
        if not self.service_cidrs:
            object.__setattr__(self, "service_cidrs", _default_cidrs(DEFAULT_SERVICE_CIDRS, self.ip_family))
        _validate(self)

    # -- derived facts every layer asks for --------------------------------------------------------------
    @property
    def families(self) -> list[int]:
        """IP versions in the lab, ``[4]``, ``[6]`` or ``[4, 6]``."""
        return _families(self.ip_family)

    @property
    def node_count(self) -> int:
        return self.control_planes + self.workers

    @property
    def cilium_version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.cilium_version, "cilium_version")

    @property
    def k8s_version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.k8s_version, "k8s_version")

    def node_names(self) -> list[tuple[str, str]]:
        """``(name, role)`` per node, named the way kind names them, which every backend follows."""
        out: list[tuple[str, str]] = []
        for i in range(self.control_planes):
            out.append((f"{self.name}-control-plane{'' if i == 0 else i + 1}", "control-plane"))
        for i in range(self.workers):
            out.append((f"{self.name}-worker{'' if i == 0 else i + 1}", "worker"))
        return out

    def replace(self, **changes: Any) -> LabSpec:
        """A copy with ``changes`` applied and validated again (pod/service CIDRs re-derived if not given)."""
        data = to_dict(self)
        if "ip_family" in changes:
            data.setdefault("pod_cidrs", None)
            if "pod_cidrs" not in changes and list(self.pod_cidrs) == list(
                _default_cidrs(DEFAULT_POD_CIDRS, self.ip_family)
            ):
                data["pod_cidrs"] = []
            if "service_cidrs" not in changes and list(self.service_cidrs) == list(
                _default_cidrs(DEFAULT_SERVICE_CIDRS, self.ip_family)
            ):
                data["service_cidrs"] = []
        for key, value in changes.items():
            if key in _SECTIONS and isinstance(value, Mapping):
                data[key] = {**data.get(key, {}), **value}
            else:
                data[key] = value
        return from_dict(data)


# -- validation -------------------------------------------------------------------------------------------


def _net(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise SpecError(
            field, f"{value!r} is not a CIDR ({exc})", fix="write it as ADDRESS/PREFIX, e.g. 10.244.0.0/16"
        ) from exc


def _check_choice(spec: LabSpec, field: str, choices: tuple[str, ...]) -> None:
    value = getattr(spec, field)
    if value not in choices:
        raise SpecError(field, f"{value!r} is not one of {', '.join(choices)}", fix=f"use one of: {', '.join(choices)}")


def _validate(spec: LabSpec) -> None:
    if not isinstance(spec.name, str) or not _DNS_LABEL.match(spec.name) or len(spec.name) > 40:
        raise SpecError(
            "name",
            f"{spec.name!r} is not a DNS-1123 label of at most 40 characters",
            fix="use lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    if not _DNS_LABEL.match(spec.backend or ""):
        raise SpecError("backend", f"{spec.backend!r} is not a backend name", fix="see `cilium-labs backends`")
    for field, lo, hi in (("control_planes", 1, 7), ("workers", 0, 100)):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SpecError(field, f"{value!r} is outside {lo}..{hi}", fix=f"choose a whole number from {lo} to {hi}")
    parse_version(spec.k8s_version, "k8s_version")
    cv = parse_version(spec.cilium_version, "cilium_version")
    if cv < (1, 9, 0):
        raise SpecError("cilium_version", f"{spec.cilium_version} is older than 1.9", fix="use Cilium 1.9 or newer")
    _check_choice(spec, "routing", get_args(Routing))
    _check_choice(spec, "tunnel_protocol", get_args(TunnelProtocol))
    _check_choice(spec, "ip_family", get_args(IPFamily))
    _check_choice(spec, "installer", get_args(Installer))
    if spec.routing == "native" and spec.tunnel_protocol == "geneve":
        raise SpecError(
            "tunnel_protocol",
            "geneve is a tunnel protocol but routing is native",
            fix="use routing: tunnel with geneve, or drop tunnel_protocol for native routing",
        )
    if isinstance(spec.mtu, bool) or not isinstance(spec.mtu, int) or not (spec.mtu == 0 or 1280 <= spec.mtu <= 9000):
        raise SpecError("mtu", f"{spec.mtu!r} is not 0 (auto) or 1280..9000", fix="use 0 to let Cilium detect it")
    nets: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for field in ("pod_cidrs", "service_cidrs"):
        values = getattr(spec, field)
        if isinstance(values, str):
            values = (values,)
            object.__setattr__(spec, field, values)
        nets[field] = [_net(v, f"{field}[{i}]") for i, v in enumerate(values)]
        versions = sorted({n.version for n in nets[field]})
        if len(nets[field]) != len(versions) or versions != spec.families:
            want = " and ".join("IPv4" if f == 4 else "IPv6" for f in spec.families)
            raise SpecError(
                field,
                f"{', '.join(values)} does not match ip_family {spec.ip_family}",
                fix=f"give exactly one {want} CIDR, or leave {field} empty for the defaults",
            )
    node = _net(spec.node_cidr, "node_cidr")
    if node.version != 4:
        raise SpecError("node_cidr", f"{spec.node_cidr} is not IPv4", fix="the VM underlay is IPv4, e.g. 172.16.0.0/24")
    nets["node_cidr"] = [node]
    pod_small = [n for n in nets["pod_cidrs"] if n.prefixlen > (24 if n.version == 4 else 112)]
    if pod_small:
        raise SpecError("pod_cidrs", f"{pod_small[0]} leaves no room for a per-node /24 (or /120)", fix="use a /16")
    fields = list(nets)
    for i, a in enumerate(fields):
        for b in fields[i + 1 :]:
            for na in nets[a]:
                for nb in nets[b]:
                    if na.version == nb.version and na.overlaps(nb):
                        raise SpecError(a, f"{na} overlaps {b} {nb}", fix=f"pick a range for {a} disjoint from {b}")
    if spec.kube_proxy_replacement and cv < (1, 9, 0):
        raise SpecError("kube_proxy_replacement", "needs Cilium 1.9 or newer", fix="raise cilium_version")
    for field in ("helm_values",):
        if not isinstance(getattr(spec, field), dict):
            raise SpecError(field, "must be a mapping of Helm values", fix="e.g. helm_values: {debug: {enabled: true}}")
    _check_admin_ranges(spec)
    if spec.vagrant.driver not in ("kvm", "qemu"):
        raise SpecError("vagrant.driver", f"{spec.vagrant.driver!r} is not kvm or qemu", fix="use kvm or qemu")
    if spec.sim.datapath not in ("api", "netns"):
        raise SpecError("sim.datapath", f"{spec.sim.datapath!r} is not api or netns", fix="use api or netns")


WORLD_PREFIX = {4: 7, 6: 31}
"""Admin ranges whose union is as large as a /7 (IPv4: two /8s) or a /31 (IPv6) count as the whole internet: no
one administers a lab from that many addresses, and ``[0.0.0.0/1, 128.0.0.0/1]`` is 0.0.0.0/0 written in two
halves."""


def _check_admin_ranges(spec: LabSpec) -> None:
    nets = [_net(cidr, "gcp.admin_source_ranges") for cidr in spec.gcp.admin_source_ranges]
    if spec.gcp.allow_world:
        return
    for version, prefix in WORLD_PREFIX.items():
        ours = [n for n in nets if n.version == version]
        union = list(ipaddress.collapse_addresses(ours))  # type: ignore[type-var]
        total = sum(n.num_addresses for n in union)
        if total >= 2 ** ((32 if version == 4 else 128) - prefix):
            shown = ", ".join(str(n) for n in ours)
            raise SpecError(
                "gcp.admin_source_ranges",
                f"{shown} opens SSH and the API server to {total:,} addresses, a /{prefix} or more: "
                "that is the whole internet",
                fix="give your own address/32, or set gcp.allow_world: true if you really mean it",
            )


# -- YAML ---------------------------------------------------------------------------------------------------

T = TypeVar("T")


def _structure(cls: type[T], data: Any, prefix: str) -> T:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(prefix.rstrip(".") or "(top level)", f"expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            raise SpecError(
                f"{prefix}{key}",
                "unknown key",
                fix=f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(fields)}",
            )
        if name in _SECTIONS and cls is LabSpec:
            kwargs[name] = _structure(_SECTIONS[name], value, f"{name}.")
        elif value is None and name in ("pod_cidrs", "service_cidrs"):
            kwargs[name] = ()
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    for name, value in kwargs.items():
        default = fields[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SpecError(f"{prefix}{name}", f"{value!r} is not true or false", fix="write true or false")
        if isinstance(default, int) and not isinstance(default, bool) and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
                continue
            raise SpecError(f"{prefix}{name}", f"{value!r} is not a whole number", fix="write a number without quotes")
        if isinstance(default, str) and not isinstance(value, str):
            if name.endswith("version") and isinstance(value, (int, float)):
                raise SpecError(
                    f"{prefix}{name}",
                    f"{value!r} was read as a number, so 1.20 became 1.2",
                    fix=f'quote it: {name}: "1.20.0"',
                )
            raise SpecError(f"{prefix}{name}", f"{value!r} is not a string", fix="quote the value")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - attrs rejects a shape we did not foresee
        raise SpecError(prefix.rstrip(".") or "(top level)", str(exc)) from exc


def from_dict(data: Mapping[str, Any]) -> LabSpec:
    """Build a validated spec from plain data (YAML, JSON, CLI overrides)."""
    return _structure(LabSpec, data, "")


def to_dict(spec: Any) -> dict[str, Any]:
    """Plain data for YAML/JSON, tuples as lists."""
    data: dict[str, Any] = attr.asdict(spec, retain_collection_types=False)
    return data


SPEC_FIX = "give a lab spec YAML file; `cilium-labs spec init > lab.yaml` writes a complete one"


def load(path: str | Path) -> LabSpec:
    """Read ``lab.yaml``; a missing, empty, binary or oversized file or bad YAML is a ``SpecError`` too (one line
    each: see ``_files``)."""
    try:
        text = read_text(path, what="a lab spec (YAML)", fix=SPEC_FIX)
        require_content(text, name=str(path), what="a lab spec (YAML)", fix=SPEC_FIX)
    except InputError as exc:
        raise SpecError("(file)", exc.message, fix=exc.fix) from None
    return loads(text, source=str(path))


def loads(text: str, source: str = "<string>") -> LabSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError("(file)", f"{source} is not valid YAML{where}", fix="fix the YAML syntax") from None
    return from_dict(data or {})


def dumps(spec: LabSpec) -> str:
    """YAML for ``lab.yaml``, with a header saying what it is."""
    body = yaml.safe_dump(to_dict(spec), sort_keys=False, default_flow_style=False)
    return "# cilium-labs lab spec: `cilium-labs spec validate lab.yaml` checks it\n" + body


def dump(spec: LabSpec, path: str | Path) -> None:
    Path(path).write_text(dumps(spec))
