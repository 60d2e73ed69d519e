"""Install, upgrade and remove Cilium on any backend's cluster, then wait until it is really rolled out.

The same code path serves every backend; it branches only on capabilities: a backend that installs Cilium itself
(``CiliumInstaller``, the simulator, which no Helm can reach) gets the values directly, one that can side-load
images (``PreloadCiliumImages``, kind) gets them loaded first. Everyone else gets Helm (default) or cilium-cli.

Helm is run as ``helm upgrade --install`` so re-running install upgrades in place; cilium-cli has no idempotent
install (cilium-cli#205), so an existing DaemonSet switches it to ``cilium upgrade``. Neither tool's own wait is
trusted (cilium-cli#1070): readiness is read from the Kubernetes API, and on timeout the error says which pods are
not ready and why (container states, events, last log lines).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from .. import _run
from .._merge import deep_merge
from ..backends.base import (
    Backend,
    CiliumInstaller,
    PreloadCiliumImages,
    Progress,
    ProvidesCilium,
    RecommendsMtu,
)
from ..cluster import Cluster
from ..errors import CapabilityMissing, CiliumLabsError, ClusterError, CommandError, SpecError
from ..spec import LabSpec, parse_version
from ..state import atomic_write
from . import values as values_mod

CILIUM_HELM_REPO = "https://helm.cilium.io"
RELEASE = "cilium"
VALUES_FILE = "cilium-values.yaml"
AGENT_DAEMONSET = "cilium"
OPERATOR_DEPLOYMENT = "cilium-operator"
AGENT_SELECTOR = "k8s-app=cilium"
OPERATOR_SELECTOR = "io.cilium/app=operator"
PLAN_API_SERVER_PLACEHOLDER = "API-SERVER-ADDRESS"
"""Stands for the control plane's address in ``plan`` output when the backend knows it only after ``up``."""


class InstallTimeout(ClusterError):
    """Cilium did not roll out in time; the message lists what is not ready and why."""


@attrs.frozen
class ChartSource:
    """Where the chart comes from: the Cilium repository, an OCI registry, or a chart on disk."""

    kind: Literal["repo", "oci", "local"]
    ref: str
    """Chart name for ``repo``, ``oci://`` URL, or local path."""
    repo: str | None = None


def chart_source(spec: LabSpec) -> ChartSource:
    """Resolve ``spec.chart``; a local path must exist (checked before anything runs)."""
    chart = spec.chart
    if chart is None or chart == "":
        return ChartSource("repo", "cilium", CILIUM_HELM_REPO)
    if chart.startswith("oci://"):
        return ChartSource("oci", chart)
    if chart.startswith(("https://", "http://")):
        return ChartSource("repo", "cilium", chart.rstrip("/"))
    path = Path(chart).expanduser()
    if not path.exists():
        raise SpecError(
            "chart",
            f"{chart} does not exist",
            fix="give a chart directory, a .tgz, oci://quay.io/cilium/charts/cilium, or leave it empty",
        )
    if path.is_dir() and not (path / "Chart.yaml").is_file():
        raise SpecError(
            "chart", f"{chart} has no Chart.yaml", fix="point at the chart folder (install/kubernetes/cilium)"
        )
    return ChartSource("local", str(path.resolve()))


def read_local_chart(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(chart version, default values)`` of a chart directory or packaged ``.tgz``."""
    p = Path(path)
    try:
        if p.is_dir():
            meta = yaml.safe_load((p / "Chart.yaml").read_text())
            defaults = yaml.safe_load((p / "values.yaml").read_text()) if (p / "values.yaml").exists() else {}
        else:
            with tarfile.open(p) as tar:
                names = {m.name: m for m in tar.getmembers()}
                chart_yaml = next((n for n in names if n.count("/") == 1 and n.endswith("/Chart.yaml")), None)
                if chart_yaml is None:
                    raise SpecError("chart", f"{p} holds no <name>/Chart.yaml", fix="give a packaged Helm chart")
                root = chart_yaml.rsplit("/", 1)[0]
                meta = yaml.safe_load(_read_member(tar, chart_yaml))
                vals = f"{root}/values.yaml"
                defaults = yaml.safe_load(_read_member(tar, vals)) if vals in names else {}
    except (OSError, tarfile.TarError, yaml.YAMLError) as exc:
        raise SpecError("chart", f"cannot read the chart at {p}: {exc}", fix="give a valid chart") from exc
    if not isinstance(meta, dict) or "version" not in meta:
        raise SpecError("chart", f"{p}: Chart.yaml has no version", fix="give a valid chart")
    return str(meta["version"]), defaults if isinstance(defaults, dict) else {}


def _read_member(tar: tarfile.TarFile, name: str) -> str:
    f = tar.extractfile(name)
    if f is None:
        raise SpecError("chart", f"{name} in the chart archive is not a file", fix="give a valid chart")
    with io.TextIOWrapper(f, encoding="utf-8") as text:
        return text.read()


def _chart_version(spec: LabSpec) -> str:
    return spec.cilium_version.lstrip("v")


def release_images(spec: LabSpec, agent_image: str | None = None) -> list[str]:
    """Agent and operator images of the release (the ones every node needs), for side-loading."""
    tag = "v" + _chart_version(spec)
    return [agent_image or f"quay.io/cilium/cilium:{tag}", f"quay.io/cilium/operator-generic:{tag}"]


def _kubeconfig_for_plan(backend: Backend) -> str:
    try:
        return str(backend.kubeconfig())
    except CiliumLabsError:
        return str(backend.state_dir / "kubeconfig")


def values_for(
    spec: LabSpec, backend: Backend, *, images_preloaded: bool = False, for_plan: bool = False
) -> dict[str, Any]:
    """The values for this spec on this backend (API server address from the backend when it knows it)."""
    spec = with_backend_chart(spec, backend)
    endpoint = backend.api_server_endpoint()
    host: str | None = None
    port = 6443
    if endpoint is not None:
        host, port = endpoint
    elif for_plan and spec.kube_proxy_replacement and "k8sServiceHost" not in spec.helm_values:
        host = PLAN_API_SERVER_PLACEHOLDER
    agent = backend.agent_image() if isinstance(backend, PreloadCiliumImages) else None
    if spec.mtu == 0 and isinstance(backend, RecommendsMtu):
        spec = spec.replace(mtu=backend.recommended_mtu())
    vals = values_mod.helm_values(
        spec, k8s_service_host=host, k8s_service_port=port, images_preloaded=images_preloaded, agent_image=agent
    )
    if isinstance(backend, ProvidesCilium):
        vals = deep_merge(deep_merge(vals, backend.backend_values()), spec.helm_values)
    source = chart_source(spec)
    if source.kind == "local":
        chart_version, defaults = read_local_chart(source.ref)
        want = spec.cilium_version_tuple[:2]
        got = parse_version(chart_version, "chart")[:2]
        if got != want:
            raise SpecError(
                "chart",
                f"the chart at {source.ref} is Cilium {chart_version}, but cilium_version is {spec.cilium_version}",
                fix=f"set cilium_version: {chart_version} so the values match the chart",
            )
        values_mod.check_against_chart(spec.helm_values, defaults, chart_version)
    return vals


def with_backend_chart(spec: LabSpec, backend: Backend) -> LabSpec:
    """The spec with the backend's own chart when it brings one and the spec names none."""
    if not spec.chart and isinstance(backend, ProvidesCilium):
        return spec.replace(chart=backend.chart())
    return spec


def helm_program(backend: Backend) -> str:
    return backend.helm() if isinstance(backend, ProvidesCilium) else "helm"


def helm_install_argv(
    spec: LabSpec, values_file: str | Path, kubeconfig: str | Path, *, context: str | None = None
) -> list[str]:
    """``helm upgrade --install`` for the spec's chart source (install and upgrade are the same command)."""
    source = chart_source(spec)
    argv = ["helm", "upgrade", "--install", RELEASE, source.ref]
    if source.kind == "repo":
        assert source.repo is not None
        argv += ["--repo", source.repo]
    if source.kind != "local":
        argv += ["--version", _chart_version(spec)]
    argv += ["--namespace", spec.cilium_namespace]
    if spec.cilium_namespace != "kube-system":
        argv.append("--create-namespace")
    argv += ["--values", str(values_file), "--kubeconfig", str(kubeconfig)]
    if context:
        argv += ["--kube-context", context]
    return argv


def helm_uninstall_argv(spec: LabSpec, kubeconfig: str | Path, *, context: str | None = None) -> list[str]:
    argv = ["helm", "uninstall", RELEASE, "--namespace", spec.cilium_namespace, "--kubeconfig", str(kubeconfig)]
    if context:
        argv += ["--kube-context", context]
    return argv + ["--wait", "--timeout", "5m"]


def cilium_cli_argv(
    spec: LabSpec, values_file: str | Path, kubeconfig: str | Path, *, upgrade: bool, context: str | None = None
) -> list[str]:
    """``cilium install`` (or ``upgrade`` on a cluster that has Cilium): flags as cilium-cli's cli/install.go
    defines them (``--version``, ``--values``, ``--chart-directory``, ``--repository``; root ``--namespace``,
    ``--kubeconfig``, ``--context``)."""
    source = chart_source(spec)
    argv = ["cilium", "upgrade" if upgrade else "install", "--version", _chart_version(spec)]
    if source.kind == "local":
        if not Path(source.ref).is_dir():
            raise SpecError(
                "chart",
                "cilium-cli takes a chart directory (--chart-directory), not a packaged .tgz",
                fix="extract the .tgz and point chart at the folder, or use installer: helm",
            )
        argv += ["--chart-directory", source.ref]
    elif source.kind == "oci":
        raise SpecError(
            "chart",
            "cilium-cli downloads charts from an HTTP repository (--repository), not an OCI registry",
            fix="use installer: helm for oci:// charts",
        )
    elif source.repo != CILIUM_HELM_REPO:
        assert source.repo is not None
        argv += ["--repository", source.repo]
    argv += ["--values", str(values_file)]
    if upgrade:
        argv.append("--reset-values")
    argv += ["--namespace", spec.cilium_namespace, "--kubeconfig", str(kubeconfig)]
    if context:
        argv += ["--context", context]
    return argv


def cilium_cli_uninstall_argv(spec: LabSpec, kubeconfig: str | Path, *, context: str | None = None) -> list[str]:
    argv = ["cilium", "uninstall", "--wait", "--namespace", spec.cilium_namespace, "--kubeconfig", str(kubeconfig)]
    return argv + (["--context", context] if context else [])


def plan(spec: LabSpec, backend: Backend) -> tuple[dict[str, str], list[list[str]]]:
    """The values file and the exact commands ``install`` would run, touching nothing."""
    spec = with_backend_chart(spec, backend)
    preload = isinstance(backend, PreloadCiliumImages) and backend.preloads_images()
    vals = values_for(spec, backend, images_preloaded=preload, for_plan=True)
    files = {VALUES_FILE: values_mod.to_yaml(vals)}
    values_path = backend.state_dir / VALUES_FILE
    kubeconfig = _kubeconfig_for_plan(backend)
    commands: list[list[str]] = []
    if isinstance(backend, PreloadCiliumImages) and preload:
        commands += backend.preload_commands(release_images(spec, backend.agent_image()))
    if isinstance(backend, CiliumInstaller):
        return files, commands
    if spec.installer == "cilium-cli":
        return files, [*commands, cilium_cli_argv(spec, values_path, kubeconfig, upgrade=False)]
    argv = helm_install_argv(spec, values_path, kubeconfig)
    return files, [*commands, [helm_program(backend), *argv[1:]]]


def install(
    spec: LabSpec,
    backend: Backend,
    cluster: Cluster,
    *,
    progress: Progress,
    timeout_s: float = 600,
) -> None:
    """Install or upgrade Cilium as the spec says, then wait until agents, operator and nodes are ready."""
    spec = with_backend_chart(spec, backend)
    images_preloaded = False
    if isinstance(backend, PreloadCiliumImages) and backend.preloads_images():
        images = release_images(spec, backend.agent_image())
        loaded = backend.preload_images(images)
        images_preloaded = bool(loaded) and set(images) <= set(loaded)
    vals = values_for(spec, backend, images_preloaded=images_preloaded)
    version = _chart_version(spec)
    if isinstance(backend, CiliumInstaller):
        progress(f"installing Cilium {version} through the {backend.name} backend")
        backend.install_cilium(vals, version)
    else:
        values_path = backend.state_dir / VALUES_FILE
        atomic_write(values_path, values_mod.to_yaml(vals))  # 0600: Helm values may hold secrets
        if spec.installer == "cilium-cli":
            upgrade = cluster.daemon_set(spec.cilium_namespace, AGENT_DAEMONSET) is not None
            argv = cilium_cli_argv(spec, values_path, cluster.kubeconfig, upgrade=upgrade, context=cluster.context)
            if spec.cilium_version_tuple < (1, 14, 0):
                progress("warning: cilium-cli supports Cilium 1.14+ (its README: 1.17+); prefer installer: helm")
        else:
            argv = helm_install_argv(spec, values_path, cluster.kubeconfig, context=cluster.context)
            argv[0] = helm_program(backend)
        progress(f"installing (or upgrading) Cilium {version}: {' '.join(argv[:4])}")
        _run_tool(argv, progress, timeout_s)
    wait_ready(spec, cluster, progress=progress, timeout_s=timeout_s)


def _run_tool(argv: list[str], progress: Progress, timeout_s: float) -> None:
    tool = Path(argv[0]).name

    def on_line(_stream: str, line: str) -> None:
        if line.strip():
            progress(f"{tool}: {line}")

    _run.stream(argv, on_line, timeout=timeout_s)


def uninstall(spec: LabSpec, backend: Backend, cluster: Cluster, *, progress: Progress) -> None:
    """Remove Cilium (a no-op when it is not installed) and wait for its agents to go."""
    if isinstance(backend, CiliumInstaller):
        remove = getattr(backend, "uninstall_cilium", None)
        if remove is None:
            raise CapabilityMissing(f"the {backend.name} backend installs Cilium itself and cannot remove it")
        remove()
        return
    if spec.installer == "cilium-cli":
        if cluster.daemon_set(spec.cilium_namespace, AGENT_DAEMONSET) is None:
            progress("Cilium is not installed; nothing to remove")
            return
        argv = cilium_cli_uninstall_argv(spec, cluster.kubeconfig, context=cluster.context)
    else:
        argv = helm_uninstall_argv(spec, cluster.kubeconfig, context=cluster.context)
        argv[0] = helm_program(backend)
    progress(f"removing Cilium: {' '.join(argv[:3])}")
    try:
        _run_tool(argv, progress, 600)
    except CommandError as exc:
        if "not found" in exc.stderr:
            progress("Cilium is not installed; nothing to remove")
            return
        raise


# -- readiness ------------------------------------------------------------------------------------------------


@attrs.frozen
class Rollout:
    """One look at how far the rollout got."""

    agents_desired: int
    agents_ready: int
    agents_updated: int
    operator_desired: int
    operator_available: int
    nodes: int
    nodes_ready: int
    done: bool

    def summary(self) -> str:
        return (
            f"agents {self.agents_ready}/{self.agents_desired} ready ({self.agents_updated} updated), "
            f"operator {self.operator_available}/{self.operator_desired} available, "
            f"nodes {self.nodes_ready}/{self.nodes} Ready"
        )


def _node_ready(node: Any) -> bool:
    for cond in (node.status.conditions or []) if node.status else []:
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


def rollout(spec: LabSpec, cluster: Cluster) -> Rollout:
    """Read the DaemonSet, the operator Deployment and the nodes once."""
    ns = spec.cilium_namespace
    ds: Any = cluster.daemon_set(ns, AGENT_DAEMONSET)
    dep: Any = cluster.deployment(ns, OPERATOR_DEPLOYMENT)
    nodes: list[Any] = cluster.nodes()
    ready_nodes = sum(1 for n in nodes if _node_ready(n))
    a_desired = a_ready = a_updated = a_available = 0
    ds_current = False
    if ds is not None and ds.status is not None:
        st = ds.status
        a_desired = st.desired_number_scheduled or 0
        a_ready = st.number_ready or 0
        a_updated = st.updated_number_scheduled or 0
        a_available = st.number_available or 0
        ds_current = (st.observed_generation or 0) >= (ds.metadata.generation or 0)
    o_desired = o_available = 0
    dep_done = False
    if dep is not None:
        o_desired = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
        dst = dep.status
        if dst is not None:
            st = dst
            o_available = st.available_replicas or 0
            conds = {c.type: c.status for c in (st.conditions or [])}
            dep_done = (
                conds.get("Available") == "True"
                and (st.updated_replicas or 0) >= o_desired
                and o_available >= o_desired
                and (st.observed_generation or 0) >= (dep.metadata.generation or 0)
            )
    done = (
        ds_current
        and a_desired > 0
        and a_ready == a_desired
        and a_updated == a_desired
        and a_available == a_desired
        and dep_done
        and len(nodes) > 0
        and ready_nodes == len(nodes)
    )
    return Rollout(a_desired, a_ready, a_updated, o_desired, o_available, len(nodes), ready_nodes, done)


def wait_ready(
    spec: LabSpec,
    cluster: Cluster,
    *,
    progress: Progress,
    timeout_s: float = 600,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Rollout:
    """Poll until the rollout is complete; report each change; on timeout raise ``InstallTimeout`` with why."""
    deadline = clock() + timeout_s
    last = ""
    api_errors = 0
    while True:
        try:
            state = rollout(spec, cluster)
            api_errors = 0
        except ClusterError as exc:  # the API server restarts under a fresh CNI now and then: keep polling
            api_errors += 1
            if api_errors == 1 or api_errors % 10 == 0:
                progress(f"waiting for the API server: {exc}")
            state = None
        if state is not None:
            line = state.summary()
            if line != last:
                progress(f"Cilium rollout: {line}")
                last = line
            if state.done:
                progress("Cilium is ready")
                return state
        if clock() >= deadline:
            raise InstallTimeout(
                f"Cilium was not ready after {timeout_s:g}s ({last or 'the API did not answer'}):\n"
                + diagnose(spec, cluster),
            )
        sleep(poll_s)


def diagnose(spec: LabSpec, cluster: Cluster, *, log_lines: int = 10) -> str:
    """Why the Cilium pods and nodes are not ready: one block per problem, for the timeout message."""
    out: list[str] = []
    try:
        nodes: list[Any] = cluster.nodes()
        for node in nodes:
            if not _node_ready(node):
                cond = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
                why = f"{cond.reason}: {cond.message}" if cond is not None else "no Ready condition"
                out.append(f"node {node.metadata.name} is not Ready ({why})")
        ns = spec.cilium_namespace
        pods = cluster.pods(ns, AGENT_SELECTOR) + cluster.pods(ns, OPERATOR_SELECTOR)
        if not pods:
            out.append(f"no Cilium pods in {ns} (labels {AGENT_SELECTOR}, {OPERATOR_SELECTOR})")
        for pod in pods:
            out.extend(_diagnose_pod(cluster, ns, pod, log_lines))
    except ClusterError as exc:
        out.append(f"could not read the cluster to say more: {exc}")
    return "\n".join(out) if out else "every Cilium pod and node reports ready; the rollout was still progressing"


def _pod_ready(pod: Any) -> bool:
    conds = (pod.status.conditions or []) if pod.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def _container_problem(cs: Any) -> str | None:
    state = cs.state
    if state is not None and state.waiting is not None:
        msg = f": {state.waiting.message}" if state.waiting.message else ""
        return f"waiting ({state.waiting.reason}{msg})"
    if state is not None and state.terminated is not None:
        t = state.terminated
        return f"terminated ({t.reason}, exit code {t.exit_code})"
    if not cs.ready:
        last = cs.last_state.terminated if cs.last_state is not None else None
        extra = f"; last exit {last.reason} code {last.exit_code}" if last is not None else ""
        return f"running but not ready, {cs.restart_count} restarts{extra}"
    return None


def _diagnose_pod(cluster: Cluster, ns: str, pod: Any, log_lines: int) -> list[str]:
    name = pod.metadata.name
    if pod.status is not None and pod.status.phase == "Succeeded":
        return []
    if _pod_ready(pod):
        return []
    node = pod.spec.node_name if pod.spec else None
    lines = [f"pod {ns}/{name} on {node or '(unscheduled)'}: phase {pod.status.phase if pod.status else '?'}"]
    statuses = list((pod.status.init_container_statuses or []) if pod.status else []) + list(
        (pod.status.container_statuses or []) if pod.status else []
    )
    log_from: list[tuple[str, bool]] = []
    for cs in statuses:
        problem = _container_problem(cs)
        if problem and not (cs.state and cs.state.terminated and cs.state.terminated.exit_code == 0):
            lines.append(f"  container {cs.name}: {problem}")
            started = cs.state is not None and (cs.state.running is not None or cs.state.terminated is not None)
            if started or cs.restart_count:
                log_from.append((cs.name, not started))
    try:
        events = cluster.events(ns, f"involvedObject.name={name}")
    except ClusterError:
        events = []
    for ev in events[-5:]:
        if ev.type != "Normal" or ev.reason in ("FailedScheduling", "BackOff"):
            lines.append(f"  event {ev.reason}: {(ev.message or '').strip()}")
    for container, previous in log_from[:2]:
        try:
            text = cluster.pod_logs(ns, name, container, tail_lines=log_lines, previous=previous)
        except ClusterError:
            continue
        tail = [ln for ln in text.splitlines() if ln.strip()][-log_lines:]
        if tail:
            lines.append(f"  last log lines of {container}{' (previous run)' if previous else ''}:")
            lines.extend(f"    {ln}" for ln in tail)
    return lines


__all__ = [
    "CILIUM_HELM_REPO",
    "ChartSource",
    "InstallTimeout",
    "Rollout",
    "chart_source",
    "cilium_cli_argv",
    "diagnose",
    "helm_install_argv",
    "install",
    "plan",
    "release_images",
    "rollout",
    "uninstall",
    "values_for",
    "wait_ready",
]
