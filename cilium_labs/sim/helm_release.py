"""The Secret ``helm install cilium`` leaves in the namespace: how cilium-cli (``status``' "Helm chart version",
``version``' "cilium image (running)") and ``helm list`` learn what is installed.

Helm v4.3.2 pkg/storage/driver/secrets.go newSecretsObject: named ``sh.helm.release.v1.<release>.v<revision>``
(storage.go makeKey), type ``helm.sh/release.v1``, labels ``name``, ``owner=helm``, ``status``, ``version``, and
``data.release`` = base64(gzip(JSON of the release)) (util.go encodeRelease; the Secret's own base64 wraps it
once more on the wire). The release JSON follows pkg/release/v1 release.go / info.go and the chart's metadata its
Chart.yaml (the chart package's, where the simulator rendered one; the same fields otherwise).
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from .config import CiliumConfig

RELEASE_NAME = "cilium"


def chart_metadata(version: str) -> dict[str, Any]:
    """Chart.yaml of the official Cilium chart (the fields every release since 1.13 has)."""
    return {"name": "cilium", "home": "https://cilium.io/", "sources": ["https://github.com/cilium/cilium"],
            "version": version, "description": "eBPF-based Networking, Security, and Observability",
            "keywords": ["BPF", "eBPF", "Kubernetes", "Networking", "Security", "Observability",
                         "Troubleshooting"],
            "icon": "https://cdn.jsdelivr.net/gh/cilium/cilium@main/Documentation/images/logo-solo.svg",
            "apiVersion": "v2", "appVersion": version, "kubeVersion": ">= 1.21.0-0"}


def release_secret(cfg: CiliumConfig, namespace: str, deployed_at: str, *, revision: int = 1) -> dict[str, Any]:
    """The release Secret for Cilium ``cfg`` installed into ``namespace`` at ``deployed_at`` (RFC 3339)."""
    release = {
        "name": RELEASE_NAME,
        "info": {"first_deployed": deployed_at, "last_deployed": deployed_at, "description": "Install complete",
                 "status": "deployed"},
        "chart": {"metadata": chart_metadata(cfg.version), "templates": [], "values": {}},
        "config": {},
        "manifest": "",
        "version": revision,
        "namespace": namespace,
    }
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode(), mtime=0)).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": {"name": f"sh.helm.release.v1.{RELEASE_NAME}.v{revision}", "namespace": namespace,
                         "labels": {"name": RELEASE_NAME, "owner": "helm", "status": "deployed",
                                    "version": str(revision)}},
            "data": {"release": base64.b64encode(encoded.encode()).decode()}}
