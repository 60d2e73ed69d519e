"""The ``existing`` backend: a cluster someone already has, reached through a kubeconfig and context.

It creates and destroys nothing: ``up`` and ``down`` only check that the API answers, so ``cilium-labs run
--backend existing`` can never delete a cluster it did not make.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..cluster import Cluster
from ..errors import BackendError, ClusterError, UsageError
from .base import Backend, Node, Role


class ExistingBackend(Backend):
    name = "existing"
    tools = ()

    def _kubeconfig_path(self) -> Path:
        given = self.spec.existing.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = Path(given).expanduser() if given else Path.home() / ".kube" / "config"
        if not path.is_file():
            raise UsageError(
                f"kubeconfig {path} does not exist",
                fix="pass --kubeconfig PATH or set existing.kubeconfig in the spec",
            )
        return path

    def _cluster(self) -> Cluster:
        return Cluster(self._kubeconfig_path(), self.spec.existing.context)

    def preflight(self) -> list[str]:
        self._kubeconfig_path()
        return []

    def up(self, *, keep_on_failure: bool = False) -> None:
        try:
            version = self._cluster().ping()
        except ClusterError as exc:
            raise BackendError(f"the existing cluster does not answer: {exc}") from exc
        self.progress(f"using existing cluster ({version})")
        self.adopted = True

    def down(self) -> None:
        """Leave the cluster alone: we did not create it."""
        self.progress("existing backend: the cluster is not ours to delete; leaving it as it is")

    def force_down(self) -> None:
        """Nothing to find: the backend never creates anything (``down --force`` only forgets the record)."""
        self.down()

    def leftovers(self) -> list[str]:
        return []

    def is_up(self) -> bool:
        try:
            self._cluster().ping()
        except (ClusterError, UsageError):
            return False
        return True

    def nodes(self) -> list[Node]:
        out = []
        for n in self._cluster().nodes():
            meta, status = n.metadata, n.status
            labels = (meta.labels if meta else None) or {}
            role: Role = "control-plane" if "node-role.kubernetes.io/control-plane" in labels else "worker"
            addresses = (status.addresses if status else None) or []
            ips = tuple(a.address for a in addresses if a.type == "InternalIP")
            ext = next((a.address for a in addresses if a.type == "ExternalIP"), None)
            out.append(Node(str(meta.name if meta else ""), role, ips, ext))
        return out

    def kubeconfig(self) -> Path:
        return self._kubeconfig_path()
