"""The kind backend: a lab's nodes are Docker containers made by the ``kind`` CLI.

Lifecycle goes through ``kind`` (via the one subprocess runner); nodes, addresses, exec and image pulls go
through the Docker SDK, which sees the same containers without a subprocess per question. Pre-flight checks the
things that otherwise fail minutes into ``kind create cluster`` or, worse, later inside Cilium (inotify limits,
cgroup v1 with kube-proxy replacement, a kind too old for the node image), each with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import _run, docker_nodes
from ..errors import BackendError, CapabilityMissing, CiliumLabsError, CommandError, PreflightError
from ..spec import LabSpec
from . import kind_config
from .base import Backend, ExecResult, Node, Plan, Progress, _silent

INOTIFY_MAX_USER_WATCHES = 524288
INOTIFY_MAX_USER_INSTANCES = 512
"""Cilium's documented minimums for kind (cli-connectivity-test.rst; cilium#22585, cilium-cli#1415)."""
INOTIFY_INSTANCES_PER_NODE = 128
"""Every node runs kubelet, containerd and the pods' watchers under the host's one per-user limit, so labs with
more nodes need more (cilium#30125): 512 covers 4 nodes."""
NODE_MEMORY_MIB = {"control-plane": 1280, "worker": 768}
"""Rough working set of a kind node with Cilium's agent (control plane: etcd + API server + operator)."""
CONFIG_FILE = "kind-config.yaml"
KUBECONFIG_FILE = "kubeconfig"
API_SERVER_PORT = 6443


class KindBackend(Backend):
    """Nodes are kind's Docker containers; the cluster is kind's kubeadm cluster without its default CNI."""

    name = "kind"
    tools = ("docker", "kind", "helm")

    #: Where pre-flight reads kernel limits and memory; tests point these at a fake tree.
    proc_root = Path("/proc")
    cgroup_root = Path("/sys/fs/cgroup")

    def __init__(
        self,
        spec: LabSpec,
        state_dir: Path,
        *,
        progress: Progress = _silent,
        docker_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(spec, state_dir, progress=progress)
        self._docker_factory = docker_client_factory or docker_nodes.connect
        self._docker: Any = None

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def cluster_name(self) -> str:
        return self.spec.name

    @property
    def config_path(self) -> Path:
        return self.state_dir / CONFIG_FILE

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    def docker(self) -> Any:
        if self._docker is None:
            self._docker = self._docker_factory()
        return self._docker

    def _stream(self, argv: list[str], timeout: float) -> _run.Result:
        def on_line(_name: str, line: str) -> None:
            if line.strip():
                self.progress(f"kind: {line.strip()}")

        return _run.stream(argv, on_line, timeout=timeout)

    def node_image(self) -> str:
        return kind_config.node_image(self.spec)

    def create_argv(self, *, keep_on_failure: bool) -> list[str]:
        argv = [
            "kind",
            "create",
            "cluster",
            "--name",
            self.cluster_name,
            "--config",
            str(self.config_path),
            "--kubeconfig",
            str(self.kubeconfig_path),
            "--image",
            self.node_image(),
        ]
        if keep_on_failure:
            argv.append("--retain")
        return argv

    def delete_argv(self) -> list[str]:
        return ["kind", "delete", "cluster", "--name", self.cluster_name, "--kubeconfig", str(self.kubeconfig_path)]

    def load_argv(self, images: Sequence[str]) -> list[str]:
        return ["kind", "load", "docker-image", *images, "--name", self.cluster_name]

    def existing_clusters(self) -> list[str]:
        """``kind get clusters`` (which says "No kind clusters found." on stderr when there are none)."""
        res = _run.run(["kind", "get", "clusters"], timeout=60)
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    # -- pre-flight --------------------------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        """Refuse, before anything exists, what would fail later; return softer warnings.

        All blockers are collected and reported together, so one run tells the user everything to fix.
        """
        problems: list[tuple[str, str]] = []
        warnings: list[str] = []
        client = None
        try:
            client = self.docker()
        except PreflightError as exc:
            problems.append((exc.message, exc.fix or ""))
        kind_ok = _run.which("kind") is not None
        if not kind_ok:
            problems.append(("'kind' was not found on PATH", _run.INSTALL_HINTS["kind"]))
        installer_tool = "cilium" if self.spec.installer == "cilium-cli" else "helm"
        if _run.which(installer_tool) is None:
            problems.append(
                (
                    f"'{installer_tool}' (for installer {self.spec.installer}) was not found on PATH",
                    _run.INSTALL_HINTS[installer_tool],
                )
            )
        if kind_ok:
            self._check_kind_version(problems, warnings)
        self._check_inotify(problems, warnings)
        self._check_memory(problems, warnings)
        if self.spec.kube_proxy_replacement:
            self._check_cgroup_v2(client, problems, warnings)
        if kind_ok and not self.spec.kind.reuse_cluster:
            try:
                if self.cluster_name in self.existing_clusters():
                    problems.append(
                        (
                            f"a kind cluster named {self.cluster_name!r} already exists",
                            f"delete it (`kind delete cluster --name {self.cluster_name}`), choose another lab name, "
                            "or set kind.reuse_cluster: true to adopt it",
                        )
                    )
            except CiliumLabsError as exc:
                problems.append((f"`kind get clusters` failed: {exc}", "check that kind can reach Docker"))
        try:
            kind_config.render(self.spec)
        except CiliumLabsError as exc:
            problems.append((exc.message, exc.fix or ""))
        if problems:
            if len(problems) == 1:
                raise PreflightError(problems[0][0], fix=problems[0][1] or None)
            lines = "; ".join(f"({i}) {m}" + (f" (fix: {f})" if f else "") for i, (m, f) in enumerate(problems, 1))
            raise PreflightError(f"{len(problems)} problems stop the kind lab: {lines}")
        return warnings

    def _check_kind_version(self, problems: list[tuple[str, str]], warnings: list[str]) -> None:
        try:
            out = _run.run(["kind", "version"], timeout=30).stdout
        except CiliumLabsError as exc:
            problems.append((f"`kind version` failed: {exc}", "reinstall kind"))
            return
        have = kind_config.parse_kind_version(out)
        if have is None:
            warnings.append(f"cannot read kind's version from {out.strip()!r}; not checking it against the image")
            return
        image = self.node_image()
        k8s = kind_config.image_k8s_version(image)
        if k8s is None:
            warnings.append(f"node image {image} has no version tag; cannot tell which kind release it needs")
            return
        need = kind_config.min_kind_for(k8s)
        have_s = ".".join(map(str, have))
        if need is None:
            newest = max(kind_config.KIND_RELEASE_IMAGES)
            if k8s[:2] > kind_config._v(kind_config.KIND_RELEASE_IMAGES[newest][0])[:2]:
                warnings.append(
                    f"Kubernetes {k8s[0]}.{k8s[1]} is newer than any kind release known here; "
                    f"kind v{have_s} may not run {image}"
                )
            else:
                problems.append(
                    (
                        f"no kind release published a node image for Kubernetes {k8s[0]}.{k8s[1]}",
                        "choose k8s_version 1.25 or newer, or build an image with `kind build node-image`",
                    )
                )
            return
        if have < need:
            default = kind_config.default_image_k8s(have)
            problems.append(
                (
                    f"kind v{have_s} is too old for {image} (node images for Kubernetes {k8s[0]}.{k8s[1]} start "
                    f"with kind v{'.'.join(map(str, need))})",
                    f"upgrade kind, or set k8s_version to {default} (kind v{have_s}'s default image)"
                    if default
                    else "upgrade kind",
                )
            )
            return
        published = kind_config.published_patches(k8s)
        if self.spec.kind.node_image is None and k8s not in [kind_config._v(p) for p in published]:
            patches = ", ".join(published[:4])
            warnings.append(
                f"kindest/node:v{'.'.join(map(str, k8s))} was not published with any kind release "
                f"known here (published for {k8s[0]}.{k8s[1]}: {patches}); the pull may fail"
            )

    def _read_int(self, rel: str) -> int | None:
        try:
            return int((self.proc_root / rel).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def inotify_requirements(self) -> tuple[int, int]:
        """(max_user_watches, max_user_instances) this lab needs."""
        n = self.spec.node_count
        return INOTIFY_MAX_USER_WATCHES, max(INOTIFY_MAX_USER_INSTANCES, INOTIFY_INSTANCES_PER_NODE * n)

    def _check_inotify(self, problems: list[tuple[str, str]], warnings: list[str]) -> None:
        want_watches, want_instances = self.inotify_requirements()
        for key, want in (("max_user_watches", want_watches), ("max_user_instances", want_instances)):
            have = self._read_int(f"sys/fs/inotify/{key}")
            if have is None:
                warnings.append(f"cannot read fs.inotify.{key}; pods may fail with 'too many open files'")
            elif have < want:
                problems.append(
                    (
                        f"fs.inotify.{key} is {have}, below the {want} a {self.spec.node_count}-node kind lab needs "
                        "(pods then crash with 'too many open files')",
                        f"sudo sysctl -w fs.inotify.{key}={want} (and add it to /etc/sysctl.d/ to keep it)",
                    )
                )

    def memory_required_mib(self) -> int:
        return sum(
            NODE_MEMORY_MIB["control-plane" if r == "control-plane" else "worker"] for _, r in self.spec.node_names()
        )

    def _check_memory(self, problems: list[tuple[str, str]], warnings: list[str]) -> None:
        need = self.memory_required_mib()
        try:
            text = (self.proc_root / "meminfo").read_text()
        except OSError:
            warnings.append(f"cannot read {self.proc_root / 'meminfo'}; make sure Docker has {need} MiB free")
            return
        avail_kib = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("MemAvailable:")), None)
        if avail_kib is None:
            warnings.append("no MemAvailable in /proc/meminfo; not checking free memory")
            return
        avail = avail_kib // 1024
        if avail < need:
            problems.append(
                (
                    f"only {avail} MiB of memory is available; {self.spec.node_count} kind nodes need about {need} MiB",
                    "free memory, or lower workers in the spec",
                )
            )

    def _check_cgroup_v2(self, client: Any, problems: list[tuple[str, str]], warnings: list[str]) -> None:
        version: str | None = None
        if client is not None:
            info = docker_nodes.server_info(client)
            if info.get("CgroupVersion"):
                version = str(info["CgroupVersion"])
        if version is None:
            version = "2" if (self.cgroup_root / "cgroup.controllers").exists() else "1"
        if version != "2":
            problems.append(
                (
                    "kube-proxy replacement on kind needs cgroup v2 (Cilium's socket LB attaches to its root), "
                    f"but Docker runs with cgroup v{version}",
                    "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1), "
                    "or set kube_proxy_replacement: false",
                )
            )

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def render_config(self) -> str:
        return kind_config.to_yaml(kind_config.render(self.spec))

    def up(self, *, keep_on_failure: bool = False) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        text = self.render_config()
        if self.spec.kind.reuse_cluster and self.cluster_name in self.existing_clusters():
            self.progress(f"adopting the existing kind cluster {self.cluster_name}")
            _run.run(
                [
                    "kind",
                    "export",
                    "kubeconfig",
                    "--name",
                    self.cluster_name,
                    "--kubeconfig",
                    str(self.kubeconfig_path),
                ],
                timeout=120,
            )
            self._secure_kubeconfig()
            self.adopted = True
            return
        self.config_path.write_text(text)
        self.progress(f"creating kind cluster {self.cluster_name} ({self.spec.node_count} nodes, {self.node_image()})")
        try:
            self._stream(self.create_argv(keep_on_failure=keep_on_failure), timeout=1800)
            if not self.kubeconfig_path.is_file():
                raise BackendError(
                    f"kind created {self.cluster_name} but wrote no kubeconfig at {self.kubeconfig_path}",
                    fix="check that kind supports --kubeconfig (kind >= 0.8)",
                )
            self._secure_kubeconfig()
        except BaseException:
            if not keep_on_failure:
                self._cleanup_after_failed_create()
            raise

    def _secure_kubeconfig(self) -> None:
        os.chmod(self.kubeconfig_path, 0o600)

    def _cleanup_after_failed_create(self) -> None:
        """kind removes its nodes itself when create fails without --retain; make sure nothing is left."""
        try:
            self.down()
        except CiliumLabsError as exc:
            self.progress(f"warning: cleanup after the failed create also failed: {exc}")

    def down(self) -> None:
        """``kind delete cluster`` (a no-op for a cluster that does not exist), then remove any leftovers."""
        if _run.which("kind") is not None:
            try:
                _run.run(self.delete_argv(), timeout=300)
            except CommandError as exc:
                self.progress(f"warning: kind delete cluster failed: {exc}")
        try:
            client = self.docker()
        except PreflightError:
            return
        leftovers = docker_nodes.remove_cluster_containers(client, self.cluster_name)
        if leftovers:
            self.progress(f"removed leftover containers: {', '.join(leftovers)}")

    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        return (state_dir / CONFIG_FILE).exists()

    def force_down(self) -> None:
        """``down`` already finds everything by name: ``kind delete cluster --name``, then the containers
        labelled ``io.x-k8s.kind.cluster=<name>`` that kind left; then the kubeconfig."""
        self.down()
        self.kubeconfig_path.unlink(missing_ok=True)

    def leftovers(self) -> list[str] | None:
        """The lab's node containers, found by kind's cluster label; None when Docker cannot be asked."""
        try:
            return [f"kind node container {c.name}" for c in docker_nodes.cluster_containers(self.docker(),
                                                                                             self.cluster_name)]
        except Exception:  # no Docker here: cannot tell
            return None

    def is_up(self) -> bool:
        """kind knows nodes of this cluster (``kind get nodes``) and its control plane container is running."""
        try:
            res = _run.run(["kind", "get", "nodes", "--name", self.cluster_name], timeout=60)
            if not res.stdout.strip():
                return False
            containers = docker_nodes.node_containers(self.docker(), self.cluster_name)
            return any(c.running for c in containers if c.role == "control-plane")
        except CiliumLabsError:
            return False

    def nodes(self) -> list[Node]:
        return docker_nodes.nodes(self.docker(), self.cluster_name)

    def kubeconfig(self) -> Path:
        if not self.kubeconfig_path.is_file():
            raise BackendError(f"lab {self.cluster_name} has no kubeconfig yet", fix="run `cilium-labs up` first")
        return self.kubeconfig_path

    def dump_logs(self, dest: Path) -> list[Path]:
        """``kind export logs`` into ``dest/kind`` (node journals, container logs, kubelet, containerd)."""
        target = Path(dest) / "kind"
        target.mkdir(parents=True, exist_ok=True)
        _run.run(["kind", "export", "logs", str(target), "--name", self.cluster_name], timeout=600)
        return sorted(p for p in target.rglob("*") if p.is_file())

    def api_server_endpoint(self) -> tuple[str, int] | None:
        """The control plane as nodes reach it: its container's address on the kind network (IPv4 first), or the
        HA load balancer's name, which is kind's controlPlaneEndpoint and so in the API server certificate."""
        try:
            containers = docker_nodes.node_containers(self.docker(), self.cluster_name)
        except CiliumLabsError:
            return None
        lb = [c for c in containers if c.role == docker_nodes.LB_ROLE]
        if lb:
            return lb[0].name, API_SERVER_PORT
        cps = [c for c in containers if c.role == "control-plane" and (c.ipv4 or c.ipv6)]
        if not cps:
            return None
        cp = cps[0]
        host = cp.ipv4 if (cp.ipv4 and 4 in self.spec.families) else (cp.ipv6 or cp.ipv4)
        assert host is not None
        return host, API_SERVER_PORT

    def plan(self) -> Plan:
        cfg = self.render_config()
        commands = [self.create_argv(keep_on_failure=False)]
        notes = [
            f"node image {self.node_image()}; kubeconfig written to {self.kubeconfig_path} (mode 0600)",
            "nodes stay NotReady until Cilium is installed (disableDefaultCNI: true)",
        ]
        if self.spec.kube_proxy_replacement:
            notes.append("kubeProxyMode: none; k8sServiceHost = the control-plane container's address, known after up")
        return Plan(backend=self.name, files={CONFIG_FILE: cfg}, commands=commands, notes=notes)

    def state(self) -> dict[str, Any]:
        return {"cluster": self.cluster_name, "kubeconfig": str(self.kubeconfig_path)}

    # -- capabilities ------------------------------------------------------------------------------------------
    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        return docker_nodes.exec_in(self.docker(), self.cluster_name, node, argv, timeout=timeout)

    def load_image(self, image: str) -> None:
        docker_nodes.ensure_image(self.docker(), image, self.progress)
        self.progress(f"loading {image} into the nodes")
        self._stream(self.load_argv([image]), timeout=1200)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        """tcpdump on the node's ``eth0`` (its link on the kind network) for ``seconds``; pcap bytes."""
        argv = ["timeout", "-s", "INT", f"{seconds:g}", "tcpdump", "-i", "eth0", "-U", "-w", "-", *bpf_filter.split()]
        code, out, err = docker_nodes.exec_raw(self.docker(), self.cluster_name, node, argv, timeout=seconds + 30)
        if code in (126, 127) and b"tcpdump" in err + out:
            raise CapabilityMissing(
                f"tcpdump is not installed in node {node}",
                fix="use a node image with tcpdump (FROM kindest/node + apt-get install tcpdump) via kind.node_image",
            )
        if code not in (0, 124) or not out.startswith((b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1")):
            raise BackendError(f"tcpdump in {node} failed (exit {code}): {err.decode(errors='replace').strip()[-300:]}")
        return out

    def agent_image(self) -> str | None:
        return self.spec.kind.cilium_image

    def preloads_images(self) -> bool:
        return bool(self.spec.kind.preload_images or self.spec.kind.cilium_image)

    def preload_images(self, images: Sequence[str]) -> list[str]:
        """Pull each image once on the host (skipping those already there) and ``kind load`` them all.

        A release image that cannot be pulled (offline host) is left to the nodes, with a warning; a locally
        built agent image that is missing is an error, because no registry has it.
        """
        if not self.preloads_images():
            return []
        client = self.docker()
        ready: list[str] = []
        for image in images:
            if not self.spec.kind.preload_images and image != self.spec.kind.cilium_image:
                continue
            try:
                docker_nodes.ensure_image(client, image, self.progress)
                ready.append(image)
            except BackendError as exc:
                if image == self.spec.kind.cilium_image:
                    raise BackendError(
                        f"the agent image {image} is not in the local Docker and cannot be pulled",
                        fix="build it first (e.g. `make kind-image` in a Cilium checkout) or fix kind.cilium_image",
                    ) from exc
                self.progress(f"warning: {exc.message}; the nodes will pull it themselves")
        if ready:
            self.progress(f"loading {len(ready)} image(s) into the nodes: {', '.join(ready)}")
            self._stream(self.load_argv(ready), timeout=1800)
        return ready

    def preload_commands(self, images: Sequence[str]) -> list[list[str]]:
        if not self.preloads_images():
            return []
        wanted = [i for i in images if self.spec.kind.preload_images or i == self.spec.kind.cilium_image]
        return [*(["docker", "pull", i] for i in wanted if i != self.spec.kind.cilium_image), self.load_argv(wanted)]
