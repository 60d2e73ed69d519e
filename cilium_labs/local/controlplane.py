"""The real Kubernetes control plane of a local lab, on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and KWOK as every node's kubelet face (node heartbeats, ``exec`` and ``logs``).

Flags are the ones real-components.md found necessary on loopback, each with its reason:

- ``--endpoint-reconciler-type=none``: the advertise address is loopback, which the reconciler refuses;
- ``--kubelet-preferred-address-types=Hostname``: the apiserver reaches "kubelets" (KWOK, one server for every
  node) at the node's ``Hostname`` address, which we set to KWOK's loopback address. Cilium reads only
  ``InternalIP``/``ExternalIP`` (cilium 1.19 pkg/k8s/node.go ``ParseNode`` skips every other type), so the
  node's real address for Cilium stays its underlay IP;
- ``--allocate-node-cidrs --cluster-cidr``: Nodes get podCIDRs, which ``ipam=kubernetes`` needs;
- ``--authorization-mode=Node,RBAC``: the chart's RBAC is really enforced on the agents' ServiceAccount tokens.

This module only writes files and argv; ``supervisor`` starts the processes.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import attrs
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..sim.tls import Pki, make_pki
from ..state import atomic_write

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
"""KWOK manages only Nodes carrying this annotation (``--manage-nodes-with-annotation-selector``)."""
KWOK_CRDS = ("Exec", "Logs")
"""KWOK resources read from the API (``--enable-crds``): per-pod exec and log targets, made by the runtime."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@attrs.frozen
class Endpoints:
    """Loopback ports of one lab's control plane (picked free at start, so labs never collide)."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    kwok_host: str
    """KWOK's address: a loopback address of the lab's own (127.0.0.0/8 is all ``lo``), so it can listen on the
    kubelet port each node advertises."""

    @classmethod
    def pick(cls) -> Endpoints:
        kwok_host = "127.0.0.1"
        return cls(free_port(), free_port(), free_port(), free_port(), free_port(), free_port(kwok_host), kwok_host)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver}"


@attrs.frozen
class Files:
    """Where the control plane's files are inside the lab's state folder."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def path(self, name: str) -> Path:
        return self.pki / name

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    def kubeconfig(self, user: str) -> Path:
        return self.pki / f"{user}.kubeconfig"

    @property
    def kwok_config(self) -> Path:
        return self.root / "kwok.yaml"


USERS = {
    # user -> groups; every control-plane component is a superuser of this throw-away cluster, as with kubeadm's
    # admin.conf. The agents are *not*: they use their ServiceAccount's token and the chart's RBAC.
    "admin": ("system:masters",),
    "kube-controller-manager": ("system:masters",),
    "kube-scheduler": ("system:masters",),
    "kwok": ("system:masters",),
    "system:kube-proxy": ("system:node-proxier",),
    "cilium-labs-runtime": ("system:masters",),
}


@attrs.frozen
class Credentials:
    pki: Pki
    tokens: dict[str, str]


def write_pki(files: Files, service_ip: str) -> Credentials:
    """CA, serving certificate (loopback, the ``kubernetes`` Service IP and names), ServiceAccount signing key and
    one static token per user; key and token files are 0600."""
    hosts = ("127.0.0.1", "localhost", service_ip, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local")
    pki = make_pki(hosts)
    files.pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(files.path("ca.crt"), pki.ca_pem.decode(), mode=0o644)
    atomic_write(files.path("apiserver.crt"), pki.cert_pem.decode(), mode=0o644)
    atomic_write(files.path("apiserver.key"), pki.key_pem.decode())
    sa_key = ec.generate_private_key(ec.SECP256R1())
    atomic_write(files.path("sa.key"), sa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    atomic_write(files.path("sa.pub"), sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), mode=0o644)
    import secrets

    tokens = {user: secrets.token_urlsafe(32) for user in USERS}
    lines = [f'{tokens[u]},{u},{u},"{",".join(groups)}"' for u, groups in USERS.items()]
    atomic_write(files.path("tokens.csv"), "\n".join(lines) + "\n")
    return Credentials(pki, tokens)


def kubeconfig_text(server: str, ca_pem: bytes, token: str, name: str = "cilium-labs-local") -> str:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfigs(files: Files, creds: Credentials, endpoints: Endpoints, lab: str) -> None:
    for user, token in creds.tokens.items():
        atomic_write(files.kubeconfig(user),
                     kubeconfig_text(endpoints.server, creds.pki.ca_pem, token, name=f"local-{lab}"))


def etcd_argv(binary: Path, files: Files, ep: Endpoints) -> list[str]:
    client = f"http://127.0.0.1:{ep.etcd}"
    peer = f"http://127.0.0.1:{ep.etcd_peer}"
    return [
        str(binary), "--name", "default", "--data-dir", str(files.etcd_data),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"default={peer}",
        "--listen-metrics-urls", "",
        # a lab's etcd dies with the lab: fsync only costs start-up time on a loaded CI machine
        "--unsafe-no-fsync",
        "--log-level", "warn",
    ]


def apiserver_argv(binary: Path, files: Files, ep: Endpoints, *, service_cidrs: str) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ep.etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ep.apiserver}",
        "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={service_cidrs}",
        f"--tls-cert-file={files.path('apiserver.crt')}",
        f"--tls-private-key-file={files.path('apiserver.key')}",
        f"--client-ca-file={files.path('ca.crt')}",
        f"--token-auth-file={files.path('tokens.csv')}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={files.path('sa.pub')}",
        f"--service-account-signing-key-file={files.path('sa.key')}",
        "--kubelet-preferred-address-types=Hostname",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_argv(binary: Path, files: Files, ep: Endpoints, *, cluster_cidrs: str,
                            service_cidrs: str, masks: dict[int, int]) -> list[str]:
    """``masks``: per IP version present, the per-node prefix length (a mask for an absent family is an error:
    "usage of --node-cidr-mask-size-ipv6 is not allowed for a single-stack IPv4 cluster")."""
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig('kube-controller-manager')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ep.controller_manager}",
        "--leader-elect=false",
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={cluster_cidrs}",
        f"--service-cluster-ip-range={service_cidrs}",
        *(f"--node-cidr-mask-size-ipv{v}={m}" for v, m in sorted(masks.items())),
        f"--service-account-private-key-file={files.path('sa.key')}",
        f"--root-ca-file={files.path('ca.crt')}",
        "--use-service-account-credentials=false",
        # no cloud provider, no kubelets to evict pods from: these controllers would only act on fake data
        # (cmd/kube-controller-manager/names/controller_names.go, 1.36)
        "--controllers=*,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller,"
        "-persistentvolume-expander-controller,-ephemeral-volume-controller",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_argv(binary: Path, files: Files, ep: Endpoints) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig('kube-scheduler')}",
        f"--authentication-kubeconfig={files.kubeconfig('kube-scheduler')}",
        f"--authorization-kubeconfig={files.kubeconfig('kube-scheduler')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ep.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kwok_argv(binary: Path, files: Files, ep: Endpoints) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig('kwok')}",
        f"--config={files.kwok_config}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--server-address={ep.kwok_host}:{ep.kwok}",
        f"--node-port={ep.kwok}",
        f"--tls-cert-file={files.path('apiserver.crt')}",
        f"--tls-private-key-file={files.path('apiserver.key')}",
        "--enable-crds=" + ",".join(KWOK_CRDS),
        "--node-lease-duration-seconds=40",
    ]


def kube_proxy_argv(binary: Path, files: Files, node: str, *, cluster_cidrs: str) -> list[str]:
    """kube-proxy of one node, run inside the node's namespace (``ip netns exec``) with the kubeadm user
    ``system:kube-proxy`` in ``system:node-proxier`` (the RBAC kubeadm binds). nftables mode: the host's ``nft``
    programs the node namespace's own tables."""
    return [
        str(binary),
        f"--kubeconfig={files.kubeconfig('system:kube-proxy')}",
        f"--hostname-override={node}",
        "--proxy-mode=nftables",
        f"--cluster-cidr={cluster_cidrs}",
        # healthz (10256) and metrics (10249) keep their default ports: each kube-proxy has its node's namespace
        # nf_conntrack_max is the initial namespace's only ("permission denied" in a node's): leave it, as kind
        # does for its node containers (kubeadm config conntrack.maxPerCore: 0)
        "--conntrack-max-per-core=0",
        "--v=1",
    ]


def kwok_config(stages: list[dict[str, Any]]) -> str:
    """KWOK's configuration: only node stages, so KWOK keeps Nodes Ready and leases fresh and never touches a
    pod (it warns "No pod stages found" and leaves pods to the runtime, which runs them for real)."""
    # a KwokConfiguration given with --config is not defaulted (zz_generated.defaults.go is not applied to it):
    # parallelism 0 is refused ("node leases parallelism must be greater than 0") and the debugging handlers,
    # which serve exec and logs, are off ("Debug endpoints are disabled"), so the defaults are spelt out
    options = {"enableCNI": False, "enableDebuggingHandlers": True, "enableProfilingHandler": False,
               "enableContentionProfiling": False, "nodeLeaseParallelism": 4, "nodePlayStageParallelism": 4,
               "podPlayStageParallelism": 4, "podsOnNodeSyncParallelism": 1, "enablePodsOnNodeSyncListPager": True,
               "enablePodsOnNodeSyncStreamWatch": False}
    docs: list[dict[str, Any]] = [{"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
                                   "options": options}]
    docs += stages
    return yaml.safe_dump_all(docs, sort_keys=False)
