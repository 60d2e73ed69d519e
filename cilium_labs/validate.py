"""Everything a lab can be refused for, checked before anything is created (``Lab.up``) and by ``plan``.

``LabSpec`` checks what a spec says on its own (names, counts, CIDRs that overlap each other). Here is what needs
knowledge of Cilium's releases and of the backend: whether the Cilium version is one cilium-labs knows and the
backend supports, whether Kubernetes and Cilium go together, whether the datapath asked for exists in that
version, whether the pod and Service ranges collide with the network the backend puts its nodes on, whether the
faults can be injected, and whether the ``--set`` values contradict the spec. The first problem is raised (a
``SpecError`` or ``UsageError``: one line with a fix, exit 2); what is merely risky comes back as warnings.

Every fact below is cited to Cilium's own source or documentation, per release.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import attrs

from .errors import SpecError, UsageError
from .spec import DEFAULT_POD_CIDRS, DEFAULT_SERVICE_CIDRS, LabSpec, parse_version

Minor = tuple[int, int]
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class CiliumMinor:
    """What cilium-labs knows of one Cilium minor release."""

    newest_patch: int
    """The newest patch release cilium-labs has seen (a newer one is a warning: it may have come out since)."""
    k8s_tested: tuple[Minor, Minor]
    """First and last Kubernetes minor in the release's ``Documentation/network/kubernetes/requirements.rst``:
    "All Kubernetes versions listed are e2e tested and guaranteed to be compatible with this Cilium version. Older
    Kubernetes versions not listed here do not have Cilium support. Newer Kubernetes versions, while not listed,
    will depend on the backward compatibility offered by Kubernetes." (the same words in every release below)."""


CILIUM: dict[Minor, CiliumMinor] = {
    # newest patch: the Go module versions in the local module cache, the release table of README.rst in v1.20.0
    # (v1.17.17, 2026-06-16), the charts in ../shared/charts (1.18.12), cilium-cli's history (1.19.6, Jul 2026).
    # Kubernetes: requirements.rst of v1.13.18, v1.14.19, v1.16.19, v1.17.6, v1.18.11, v1.19.4, v1.20.0 (module
    # cache); v1.15 from the v1.15 branch's requirements.rst (the 1.15 docs' compatibility page says the same).
    (1, 13): CiliumMinor(18, ((1, 16), (1, 26))),
    (1, 14): CiliumMinor(19, ((1, 19), (1, 27))),
    (1, 15): CiliumMinor(19, ((1, 26), (1, 29))),
    (1, 16): CiliumMinor(19, ((1, 27), (1, 30))),
    (1, 17): CiliumMinor(17, ((1, 29), (1, 32))),
    (1, 18): CiliumMinor(12, ((1, 30), (1, 33))),
    (1, 19): CiliumMinor(6, ((1, 31), (1, 34))),
    (1, 20): CiliumMinor(2, ((1, 33), (1, 36))),
}

SUPPORTED: dict[str, tuple[Minor, Minor]] = {
    "kind": ((1, 13), (1, 20)),
    "vagrant": ((1, 13), (1, 20)),
    "gcp": ((1, 13), (1, 20)),
    "existing": ((1, 13), (1, 20)),
    "sim": ((1, 13), (1, 20)),
    # the releases whose agent builds from the Go module proxy as released (cilium_labs/local/components.py)
    "local": ((1, 19), (1, 19)),
}
"""Cilium minors per backend. 1.13 is the oldest release whose chart (``../shared/charts/cilium-1.13.18.tgz``) and
source (module cache) the values, the checks and the simulator's outputs are checked against; older agents print
formats the parsers read, but nothing here installs them faithfully. Backends from plugins get ``DEFAULT``."""
DEFAULT_SUPPORTED: tuple[Minor, Minor] = ((1, 13), (1, 20))

IPV6_UNDERLAY_SINCE = (1, 18, 0)
"""Tunnelling over IPv6 (``underlay-protocol: ipv6``, Helm ``underlayProtocol``) exists from 1.18: the flag is
registered in v1.18.11 ``pkg/datapath/tunnel/tunnel.go`` (absent from v1.17.6), the chart has ``underlayProtocol``
from 1.18, and v1.17.6 ``Documentation/network/concepts/routing.rst`` says "The underlying network must support
IPv4" for encapsulation (1.18: "If using an IPv6 underlay, the cluster must be IPv6-only")."""

KIND_NODE_NETWORKS = (ipaddress.ip_network("172.18.0.0/16"), ipaddress.ip_network("fc00:f853:ccd:e793::/64"))
"""The Docker network ``kind`` puts nodes on. IPv4: Docker gives it the first free /16 of its default pools after
docker0's 172.17.0.0/16. IPv6: kind's ``generateULASubnetFromName("kind", 0)``
(pkg/cluster/internal/providers/docker/network.go: fc00::/8 plus bytes 2-7 of sha1("kind" + attempt 0))."""


def fmt(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"


def supported_minors(backend: str) -> tuple[Minor, Minor]:
    return SUPPORTED.get(backend, DEFAULT_SUPPORTED)


def kubernetes_table() -> list[dict[str, str]]:
    """Per Cilium minor: the newest known patch and the Kubernetes versions its requirements list."""
    return [
        {
            "cilium": fmt(minor),
            "newest_patch": f"{fmt(minor)}.{info.newest_patch}",
            "kubernetes": f"{fmt(info.k8s_tested[0])} to {fmt(info.k8s_tested[1])}",
        }
        for minor, info in sorted(CILIUM.items())
    ]


Warn = Callable[[str], None]


def validate(spec: LabSpec, backend: Any = None, *, warn: Warn | None = None) -> list[str]:
    """Refuse ``spec`` on ``backend`` (its name is ``spec.backend`` when not given) for the first problem found
    (``SpecError``/``UsageError``: nothing has been created); return the warnings, also handed to ``warn``.

    With a backend object the Helm values are built as the installer would build them, so a ``--set`` that
    contradicts the spec is refused here and not after the cluster exists.
    """
    name = getattr(backend, "name", None) or spec.backend
    warnings: list[str] = []
    if name == "local":
        spec = _local_versions(spec)
    _cilium_version(spec, name, warnings)
    _kubernetes(spec, name, warnings)
    _datapath(spec, name)
    _node_networks(spec, name)
    _faults(spec, name)
    _values(spec, backend)
    for text in warnings:
        if warn is not None:
            warn(f"warning: {text}")
    return warnings


# -- versions -------------------------------------------------------------------------------------------------


def _local_versions(spec: LabSpec) -> LabSpec:
    """A local lab runs exactly what ``cilium-labs local build`` built: the Cilium releases the Go proxy serves as
    released, and Kubernetes 1.36.3; an unset ``k8s_version`` (the kind default) means the built one."""
    from .local import components
    from .spec import DEFAULT_K8S_VERSION

    if spec.cilium_version not in components.CILIUM:
        raise SpecError(
            "cilium_version",
            f"the local backend runs Cilium built from the Go module proxy as released, and {spec.cilium_version} "
            "cannot be (docs/local.md says which can)",
            fix=f"use --cilium-version {' or '.join(sorted(components.CILIUM))}",
        )
    if spec.k8s_version == DEFAULT_K8S_VERSION:
        return spec.replace(k8s_version=components.KUBERNETES_VERSION)
    if spec.k8s_version != components.KUBERNETES_VERSION:
        raise SpecError(
            "k8s_version",
            f"the local backend runs Kubernetes {components.KUBERNETES_VERSION}, not {spec.k8s_version}",
            fix="drop --k8s-version (or set it to " + components.KUBERNETES_VERSION + ")",
        )
    return spec


def _cilium_version(spec: LabSpec, backend: str, warnings: list[str]) -> None:
    version = parse_version(spec.cilium_version, "cilium_version")
    minor = version[:2]
    newest = max(CILIUM)
    lo, hi = supported_minors(backend)
    if minor > newest:
        raise SpecError(
            "cilium_version",
            f"{spec.cilium_version} is not a Cilium release cilium-labs knows (the newest it knows is "
            f"{fmt(newest)}.{CILIUM[newest].newest_patch})",
            fix=f"use a release from {fmt(lo)} to {fmt(hi)}, e.g. {fmt(hi)}.{CILIUM[hi].newest_patch}",
        )
    if not lo <= minor <= hi:
        raise SpecError(
            "cilium_version",
            f"Cilium {fmt(minor)} is not supported on the {backend} backend (it supports {fmt(lo)} to {fmt(hi)})",
            fix=f"use Cilium {fmt(lo)} or newer, e.g. {fmt(hi)}.{CILIUM[hi].newest_patch}; "
            "see `cilium-labs backends`",
        )
    known = CILIUM[minor]
    if version[2] > known.newest_patch:
        warnings.append(
            f"Cilium {spec.cilium_version} is newer than the newest {fmt(minor)} release cilium-labs knows "
            f"({fmt(minor)}.{known.newest_patch}); fine if it has been released since"
        )


def _kubernetes(spec: LabSpec, backend: str, warnings: list[str]) -> None:
    if backend == "existing":
        return  # the cluster is what it is: k8s_version in the spec says nothing about it
    k8s = parse_version(spec.k8s_version, "k8s_version")[:2]
    minor = spec.cilium_version_tuple[:2]
    first, last = CILIUM[minor].k8s_tested
    listed = f"the Kubernetes versions Cilium {fmt(minor)}'s requirements list ({fmt(first)} to {fmt(last)})"
    if k8s[0] != 1:
        raise SpecError("k8s_version", f"{spec.k8s_version} is not a Kubernetes 1.x version", fix="e.g. 1.33.1")
    if k8s < first:
        able = [m for m, info in sorted(CILIUM.items()) if info.k8s_tested[0] <= k8s <= info.k8s_tested[1]]
        other = f", or Cilium {fmt(able[-1])}, which lists Kubernetes {fmt(k8s)}" if able else ""
        raise SpecError(
            "k8s_version",
            f"Kubernetes {fmt(k8s)} is older than {listed}, and older versions \"do not have Cilium support\" "
            "(Documentation/network/kubernetes/requirements.rst)",
            fix=f"use Kubernetes {fmt(first)} to {fmt(last)}{other}",
        )
    if k8s > last:
        warnings.append(
            f"Kubernetes {fmt(k8s)} is newer than {listed}: it \"will depend on the backward compatibility offered "
            "by Kubernetes\" (Documentation/network/kubernetes/requirements.rst)"
        )


# -- datapath -------------------------------------------------------------------------------------------------


def _datapath(spec: LabSpec, backend: str) -> None:
    if spec.ip_family == "ipv6" and spec.routing == "tunnel" and spec.cilium_version_tuple < IPV6_UNDERLAY_SINCE:
        raise SpecError(
            "ip_family",
            f"IPv6-only with tunnel routing needs Cilium 1.18 or newer: Cilium {spec.cilium_version} tunnels over "
            "IPv4 only (underlay-protocol: ipv6 arrived in 1.18)",
            fix="use cilium_version 1.18 or newer, routing: native, or ip_family: dual",
        )
    if backend == "sim" and spec.sim.datapath == "netns" and 4 not in spec.families:
        raise SpecError(
            "ip_family",
            "the sim backend's netns datapath builds an IPv4 underlay; an IPv6-only lab has no IPv4 node address",
            fix="use ip_family: dual (or ipv4), or sim.datapath: api",
        )


def node_networks(spec: LabSpec, backend: str) -> list[tuple[Net, str]]:
    """The networks the backend puts nodes on besides ``node_cidr`` (which ``LabSpec`` already keeps apart from
    the pod and Service ranges), with where each comes from."""
    if backend == "sim":
        from .sim.model import NODE_NET4, NODE_NET6

        return [(NODE_NET4, "the simulator's node network"), (NODE_NET6, "the simulator's node network")]
    if backend == "kind":
        return [(net, "kind's Docker network") for net in KIND_NODE_NETWORKS]
    if backend == "vagrant":
        from .backends.vagrant import MANAGEMENT_NETWORK

        return [(MANAGEMENT_NETWORK, "vagrant-libvirt's management network")]
    return []


def _node_networks(spec: LabSpec, backend: str) -> None:
    """Pod and Service ranges must not overlap the node network: routes to pods would swallow node addresses."""
    for field, defaults in (("pod_cidrs", DEFAULT_POD_CIDRS), ("service_cidrs", DEFAULT_SERVICE_CIDRS)):
        for cidr in getattr(spec, field):
            net = ipaddress.ip_network(cidr)
            for node_net, what in node_networks(spec, backend):
                if net.version == node_net.version and net.overlaps(node_net):
                    default = defaults[f"ipv{net.version}"]
                    raise SpecError(
                        field,
                        f"{net} overlaps {node_net}, {what} on the {backend} backend",
                        fix=f"pick a range disjoint from {node_net}, e.g. the default {default}",
                    )


# -- faults and values ------------------------------------------------------------------------------------------


def _faults(spec: LabSpec, backend: str) -> None:
    if spec.local.faults:
        if backend != "local":
            raise UsageError(f"faults ({', '.join(spec.local.faults)}) in local.faults need the local backend",
                             fix="drop them, or use --backend local")
        from .local.faults import parse

        for local_fault in spec.local.faults:
            parse(local_fault, [n for n, _ in spec.node_names()])
    if not spec.sim.faults:
        return
    if backend != "sim":
        raise UsageError(
            f"faults ({', '.join(spec.sim.faults)}) can only be injected on the sim backend, not {backend}",
            fix="drop --fault, or use --backend sim",
        )
    from .sim.datapath_faults import KINDS as NETNS_KINDS
    from .sim.faults import parse_faults

    names = [n for n, _ in spec.node_names()]
    for fault in parse_faults(spec.sim.faults, names):
        if spec.sim.datapath != "netns" and fault.kind in NETNS_KINDS - {"tunnel-missing"}:
            raise UsageError(
                f"fault {fault} needs the netns datapath (a real kernel datapath); this lab's is {spec.sim.datapath}",
                fix="add --datapath netns (root), or drop the fault",
            )


def _values(spec: LabSpec, backend: Any) -> None:
    """The Helm values as ``install`` would build them: a ``--set`` that contradicts the spec fails here."""
    if backend is None:
        from .cilium.values import check_user_values

        check_user_values(spec, spec.helm_values)
        return
    from .cilium import install as installer

    installer.values_for(spec, backend, for_plan=True)
