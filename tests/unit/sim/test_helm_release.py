"""The Helm release Secret of a simulated install, decoded the way Helm v4.3.2's Secrets driver decodes it
(pkg/storage/driver/util.go decodeRelease: base64, then gunzip, then the release JSON), and found the way
``action.Get`` finds it (a list by ``name=<release>,owner=helm``)."""

from __future__ import annotations

import base64
import gzip
import json

from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import CILIUM_NS, SimCluster
from cilium_labs.spec import LabSpec


def _cluster(version: str) -> SimCluster:
    spec = LabSpec(name="lab", workers=1, cilium_version=version)
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=1)
    c.install_cilium(resolve(spec_values(spec), version, use_chart=False))
    return c


def test_install_leaves_the_release_secret_helm_reads() -> None:
    c = _cluster("1.18.11")
    (secret,) = c.select("secrets", CILIUM_NS, label_selector="name=cilium,owner=helm")
    assert secret["metadata"]["name"] == "sh.helm.release.v1.cilium.v1"
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["labels"] == {"name": "cilium", "owner": "helm", "status": "deployed", "version": "1"}
    stored = base64.b64decode(secret["data"]["release"])  # the Secret's own base64
    release = json.loads(gzip.decompress(base64.b64decode(stored)))
    assert release["name"] == "cilium" and release["namespace"] == CILIUM_NS and release["version"] == 1
    assert release["info"]["status"] == "deployed"
    # cilium-cli status.go: chart.NewAccessor(...).MetadataAsMap()["Version"] / ["version"]
    assert release["chart"]["metadata"]["version"] == "1.18.11"
    assert release["chart"]["metadata"]["appVersion"] == "1.18.11"


def test_uninstall_removes_it() -> None:
    c = _cluster("1.16.19")
    c.uninstall_cilium()
    assert c.select("secrets", CILIUM_NS, label_selector="owner=helm") == []
