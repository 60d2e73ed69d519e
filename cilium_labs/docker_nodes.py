"""kind's node containers seen through the Docker SDK: discovery, addresses, exec, image pulls, cleanup.

kind labels every node container ``io.x-k8s.kind.cluster=<cluster>`` and ``io.x-k8s.kind.role=<role>`` and attaches
it to the user-defined network ``kind``; reading those (rather than parsing ``kind get nodes`` and ``docker
inspect`` text) gives the addresses the nodes use to reach each other, including IPv6, without a subprocess per node.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .backends.base import ExecResult, Node
from .errors import BackendError, CommandTimeout, PreflightError

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
KIND_NETWORK = "kind"
LB_ROLE = "external-load-balancer"
_TIMED_OUT = 124
"""What coreutils ``timeout`` exits with when it had to stop the command."""


def connect(*, timeout: float = 10.0) -> Any:
    """A Docker SDK client that has answered a ping; ``PreflightError`` naming the fix otherwise."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is an install requirement
        raise PreflightError("the Docker SDK for Python is missing", fix="pip install docker") from exc
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, PermissionError on the socket
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = "start the Docker daemon (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at it"
        if "Permission denied" in reason:
            fix = "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again)"
        raise PreflightError(f"the Docker daemon is not reachable ({reason})", fix=fix) from exc
    return client


@attrs.frozen
class NodeContainer:
    """One kind container: a node, or the external load balancer of an HA control plane."""

    name: str
    role: str
    ipv4: str | None
    ipv6: str | None
    running: bool

    def to_node(self) -> Node:
        ips = tuple(ip for ip in (self.ipv4, self.ipv6) if ip)
        return Node(
            name=self.name, role="control-plane" if self.role == "control-plane" else "worker", internal_ips=ips
        )


def _addresses(attrs_: dict[str, Any], network: str) -> tuple[str | None, str | None]:
    nets = ((attrs_.get("NetworkSettings") or {}).get("Networks")) or {}
    net = nets.get(network) or {}
    return (net.get("IPAddress") or None), (net.get("GlobalIPv6Address") or None)


def cluster_containers(client: Any, cluster: str) -> list[Any]:
    """Every container (running or not) kind made for ``cluster``."""
    return list(client.containers.list(all=True, filters={"label": f"{CLUSTER_LABEL}={cluster}"}))


def node_containers(client: Any, cluster: str, *, network: str = KIND_NETWORK) -> list[NodeContainer]:
    """The cluster's containers with their role and addresses on ``network``, sorted by name."""
    out: list[NodeContainer] = []
    for c in cluster_containers(client, cluster):
        labels = c.labels or {}
        v4, v6 = _addresses(c.attrs, network)
        out.append(NodeContainer(c.name, labels.get(ROLE_LABEL, "unknown"), v4, v6, c.status == "running"))
    return sorted(out, key=lambda n: (n.role != "control-plane", n.name))


def nodes(client: Any, cluster: str, *, network: str = KIND_NETWORK) -> list[Node]:
    """Kubernetes nodes (control planes first, then workers); the HA load balancer is not a node."""
    return [
        c.to_node() for c in node_containers(client, cluster, network=network) if c.role in ("control-plane", "worker")
    ]


def _container(client: Any, cluster: str, name: str) -> Any:
    for c in cluster_containers(client, cluster):
        if c.name == name:
            return c
    known = ", ".join(sorted(c.name for c in cluster_containers(client, cluster))) or "none"
    raise BackendError(f"{name!r} is not a node of kind cluster {cluster!r}", fix=f"use one of: {known}")


def exec_raw(
    client: Any, cluster: str, name: str, argv: Sequence[str], *, timeout: float = 60.0
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in a node container; stdout and stderr as bytes, kept apart.

    The Docker exec API has no timeout, so the command runs under coreutils ``timeout`` inside the node (kind's
    node image is Debian-based) and a second, slightly longer guard protects us if the daemon itself hangs.
    """
    if not argv or isinstance(argv, str):
        raise TypeError("argv must be a non-empty list of strings")
    container = _container(client, cluster, name)
    wrapped = ["timeout", "--kill-after=5", f"{timeout:g}", *[str(a) for a in argv]]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        fut = pool.submit(container.exec_run, wrapped, demux=True, stdout=True, stderr=True)
        try:
            res = fut.result(timeout=timeout + 15)
        except concurrent.futures.TimeoutError as exc:
            raise CommandTimeout(["docker", "exec", name, *argv], timeout) from exc
    except CommandTimeout:
        raise
    except Exception as exc:
        raise BackendError(f"docker exec in {name} failed: {exc}") from exc
    finally:
        pool.shutdown(wait=False)
    out, err = res.output if isinstance(res.output, tuple) else (res.output, b"")
    return int(res.exit_code if res.exit_code is not None else -1), out or b"", err or b""


def exec_in(client: Any, cluster: str, name: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
    """``exec_raw`` decoded; ``CommandTimeout`` when the command outlived ``timeout``."""
    code, out, err = exec_raw(client, cluster, name, argv, timeout=timeout)
    if code == _TIMED_OUT:
        raise CommandTimeout(["docker", "exec", name, *argv], timeout)
    return ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"))


def image_present(client: Any, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except Exception as exc:
        if type(exc).__name__ == "ImageNotFound":
            return False
        raise BackendError(f"cannot inspect image {image}: {exc}") from exc


def ensure_image(client: Any, image: str, progress: Callable[[str], None]) -> bool:
    """Make ``image`` present on the host, pulling it once if needed; return whether it was pulled."""
    if image_present(client, image):
        return False
    progress(f"pulling {image} on the host")
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(image)
    try:
        client.images.pull(repo, tag=tag or "latest")
    except Exception as exc:
        raise BackendError(
            f"cannot pull {image}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            fix="check the name and your network, or build/pull the image yourself first",
        ) from exc
    return True


def remove_cluster_containers(client: Any, cluster: str) -> list[str]:
    """Force-remove whatever containers of ``cluster`` are left (after a failed ``kind delete``)."""
    removed: list[str] = []
    for c in cluster_containers(client, cluster):
        try:
            c.remove(force=True, v=True)
            removed.append(c.name)
        except Exception as exc:
            if type(exc).__name__ != "NotFound":
                raise BackendError(f"cannot remove container {c.name}: {exc}") from exc
    return removed


def server_info(client: Any) -> dict[str, Any]:
    """``docker info`` as a dict (empty if the daemon would not say)."""
    try:
        return dict(client.info())
    except Exception:
        return {}
