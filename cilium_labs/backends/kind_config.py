"""The kind cluster config for a lab, rendered from ``kind-configs/cluster.yaml`` and checked against kind's types.

kind silently ignores nothing but reports config errors only once it has started pulling and creating nodes, and
an unknown key in YAML (``disableDefaultCni``) is simply dropped by its decoder in older releases. Every key of
the rendered config, including what the user passes in ``kind.extra_config``, is therefore checked here against
kind's own ``pkg/apis/config/v1alpha4/types.go`` (field names from the struct tags; enums from the constants and
``pkg/internal/apis/config/validate.go``), before anything runs.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .._merge import deep_merge
from ..assets import asset
from ..errors import SpecError
from ..spec import LabSpec

API_VERSION = "kind.x-k8s.io/v1alpha4"

# -- kind v1alpha4 schema ---------------------------------------------------------------------------------------
# A field is a type: str/int/bool, ("enum", values), ("list", item), ("map", value type) or a nested dict schema.

_PATCH_JSON6902: dict[str, Any] = {"group": str, "version": str, "kind": str, "patch": str}
_MOUNT: dict[str, Any] = {
    "containerPath": str,
    "hostPath": str,
    "readOnly": bool,
    "selinuxRelabel": bool,
    "propagation": ("enum", ("None", "HostToContainer", "Bidirectional")),
}
_PORT_MAPPING: dict[str, Any] = {
    "containerPort": int,
    "hostPort": int,
    "listenAddress": str,
    "protocol": ("enum", ("TCP", "UDP", "SCTP")),
}
NODE_SCHEMA: dict[str, Any] = {
    "role": ("enum", ("control-plane", "worker")),
    "image": str,
    "labels": ("map", str),
    "extraMounts": ("list", _MOUNT),
    "extraPortMappings": ("list", _PORT_MAPPING),
    "gpus": str,
    "kubeadmConfigPatches": ("list", str),
    "kubeadmConfigPatchesJSON6902": ("list", _PATCH_JSON6902),
}
NETWORKING_SCHEMA: dict[str, Any] = {
    "ipFamily": ("enum", ("ipv4", "ipv6", "dual")),
    "apiServerPort": int,
    "apiServerAddress": str,
    "podSubnet": str,
    "serviceSubnet": str,
    "disableDefaultCNI": bool,
    "kubeProxyMode": ("enum", ("iptables", "ipvs", "nftables", "none")),
    "dnsSearch": ("list", str),
}
CLUSTER_SCHEMA: dict[str, Any] = {
    "kind": ("enum", ("Cluster",)),
    "apiVersion": ("enum", (API_VERSION,)),
    "name": str,
    "nodes": ("list", NODE_SCHEMA),
    "networking": NETWORKING_SCHEMA,
    "featureGates": ("map", bool),
    "runtimeConfig": ("map", str),
    "kubeadmConfigPatches": ("list", str),
    "kubeadmConfigPatchesJSON6902": ("list", _PATCH_JSON6902),
    "containerdConfigPatches": ("list", str),
    "containerdConfigPatchesJSON6902": ("list", str),
}


def _type_name(t: Any) -> str:
    if t is str:
        return "a string"
    if t is int:
        return "a whole number"
    if t is bool:
        return "true or false"
    if isinstance(t, dict):
        return "a mapping"
    if t[0] == "enum":
        return "one of " + ", ".join(t[1])
    if t[0] == "list":
        return "a list"
    return "a mapping"


def validate(value: Any, schema: Any = None, path: str = "kind.extra_config") -> None:
    """Raise ``SpecError`` naming the first key or value that kind's v1alpha4 types do not accept."""
    schema = CLUSTER_SCHEMA if schema is None else schema
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            raise SpecError(path, f"{value!r} is not a mapping", fix="write it as key: value pairs")
        for key, sub in value.items():
            if key not in schema:
                close = difflib.get_close_matches(str(key), list(schema), n=1)
                where = path.rsplit(".", 1)[-1] if "." in path else path
                raise SpecError(
                    f"{path}.{key}",
                    f"kind {API_VERSION} has no field {key!r} in {where}",
                    fix=f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(schema)}",
                )
            validate(sub, schema[key], f"{path}.{key}")
        return
    if schema in (str, int, bool):
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        if not ok:
            raise SpecError(path, f"{value!r} is not {_type_name(schema)}", fix=f"write {_type_name(schema)}")
        return
    kind, arg = schema
    if kind == "enum":
        if value not in arg:
            raise SpecError(path, f"{value!r} is not {_type_name(schema)}", fix=f"use {_type_name(schema)}")
    elif kind == "list":
        if not isinstance(value, list):
            raise SpecError(path, f"{value!r} is not a list", fix="write it as a YAML list")
        for i, item in enumerate(value):
            validate(item, arg, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(value, Mapping):
            raise SpecError(path, f"{value!r} is not a mapping", fix="write it as key: value pairs")
        for key, item in value.items():
            validate(item, arg, f"{path}.{key}")


# -- node images and kind versions --------------------------------------------------------------------------
# Kubernetes versions with a kindest/node image published with a kind release, from the release notes as
# collected in kubernetes-sigs/cluster-api test/infrastructure/kind/mapper.go (newest kind first). The first entry
# of each release is its default image. kind supports images built for its own release (best effort otherwise).
KIND_RELEASE_IMAGES: dict[tuple[int, int, int], tuple[str, ...]] = {
    (0, 33, 0): ("1.37.0", "1.36.4", "1.35.8", "1.34.11"),
    (0, 32, 0): ("1.36.1", "1.35.5", "1.34.8", "1.33.12"),
    (0, 31, 0): ("1.35.0", "1.34.3", "1.33.7", "1.32.11", "1.31.14"),
    (0, 30, 0): ("1.34.0", "1.33.4", "1.32.8", "1.31.12"),
    (0, 29, 0): ("1.33.1", "1.32.5", "1.31.9", "1.30.13"),
    (0, 27, 0): ("1.32.2", "1.33.0", "1.31.6", "1.30.10", "1.29.14"),
    (0, 26, 0): ("1.32.0", "1.31.4", "1.30.8", "1.29.12"),
    (0, 25, 0): ("1.31.2", "1.32.0", "1.30.6", "1.29.10", "1.28.15", "1.27.16", "1.26.15"),
    (0, 24, 0): ("1.31.0", "1.30.4", "1.30.3", "1.29.8", "1.29.7", "1.28.13", "1.28.12", "1.27.17", "1.26.15"),
    (0, 23, 0): ("1.30.0", "1.29.4", "1.28.9", "1.27.13", "1.26.15", "1.25.16"),
    (0, 22, 0): ("1.29.2", "1.29.1", "1.28.7", "1.28.6", "1.27.11", "1.27.10", "1.26.14", "1.26.13", "1.25.16"),
    (0, 21, 0): ("1.29.1", "1.28.6", "1.27.10", "1.26.13", "1.25.16", "1.24.17", "1.23.17"),
    (0, 20, 0): ("1.27.3", "1.29.0", "1.28.0", "1.26.6", "1.25.11", "1.24.15", "1.23.17", "1.22.17", "1.21.14"),
    (0, 19, 0): ("1.27.1", "1.26.4", "1.25.9", "1.24.13", "1.23.17", "1.22.17", "1.21.14"),
    (0, 18, 0): ("1.26.3", "1.27.1", "1.27.0", "1.25.8", "1.24.12", "1.23.17", "1.22.17", "1.21.14"),
    (0, 17, 0): ("1.25.3", "1.26.0", "1.24.7", "1.23.13", "1.22.15", "1.21.14", "1.20.15", "1.19.16"),
}


def _v(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(".")]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else 0


def min_kind_for(k8s: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The oldest kind release that published a node image for ``k8s``'s minor version, or None if none did."""
    found = [kv for kv, images in KIND_RELEASE_IMAGES.items() if any(_v(i)[:2] == k8s[:2] for i in images)]
    return min(found) if found else None


def published_patches(k8s: tuple[int, int, int]) -> list[str]:
    """Published kindest/node versions of ``k8s``'s minor, newest first."""
    seen = {i for images in KIND_RELEASE_IMAGES.values() for i in images if _v(i)[:2] == k8s[:2]}
    return sorted(seen, key=_v, reverse=True)


def default_image_k8s(kind_version: tuple[int, int, int]) -> str | None:
    """The Kubernetes version of the default node image of ``kind_version`` (the newest release not after it)."""
    older = [kv for kv in KIND_RELEASE_IMAGES if kv <= kind_version]
    return KIND_RELEASE_IMAGES[max(older)][0] if older else None


_KIND_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)")


def parse_kind_version(output: str) -> tuple[int, int, int] | None:
    """``kind v0.29.0 go1.24.2 linux/amd64`` (or just ``0.29.0`` with ``-q``) -> ``(0, 29, 0)``."""
    m = _KIND_VERSION.search(output.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


_IMAGE_TAG = re.compile(r":v(\d+)\.(\d+)\.(\d+)(?:@|$)")


def image_k8s_version(image: str) -> tuple[int, int, int] | None:
    """``kindest/node:v1.33.1@sha256:...`` -> ``(1, 33, 1)``; None for a tag that is not a version."""
    m = _IMAGE_TAG.search(image)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def node_image(spec: LabSpec) -> str:
    return spec.kind.node_image or f"kindest/node:v{spec.k8s_version.lstrip('v')}"


# -- rendering ------------------------------------------------------------------------------------------------


def _subnets(cidrs: tuple[str, ...]) -> str:
    """kind wants dual-stack subnets comma-joined, IPv4 first."""
    nets = sorted((ipaddress.ip_network(c) for c in cidrs), key=lambda n: n.version)
    return ",".join(str(n) for n in nets)


def _check_service_cidrs(spec: LabSpec) -> None:
    for cidr in spec.service_cidrs:
        net = ipaddress.ip_network(cidr)
        limit = 12 if net.version == 4 else 108
        if net.prefixlen < limit:
            raise SpecError(
                "service_cidrs",
                f"{net} is larger than kube-apiserver accepts for a service range (/{limit} at most)",
                fix=f"use /{limit} or smaller, e.g. {'10.96.0.0/16' if net.version == 4 else 'fd00:10:96::/112'}",
            )


def _check_extra(spec: LabSpec, extra: Mapping[str, Any]) -> None:
    """Refuse extra config that contradicts the spec (which also drives the Cilium values)."""
    validate(dict(extra))
    net = extra.get("networking") or {}
    if net.get("disableDefaultCNI") is False:
        raise SpecError(
            "kind.extra_config.networking.disableDefaultCNI",
            "false would install kindnet next to Cilium",
            fix="drop it: Cilium is the lab's CNI",
        )
    if "kubeProxyMode" in net:
        mode = net["kubeProxyMode"]
        if spec.kube_proxy_replacement and mode != "none":
            raise SpecError(
                "kind.extra_config.networking.kubeProxyMode",
                f"{mode!r} runs kube-proxy, but kube_proxy_replacement is on",
                fix="drop it (the lab sets none), or set kube_proxy_replacement: false",
            )
        if not spec.kube_proxy_replacement and mode == "none":
            raise SpecError(
                "kind.extra_config.networking.kubeProxyMode",
                "none removes kube-proxy, but kube_proxy_replacement is off, so Services would not work",
                fix="set kube_proxy_replacement: true in the spec instead",
            )
    for key, want in (
        ("ipFamily", spec.ip_family),
        ("podSubnet", _subnets(spec.pod_cidrs)),
        ("serviceSubnet", _subnets(spec.service_cidrs)),
    ):
        if key in net and net[key] != want:
            field = {"ipFamily": "ip_family", "podSubnet": "pod_cidrs", "serviceSubnet": "service_cidrs"}[key]
            raise SpecError(
                f"kind.extra_config.networking.{key}",
                f"{net[key]!r} contradicts the spec's {field} ({want})",
                fix=f"drop it and set {field} in the spec; Cilium's values follow the spec",
            )
    if "name" in extra and extra["name"] != spec.name:
        raise SpecError("kind.extra_config.name", f"{extra['name']!r} is not the lab name {spec.name!r}", fix="drop it")
    if "nodes" in extra:
        wanted = [role for _, role in spec.node_names()]
        got = extra["nodes"]
        if len(got) != len(wanted):
            raise SpecError(
                "kind.extra_config.nodes",
                f"has {len(got)} entries but the lab has {len(wanted)} nodes "
                f"({spec.control_planes} control planes, {spec.workers} workers)",
                fix="give one entry per node, control planes first, or set the counts in the spec",
            )
        for i, (node, role) in enumerate(zip(got, wanted, strict=True)):
            if "role" in node and node["role"] != role:
                raise SpecError(f"kind.extra_config.nodes[{i}].role", f"{node['role']!r}: node {i} is a {role}")


def render(spec: LabSpec) -> dict[str, Any]:
    """The kind Cluster config for ``spec``: base YAML + nodes + networking + ``kind.extra_config``."""
    _check_service_cidrs(spec)
    extra = dict(spec.kind.extra_config or {})
    _check_extra(spec, extra)
    base = yaml.safe_load(asset("kind-configs", "cluster.yaml").read_text()) or {}
    cfg: dict[str, Any] = copy.deepcopy(base)
    cfg["kind"] = "Cluster"
    cfg["apiVersion"] = API_VERSION
    cfg["nodes"] = [{"role": role} for _, role in spec.node_names()]
    networking = dict(cfg.get("networking") or {})
    networking["disableDefaultCNI"] = True
    networking["ipFamily"] = spec.ip_family
    networking["podSubnet"] = _subnets(spec.pod_cidrs)
    networking["serviceSubnet"] = _subnets(spec.service_cidrs)
    if spec.kube_proxy_replacement:
        networking["kubeProxyMode"] = "none"
    cfg["networking"] = networking
    extra_nodes = extra.pop("nodes", None)
    cfg = deep_merge(cfg, extra)
    if extra_nodes:
        cfg["nodes"] = [deep_merge(n, e) for n, e in zip(cfg["nodes"], extra_nodes, strict=True)]
    validate(cfg, CLUSTER_SCHEMA, "kind config")
    return cfg


def to_yaml(cfg: Mapping[str, Any]) -> str:
    return "# kind cluster config generated by cilium-labs\n" + yaml.safe_dump(dict(cfg), sort_keys=False)
