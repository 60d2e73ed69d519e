"""Server-side printing (``Accept: ...;as=Table;g=meta.k8s.io``), so ``kubectl get`` against the simulator shows
the columns it shows on a real cluster (STATUS, READY, IP, NODE...) instead of only NAME and AGE."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = Callable[[Mapping[str, Any]], list[Any]]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _age(obj: Mapping[str, Any]) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    secs = max(0, int((dt.datetime.now(dt.timezone.utc) - created).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h"


def _ready(conds: list[Mapping[str, Any]] | None, kind: str = "Ready") -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds or [])


def _node(o: Mapping[str, Any]) -> list[Any]:
    labels = o["metadata"].get("labels") or {}
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")))
    status = "Ready" if _ready(o["status"].get("conditions")) else "NotReady"
    ips = [a["address"] for a in o["status"].get("addresses") or [] if a["type"] == "InternalIP"]
    info = o["status"].get("nodeInfo") or {}
    return [o["metadata"]["name"], status, roles or "<none>", _age(o), info.get("kubeletVersion", ""),
            ",".join(ips) or "<none>", "<none>", info.get("osImage", ""), info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", "")]


def _pod(o: Mapping[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    reason = st.get("phase", "Pending")
    for c in cs:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            reason = waiting.get("reason", reason)
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    return [o["metadata"]["name"], f"{ready}/{len(o['spec'].get('containers') or [])}", reason, restarts, _age(o),
            st.get("podIP", "<none>"), o["spec"].get("nodeName", "<none>"), "<none>", "<none>"]


def _service(o: Mapping[str, Any]) -> list[Any]:
    spec = o["spec"]
    ports = ",".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or [])
    ext = ",".join(spec.get("externalIPs") or []) or "<none>"
    sel = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>"
    return [o["metadata"]["name"], spec.get("type", ""), spec.get("clusterIP", ""), ext, ports or "<none>", _age(o),
            sel]


def _deployment(o: Mapping[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    want = o["spec"].get("replicas", 1)
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{want}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), _age(o)]


def _daemonset(o: Mapping[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    sel = ",".join(f"{k}={v}" for k, v in
                   ((o["spec"]["template"].get("spec") or {}).get("nodeSelector") or {}).items()) or "<none>"
    return [o["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0), sel,
            _age(o)]


def _generic(o: Mapping[str, Any]) -> list[Any]:
    return [o["metadata"]["name"], _age(o)]


_COLUMNS: dict[str, tuple[list[tuple[str, str, int]], Row]] = {
    "nodes": ([("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
               ("Version", "string", 0), ("Internal-IP", "string", 1), ("External-IP", "string", 1),
               ("OS-Image", "string", 1), ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)],
              _node),
    "pods": ([("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
              ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
              ("Readiness Gates", "string", 1)], _pod),
    "services": ([("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
                  ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0),
                  ("Selector", "string", 1)], _service),
    "apps/deployments": ([("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0),
                          ("Available", "integer", 0), ("Age", "string", 0)], _deployment),
    "apps/daemonsets": ([("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
                         ("Ready", "integer", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0),
                         ("Node Selector", "string", 0), ("Age", "string", 0)], _daemonset),
}


def table(key: str, items: Sequence[Mapping[str, Any]], resource_version: str) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``items`` (each row carries the object's metadata, as kubectl expects)."""
    columns, row = _COLUMNS.get(key, ([("Name", "string", 0), ("Age", "string", 0)], _generic))
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": "",
                               "priority": p} for n, t, p in columns],
        "rows": [{"cells": row(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                              "metadata": o["metadata"]}} for o in items],
    }
