"""The Cilium installer: chart sources and exact argv, capability dispatch, readiness and its diagnosis."""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k

from cilium_labs.backends.base import Backend, Node
from cilium_labs.cilium import install as I
from cilium_labs.errors import CapabilityMissing, ClusterError, CommandError, SpecError
from cilium_labs.spec import LabSpec, from_dict
from tests.helpers import FakeClock, chart

# -- stand-ins -----------------------------------------------------------------------------------------------------


class PlainBackend(Backend):
    """A backend with no capabilities: the installer must use Helm or cilium-cli."""

    name = "plain"

    def __init__(self, spec: LabSpec, state_dir: Path, endpoint: tuple[str, int] | None = None) -> None:
        super().__init__(spec, state_dir)
        self.endpoint = endpoint

    def up(self, *, keep_on_failure: bool = False) -> None: ...
    def down(self) -> None: ...
    def is_up(self) -> bool:
        return True

    def nodes(self) -> list[Node]:
        return []

    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def api_server_endpoint(self) -> tuple[str, int] | None:
        return self.endpoint


class SelfInstalling(PlainBackend):
    name = "selfinstall"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.installed: list[tuple[dict[str, Any], str]] = []

    def install_cilium(self, values: dict[str, Any], version: str) -> None:
        self.installed.append((values, version))


class Preloading(PlainBackend):
    name = "preload"

    def __init__(self, *a: Any, works: bool = True, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.works = works
        self.loaded: list[list[str]] = []

    def agent_image(self) -> str | None:
        return None

    def preloads_images(self) -> bool:
        return True

    def preload_images(self, images: Sequence[str]) -> list[str]:
        self.loaded.append(list(images))
        return list(images) if self.works else []

    def preload_commands(self, images: Sequence[str]) -> list[list[str]]:
        return [["load", *images]]


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> Any:
    return type("C", (), {"type": type_, "status": status, "reason": reason, "message": message})()


class FakeCluster:
    """Answers what ``rollout``/``diagnose`` read, with real kubernetes client model objects."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.context: str | None = None
        self.ready_after = 0  # polls until everything is ready; -1 = never
        self.polls = 0
        self.ds_exists = True
        self.fail_api = 0

    def _ready(self) -> bool:
        return self.ready_after >= 0 and self.polls > self.ready_after

    def daemon_set(self, ns: str, name: str) -> Any:
        self.polls += 1
        if self.fail_api:
            self.fail_api -= 1
            raise ClusterError("list: API unreachable")
        if not self.ds_exists:
            return None
        n = 3 if self._ready() else 1
        return k.V1DaemonSet(
            metadata=k.V1ObjectMeta(name=name, generation=2),
            spec=k.V1DaemonSetSpec(selector=k.V1LabelSelector(), template=k.V1PodTemplateSpec()),
            status=k.V1DaemonSetStatus(
                current_number_scheduled=3, desired_number_scheduled=3, number_misscheduled=0,
                number_ready=n, updated_number_scheduled=n, number_available=n, observed_generation=2,
            ),
        )  # fmt: skip

    def deployment(self, ns: str, name: str) -> Any:
        ok = self._ready()
        return k.V1Deployment(
            metadata=k.V1ObjectMeta(name=name, generation=1),
            spec=k.V1DeploymentSpec(replicas=1, selector=k.V1LabelSelector(), template=k.V1PodTemplateSpec()),
            status=k.V1DeploymentStatus(
                available_replicas=1 if ok else 0, updated_replicas=1, observed_generation=1,
                conditions=[k.V1DeploymentCondition(type="Available", status="True" if ok else "False")],
            ),
        )  # fmt: skip

    def nodes(self) -> list[Any]:
        ready = self._ready()
        out = []
        for i, name in enumerate(["lab-control-plane", "lab-worker", "lab-worker2"]):
            ok = ready or i == 0
            cond = k.V1NodeCondition(
                type="Ready",
                status="True" if ok else "False",
                reason="KubeletReady" if ok else "KubeletNotReady",
                message=""
                if ok
                else "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
            )
            out.append(k.V1Node(metadata=k.V1ObjectMeta(name=name), status=k.V1NodeStatus(conditions=[cond])))
        return out

    def pods(self, ns: str, selector: str = "", field_selector: str = "") -> list[Any]:
        if selector != I.AGENT_SELECTOR:
            return []
        good = k.V1Pod(
            metadata=k.V1ObjectMeta(name="cilium-aaaaa"),
            spec=k.V1PodSpec(node_name="lab-control-plane", containers=[]),
            status=k.V1PodStatus(phase="Running", conditions=[k.V1PodCondition(type="Ready", status="True")]),
        )
        bad = k.V1Pod(
            metadata=k.V1ObjectMeta(name="cilium-bbbbb"),
            spec=k.V1PodSpec(node_name="lab-worker", containers=[]),
            status=k.V1PodStatus(
                phase="Pending",
                conditions=[k.V1PodCondition(type="Ready", status="False")],
                container_statuses=[
                    k.V1ContainerStatus(
                        name="cilium-agent",
                        image="quay.io/cilium/cilium:v1.20.0",
                        image_id="",
                        ready=False,
                        restart_count=0,
                        state=k.V1ContainerState(
                            waiting=k.V1ContainerStateWaiting(
                                reason="ImagePullBackOff",
                                message='Back-off pulling image "quay.io/cilium/cilium:v1.20.0@sha256:abc"',
                            )
                        ),
                    )  # fmt: skip
                ],
            ),
        )
        crash = k.V1Pod(
            metadata=k.V1ObjectMeta(name="cilium-ccccc"),
            spec=k.V1PodSpec(node_name="lab-worker2", containers=[]),
            status=k.V1PodStatus(
                phase="Running",
                conditions=[k.V1PodCondition(type="Ready", status="False")],
                container_statuses=[
                    k.V1ContainerStatus(
                        name="cilium-agent",
                        image="x",
                        image_id="",
                        ready=False,
                        restart_count=4,
                        state=k.V1ContainerState(waiting=k.V1ContainerStateWaiting(reason="CrashLoopBackOff")),
                        last_state=k.V1ContainerState(
                            terminated=k.V1ContainerStateTerminated(exit_code=1, reason="Error")
                        ),
                    )  # fmt: skip
                ],
            ),
        )
        return [good, bad, crash]

    def events(self, ns: str, field_selector: str = "") -> list[Any]:
        if field_selector == "involvedObject.name=cilium-bbbbb":
            return [k.CoreV1Event(
                metadata=k.V1ObjectMeta(name="e1"), involved_object=k.V1ObjectReference(name="cilium-bbbbb"),
                type="Warning", reason="Failed",
                message='Failed to pull image "quay.io/cilium/cilium:v1.20.0@sha256:abc": lookup quay.io: no such host',
            )]  # fmt: skip
        return []

    def pod_logs(self, ns: str, pod: str, container: str, *, tail_lines: int = 20, previous: bool = False) -> str:
        assert pod == "cilium-ccccc" and previous
        return (
            'level=info msg="Starting"\n'
            'level=fatal msg="Unable to contact k8s api-server" error="dial tcp 10.96.0.1:443: i/o timeout"\n'
        )


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``helm`` and ``cilium`` stand-ins that record argv (and the values file they were given)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    recorder = tmp_path / "record.py"
    recorder.write_text(
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        "vals = argv[argv.index('--values') + 1] if '--values' in argv else None\n"
        "rec = {'argv': argv, 'values': open(vals).read() if vals else None}\n"
        "open(os.environ['FAKE_TOOL_LOG'], 'a').write(json.dumps(rec) + '\\n')\n"
        "print('Release \"cilium\" has been upgraded. Happy Helming!')\n"
        "fail = os.environ.get('FAKE_TOOL_FAIL')\n"
        "if fail: sys.stderr.write(fail + '\\n'); sys.exit(1)\n"
    )
    for tool in ("helm", "cilium"):
        (bindir / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{recorder}" "$0" "$@"\n')
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(tmp_path / "tools.jsonl"))
    monkeypatch.delenv("FAKE_TOOL_FAIL", raising=False)
    return tmp_path


def tool_calls(tmp: Path) -> list[dict[str, Any]]:
    log = tmp / "tools.jsonl"
    out = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    for rec in out:
        rec["argv"] = [Path(rec["argv"][0]).name, *rec["argv"][1:]]
    return out


def run_install(
    spec: LabSpec, backend: Backend, cluster: FakeCluster, lines: list[str] | None = None, **kw: Any
) -> None:
    clock = FakeClock()
    lines = [] if lines is None else lines
    # install() waits with the real clock; drive wait_ready through the fake one by patching it in
    orig = I.wait_ready

    def fast_wait(*a: Any, **kwargs: Any) -> Any:
        return orig(*a, **kwargs, clock=clock, sleep=clock.sleep)

    I.wait_ready = fast_wait  # type: ignore[assignment]
    try:
        I.install(spec, backend, cluster, progress=lines.append, **kw)  # type: ignore[arg-type]
    finally:
        I.wait_ready = orig  # type: ignore[assignment]


# -- argv --------------------------------------------------------------------------------------------------------


def test_chart_sources(tmp_path: Path) -> None:
    assert I.chart_source(LabSpec()) == I.ChartSource("repo", "cilium", "https://helm.cilium.io")
    assert I.chart_source(from_dict({"chart": "oci://quay.io/cilium/charts/cilium"})).kind == "oci"
    assert I.chart_source(from_dict({"chart": "https://example.org/charts/"})).repo == "https://example.org/charts"
    with pytest.raises(SpecError, match="does not exist"):
        I.chart_source(from_dict({"chart": str(tmp_path / "nope")}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="no Chart.yaml"):
        I.chart_source(from_dict({"chart": str(tmp_path / "empty")}))


def test_helm_argv(tmp_path: Path) -> None:
    argv = I.helm_install_argv(LabSpec(cilium_version="1.18.12"), "/s/v.yaml", "/s/kc")
    assert argv == [
        "helm", "upgrade", "--install", "cilium", "cilium", "--repo", "https://helm.cilium.io", "--version", "1.18.12",
        "--namespace", "kube-system", "--values", "/s/v.yaml", "--kubeconfig", "/s/kc",
    ]  # fmt: skip
    oci = I.helm_install_argv(
        from_dict({"chart": "oci://quay.io/cilium/charts/cilium", "cilium_namespace": "cilium"}), "v", "k"
    )
    assert oci[4:8] == ["oci://quay.io/cilium/charts/cilium", "--version", "1.20.0", "--namespace"]
    assert "--create-namespace" in oci and "--repo" not in oci
    path = chart("1.20.0")
    if path is not None:
        local = I.helm_install_argv(from_dict({"chart": str(path)}), "v", "k", context="ctx")
        assert local[4] == str(path) and "--version" not in local and local[-2:] == ["--kube-context", "ctx"]
    assert I.helm_uninstall_argv(LabSpec(), "k") == [
        "helm", "uninstall", "cilium", "--namespace", "kube-system", "--kubeconfig", "k", "--wait", "--timeout", "5m"
    ]  # fmt: skip


def test_cilium_cli_argv(tmp_path: Path) -> None:
    spec = from_dict({"installer": "cilium-cli", "cilium_version": "1.18.12"})
    assert I.cilium_cli_argv(spec, "v.yaml", "kc", upgrade=False) == [
        "cilium", "install", "--version", "1.18.12", "--values", "v.yaml",
        "--namespace", "kube-system", "--kubeconfig", "kc",
    ]  # fmt: skip
    up = I.cilium_cli_argv(spec, "v.yaml", "kc", upgrade=True, context="c")
    assert up[:2] == ["cilium", "upgrade"] and "--reset-values" in up and up[-2:] == ["--context", "c"]
    (tmp_path / "chartdir").mkdir()
    (tmp_path / "chartdir" / "Chart.yaml").write_text("name: cilium\nversion: 1.18.12\n")
    local = I.cilium_cli_argv(
        from_dict({"installer": "cilium-cli", "chart": str(tmp_path / "chartdir")}), "v", "k", upgrade=False
    )
    assert local[4:6] == ["--chart-directory", str(tmp_path / "chartdir")]
    with pytest.raises(SpecError, match="not an OCI registry"):
        I.cilium_cli_argv(from_dict({"installer": "cilium-cli", "chart": "oci://x/y"}), "v", "k", upgrade=False)
    path = chart("1.20.0")
    if path is not None:
        with pytest.raises(SpecError, match="not a packaged .tgz"):
            I.cilium_cli_argv(from_dict({"installer": "cilium-cli", "chart": str(path)}), "v", "k", upgrade=False)


def test_local_chart_must_match_version_and_know_the_values(tmp_path: Path) -> None:
    path = chart("1.18.12")
    if path is None:
        pytest.skip("chart cilium-1.18.12.tgz not found")
    backend = PlainBackend(from_dict({"chart": str(path), "cilium_version": "1.18.12"}), tmp_path)
    assert I.values_for(backend.spec, backend)["routingMode"] == "tunnel"
    wrong = PlainBackend(from_dict({"chart": str(path), "cilium_version": "1.20.0"}), tmp_path)
    with pytest.raises(SpecError, match="is Cilium 1.18.12, but cilium_version is 1.20.0"):
        I.values_for(wrong.spec, wrong)
    typo = PlainBackend(
        from_dict({"chart": str(path), "cilium_version": "1.18.12", "helm_values": {"hubbel": {}}}), tmp_path
    )
    with pytest.raises(SpecError, match="did you mean 'hubble'"):
        I.values_for(typo.spec, typo)
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert I.read_local_chart(tmp_path / "x" / "cilium")[0] == "1.18.12"


def test_plan_lists_values_and_commands(tmp_path: Path) -> None:
    spec = from_dict({"kube_proxy_replacement": True})
    files, commands = I.plan(spec, Preloading(spec, tmp_path))
    vals = yaml.safe_load(files["cilium-values.yaml"])
    assert vals["k8sServiceHost"] == I.PLAN_API_SERVER_PLACEHOLDER
    assert vals["image"]["useDigest"] is False
    assert commands[0] == ["load", "quay.io/cilium/cilium:v1.20.0", "quay.io/cilium/operator-generic:v1.20.0"]
    assert commands[1][:3] == ["helm", "upgrade", "--install"]
    files, commands = I.plan(spec, SelfInstalling(spec, tmp_path, endpoint=("10.1.2.3", 6443)))
    assert yaml.safe_load(files["cilium-values.yaml"])["k8sServiceHost"] == "10.1.2.3" and commands == []
    cli = from_dict({"installer": "cilium-cli"})
    assert I.plan(cli, PlainBackend(cli, tmp_path))[1][0][:2] == ["cilium", "install"]


# -- install ------------------------------------------------------------------------------------------------------


def test_install_with_helm_then_waits(fake_tools: Path, tmp_path: Path) -> None:
    spec = from_dict({"kube_proxy_replacement": True, "cilium_version": "1.16.19"})
    backend = PlainBackend(spec, tmp_path / "st", endpoint=("172.18.0.2", 6443))
    cluster = FakeCluster(tmp_path / "kc")
    cluster.ready_after = 3
    lines: list[str] = []
    run_install(spec, backend, cluster, lines)
    (call,) = tool_calls(fake_tools)
    assert call["argv"] == I.helm_install_argv(spec, tmp_path / "st" / "cilium-values.yaml", tmp_path / "kc")
    vals = yaml.safe_load(call["values"])
    assert (vals["k8sServiceHost"], vals["k8sServicePort"], vals["kubeProxyReplacement"]) == (
        "172.18.0.2",
        6443,
        "true",
    )
    assert any(line.startswith("helm: Release") for line in lines)
    assert any("agents 1/3 ready" in line for line in lines) and lines[-1] == "Cilium is ready"
    run_install(spec, backend, cluster)  # re-running is the same idempotent upgrade
    assert len(tool_calls(fake_tools)) == 2


def test_install_helm_failure_is_a_command_error(
    fake_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TOOL_FAIL", "Error: INSTALLATION FAILED: Kubernetes cluster unreachable")
    spec = LabSpec()
    with pytest.raises(CommandError, match="Kubernetes cluster unreachable"):
        run_install(spec, PlainBackend(spec, tmp_path), FakeCluster(tmp_path / "kc"))


def test_install_with_cilium_cli_upgrades_an_existing_install(fake_tools: Path, tmp_path: Path) -> None:
    spec = from_dict({"installer": "cilium-cli"})
    cluster = FakeCluster(tmp_path / "kc")
    orig = cluster.daemon_set
    answers = iter([None])  # no DaemonSet when install looks, then the one the install created

    def first_absent(ns: str, name: str) -> Any:
        return next(answers, orig(ns, name))

    cluster.daemon_set = first_absent  # type: ignore[method-assign]
    run_install(spec, PlainBackend(spec, tmp_path), cluster)
    assert tool_calls(fake_tools)[-1]["argv"][:2] == ["cilium", "install"]
    run_install(spec, PlainBackend(spec, tmp_path), cluster)
    assert tool_calls(fake_tools)[-1]["argv"][:2] == ["cilium", "upgrade"]


def test_backend_that_installs_cilium_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no helm anywhere: it must not be needed
    spec = from_dict({"cilium_version": "1.14.19"})
    backend = SelfInstalling(spec, tmp_path)
    run_install(spec, backend, FakeCluster(tmp_path / "kc"))
    ((values, version),) = backend.installed
    assert version == "1.14.19" and values["routingMode"] == "tunnel"
    with pytest.raises(CapabilityMissing):
        I.uninstall(spec, backend, FakeCluster(tmp_path / "kc"), progress=lambda _: None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("works", "digest_off"), [(True, True), (False, False)])
def test_preloaded_images_turn_digests_off(fake_tools: Path, tmp_path: Path, works: bool, digest_off: bool) -> None:
    spec = LabSpec()
    backend = Preloading(spec, tmp_path, works=works)
    run_install(spec, backend, FakeCluster(tmp_path / "kc"))
    assert backend.loaded == [["quay.io/cilium/cilium:v1.20.0", "quay.io/cilium/operator-generic:v1.20.0"]]
    vals = yaml.safe_load(tool_calls(fake_tools)[-1]["values"])
    assert ("image" in vals and vals["image"]["useDigest"] is False) == digest_off


def test_uninstall(fake_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = LabSpec()
    lines: list[str] = []
    I.uninstall(spec, PlainBackend(spec, tmp_path), FakeCluster(tmp_path / "kc"), progress=lines.append)  # type: ignore[arg-type]
    assert tool_calls(fake_tools)[-1]["argv"][:3] == ["helm", "uninstall", "cilium"]
    monkeypatch.setenv("FAKE_TOOL_FAIL", "Error: uninstall: Release not loaded: cilium: release: not found")
    I.uninstall(spec, PlainBackend(spec, tmp_path), FakeCluster(tmp_path / "kc"), progress=lines.append)  # type: ignore[arg-type]
    assert lines[-1] == "Cilium is not installed; nothing to remove"
    monkeypatch.setenv("FAKE_TOOL_FAIL", "Error: Kubernetes cluster unreachable")
    with pytest.raises(CommandError):
        I.uninstall(spec, PlainBackend(spec, tmp_path), FakeCluster(tmp_path / "kc"), progress=lines.append)  # type: ignore[arg-type]
    cli = from_dict({"installer": "cilium-cli"})
    gone = FakeCluster(tmp_path / "kc")
    gone.ds_exists = False
    monkeypatch.delenv("FAKE_TOOL_FAIL")
    n = len(tool_calls(fake_tools))
    I.uninstall(cli, PlainBackend(cli, tmp_path), gone, progress=lines.append)  # type: ignore[arg-type]
    assert len(tool_calls(fake_tools)) == n


# -- readiness ------------------------------------------------------------------------------------------------------


def test_wait_ready_survives_api_hiccups(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path / "kc")
    cluster.fail_api = 2
    clock = FakeClock()
    lines: list[str] = []
    state = I.wait_ready(LabSpec(), cluster, progress=lines.append, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert state.done and lines[0].startswith("waiting for the API server")


def test_timeout_says_which_pods_and_why(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path / "kc")
    cluster.ready_after = -1
    clock = FakeClock()
    with pytest.raises(I.InstallTimeout) as err:
        I.wait_ready(LabSpec(), cluster, progress=lambda _: None, timeout_s=30, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    msg = str(err.value)
    assert "not ready after 30s (agents 1/3 ready (1 updated), operator 0/1 available, nodes 1/3 Ready)" in msg
    assert "node lab-worker is not Ready (KubeletNotReady: container runtime network not ready" in msg
    assert "pod kube-system/cilium-bbbbb on lab-worker: phase Pending" in msg
    assert 'container cilium-agent: waiting (ImagePullBackOff: Back-off pulling image "quay.io/cil' in msg
    assert "event Failed: Failed to pull image" in msg and "no such host" in msg
    assert "container cilium-agent: waiting (CrashLoopBackOff)" in msg
    assert "last log lines of cilium-agent (previous run):" in msg and "Unable to contact k8s api-server" in msg
    assert "cilium-aaaaa" not in msg  # the ready pod is not blamed
    assert 30 <= clock.now <= 32


def test_rollout_is_not_done_until_the_new_generation_is_observed(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path / "kc")
    assert I.rollout(LabSpec(), cluster).done  # type: ignore[arg-type]
    stale = FakeCluster(tmp_path / "kc")
    orig = stale.daemon_set

    def old_generation(ns: str, name: str) -> Any:
        ds = orig(ns, name)
        ds.metadata.generation = 3
        return ds

    stale.daemon_set = old_generation  # type: ignore[method-assign]
    assert not I.rollout(LabSpec(), stale).done  # type: ignore[arg-type]


def test_a_backend_with_a_known_underlay_mtu_sets_it_unless_the_spec_does(tmp_path) -> None:
    from cilium_labs.backends.gcp import GcpBackend
    from cilium_labs.cilium.install import values_for
    from cilium_labs.spec import from_dict

    spec = from_dict({"name": "mtu", "backend": "gcp", "gcp": {"project": "p"}})
    assert values_for(spec, GcpBackend(spec, tmp_path))["MTU"] == 1460
    own = spec.replace(mtu=1400)
    assert values_for(own, GcpBackend(own, tmp_path))["MTU"] == 1400
