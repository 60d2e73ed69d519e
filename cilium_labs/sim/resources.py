"""The API resources the simulated server serves: group, version, plural, kind, scope, discovery details."""

from __future__ import annotations

import attrs


@attrs.frozen
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    cilium: bool = False
    """Served only once Cilium (its CRDs) is installed."""
    fields: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        return out


_POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
               "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
               "status.nominatedNodeName")

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), fields=("metadata.name", "status.phase")),
    Resource("", "v1", "nodes", "Node", False, ("no",), fields=("metadata.name", "spec.unschedulable")),
    Resource("", "v1", "pods", "Pod", True, ("po",), fields=_POD_FIELDS),
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, fields=("metadata.name", "metadata.namespace", "type")),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
             ("crd", "crds")),
    Resource("cilium.io", "v2", "ciliumnodes", "CiliumNode", False, ("cn", "ciliumn"), cilium=True),
    Resource("cilium.io", "v2", "ciliumendpoints", "CiliumEndpoint", True, ("cep", "ciliumep"), cilium=True),
    Resource("cilium.io", "v2", "ciliumidentities", "CiliumIdentity", False, ("ciliumid",), cilium=True,
             singular="ciliumidentity"),
    Resource("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy", True, ("cnp", "ciliumnp"),
             cilium=True, singular="ciliumnetworkpolicy"),
    Resource("cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", False,
             ("ccnp",), cilium=True, singular="ciliumclusterwidenetworkpolicy"),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KEY: dict[str, Resource] = {r.key: r for r in RESOURCES}


def resource(key: str) -> Resource:
    return BY_KEY[key]
