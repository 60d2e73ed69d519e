"""A pod spec, read the way the kubelet reads it: environment, ``$(VAR)`` expansion, volumes and mounts.

Pure functions over the pod as the API returns it (plain dicts), so they are tested without root or a cluster.
Volumes become host directories of the pod (configMap, secret, emptyDir, projected, downwardAPI) or of the node
(hostPath: each node has its own file system root in the lab folder, so two nodes' ``/var/run/cilium`` never
meet); the runtime binds them where the container asks.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .container import Mount

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

Lookup = Callable[[str, str, str], str | None]
"""(kind ``configmap``/``secret``, namespace, name/key path ``NAME/KEY``) -> value or None."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s.io/kubernetes third_party/forked/golang/expansion): a reference to
    an unknown variable is left as written, ``$$`` is a literal ``$``."""
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


def field_value(pod: Mapping[str, Any], path: str, node_ips: tuple[str, ...]) -> str:
    """``fieldRef.fieldPath`` values the kubelet supports (pkg/kubelet/kubelet_pods.go podFieldSelectorRuntimeValue)."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        which, _, rest = path.partition("['")
        key = rest.rstrip("']")
        return str((meta.get(which.split(".")[1]) or {}).get(key, ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": node_ips[0] if node_ips else "",
        "status.hostIPs": ",".join(node_ips),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(p.get("ip", "") for p in status.get("podIPs") or []),
    }
    return str(simple.get(path, ""))


def resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """``resourceFieldRef``: the limit when set, else what the kubelet reports for an unlimited container (the
    node's allocatable; a lab node advertises KWOK's 1k CPUs and 1Ti memory)."""
    resource = str(ref.get("resource", ""))
    section, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is not None:
        return _quantity(str(value), str(ref.get("divisor", "1")))
    return {"cpu": "1000", "memory": str(1 << 40), "ephemeral-storage": str(1 << 40)}.get(name, "0")


def _quantity(value: str, divisor: str) -> str:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1000, "M": 10**6, "G": 10**9,
             "m": 0.001}

    def parse(q: str) -> float:
        for suffix, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
            if q.endswith(suffix):
                return float(q[: -len(suffix)]) * mult
        return float(q)

    try:
        return str(int(-(-parse(value) // parse(divisor))))
    except ValueError:
        return value


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *, node_ips: tuple[str, ...],
                  base: Mapping[str, str], lookup: Lookup) -> dict[str, str]:
    """The environment a container starts with: ``base`` (KUBERNETES_SERVICE_HOST/PORT...), ``envFrom``, then
    ``env`` in order, each value expanded against what came before (kubelet makeEnvironmentVariables)."""
    ns = pod.get("metadata", {}).get("namespace", "default")
    env: dict[str, str] = dict(base)
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(key)
            if ref:
                data = lookup(kind, ns, f"{ref.get('name')}/*")
                if data:
                    for k, v in _parse_pairs(data).items():
                        env[prefix + k] = v
    for item in container.get("env") or []:
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        src = item.get("valueFrom") or {}
        value: str | None = None
        if "fieldRef" in src:
            value = field_value(pod, src["fieldRef"].get("fieldPath", ""), node_ips)
        elif "resourceFieldRef" in src:
            value = resource_value(container, src["resourceFieldRef"])
        elif "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            value = lookup("configmap", ns, f"{ref.get('name')}/{ref.get('key')}")
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            value = lookup("secret", ns, f"{ref.get('name')}/{ref.get('key')}")
        if value is not None:
            env[name] = value
        elif name not in env:
            env[name] = ""
    return env


def _parse_pairs(text: str) -> dict[str, str]:
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def command(container: Mapping[str, Any], entrypoint: tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    """``command`` replaces the image's ENTRYPOINT, ``args`` its CMD; both expanded (kubelet kuberuntime
    ``ExpandContainerCommandAndArgs``)."""
    cmd = [expand(str(c), env) for c in container.get("command") or []] or list(entrypoint)
    args = [expand(str(a), env) for a in container.get("args") or []]
    return [*cmd, *args]


@attrs.frozen
class Volume:
    """A volume materialised on the host: its directory, and whether a read-only bind is right for it."""

    host_path: str
    read_only: bool = False


def write_files(folder: Path, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for rel, data in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def keyed_files(data: Mapping[str, str], items: list[Mapping[str, Any]] | None, *, b64: bool) -> dict[str, bytes]:
    """The files a configMap/secret volume shows: every key, or only ``items`` under their paths."""
    def raw(v: str) -> bytes:
        return base64.b64decode(v) if b64 else v.encode()

    if items:
        return {str(i.get("path") or i.get("key")): raw(data[i["key"]]) for i in items if i.get("key") in data}
    return {k: raw(v) for k, v in data.items()}


def mounts_for(container: Mapping[str, Any], volumes: Mapping[str, Volume]) -> list[Mount]:
    """The container's ``volumeMounts`` as binds of the materialised volumes (``subPath`` honoured)."""
    out: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm.get("name", ""))
        if vol is None:
            continue
        source = vol.host_path
        sub = vm.get("subPath")
        if sub:
            source = str(Path(source) / sub)
        out.append(Mount(target=str(vm.get("mountPath")), kind="bind", source=source,
                         read_only=bool(vm.get("readOnly")) or vol.read_only))
    return out
