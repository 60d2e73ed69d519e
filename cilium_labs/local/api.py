"""The few Kubernetes calls the local runtime makes, as plain dicts over the ``kubernetes`` client's transport.

The runtime plays the kubelet: it lists pods, reads ConfigMaps and Secrets for volumes and environment, asks
for ServiceAccount tokens, patches pod status and finishes pod deletion, and tells KWOK where each container's
exec and log targets are. Plain dicts (``_preload_content=False``) keep a sync loop over every pod cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client, config

KWOK_GROUP = "kwok.x-k8s.io"
KWOK_VERSION = "v1alpha1"


class ApiException(Exception):
    """An API answer of 400 or more."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class Api:
    """A kubeconfig's cluster, through the one generic REST entry point of the client."""

    def __init__(self, kubeconfig: str | Path, *, timeout: float = 20.0) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.retries = 0
        self._client = client.ApiClient(cfg)
        self.timeout = timeout

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                query: list[tuple[str, str]] | None = None, missing_ok: bool = False) -> Any:
        method_, url, headers, body_, _ = self._client.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        resp = self._client.call_api(method_, url, headers, body_, _request_timeout=self.timeout)
        data = resp.read()
        if resp.status >= 400:
            if missing_ok and resp.status == 404:
                return None
            try:
                message = json.loads(data).get("message", resp.reason)
            except (ValueError, AttributeError):
                message = resp.reason
            raise ApiException(resp.status, str(message))
        return json.loads(data) if data else None

    # -- reads ------------------------------------------------------------------------------------------------
    def pods(self) -> list[dict[str, Any]]:
        doc = self.request("GET", "/api/v1/pods", query=[("fieldSelector", "spec.nodeName!=")])
        return list(doc.get("items") or [])

    def get(self, path: str) -> dict[str, Any] | None:
        got = self.request("GET", path, missing_ok=True)
        return got if isinstance(got, dict) else None

    def config_map(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")

    def secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/api/v1/namespaces/{ns}/secrets/{name}")

    def token(self, ns: str, service_account: str, pod: dict[str, Any], seconds: int) -> str:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                                   "uid": pod["metadata"]["uid"]},
            },
        }
        got = self.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{service_account}/token", body)
        return str(got["status"]["token"])

    # -- writes -----------------------------------------------------------------------------------------------
    def patch_pod_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status},
                     content_type="application/merge-patch+json", missing_ok=True)

    def delete_pod_now(self, ns: str, name: str, uid: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid}}
        try:
            self.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body, missing_ok=True)
        except ApiException as exc:
            if exc.status != 409:  # the uid precondition failed: a new pod of the same name, not ours to delete
                raise

    def create_node(self, node: dict[str, Any]) -> dict[str, Any]:
        got = self.request("POST", "/api/v1/nodes", node)
        return dict(got)

    def patch_node_status(self, name: str, status: dict[str, Any]) -> None:
        self.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": status},
                     content_type="application/merge-patch+json")

    def apply_kwok(self, plural: str, ns: str, name: str, spec: dict[str, Any]) -> None:
        """Create or replace a namespaced KWOK resource (``execs``, ``logs``) for one pod."""
        kind = {"execs": "Exec", "logs": "Logs"}[plural]
        base = f"/apis/{KWOK_GROUP}/{KWOK_VERSION}/namespaces/{ns}/{plural}"
        body: dict[str, Any] = {"apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}", "kind": kind,
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        current = self.get(f"{base}/{name}")
        if current is None:
            self.request("POST", base, body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.request("PUT", f"{base}/{name}", body)

    def delete_kwok(self, plural: str, ns: str, name: str) -> None:
        self.request("DELETE", f"/apis/{KWOK_GROUP}/{KWOK_VERSION}/namespaces/{ns}/{plural}/{name}",
                     missing_ok=True)

    def apply_manifest(self, obj: dict[str, Any]) -> None:
        """Create a cluster-scoped object (a CRD) unless it exists."""
        kind = obj["kind"]
        if kind != "CustomResourceDefinition":
            raise ValueError(kind)
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        if self.get(f"{path}/{obj['metadata']['name']}") is None:
            self.request("POST", path, obj)
