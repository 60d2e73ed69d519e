"""The kind backend: pre-flight, lifecycle argv and failure handling, through a stand-in ``kind`` on PATH.

``tests/fakes/kind`` accepts only the flags kind itself defines (a wrong argv exits 2 and fails the test) and
records every call. The Docker side is a small in-memory stand-in here; the real Docker engine is exercised in
``tests/integration/backends/test_kind_docker.py``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from cilium_labs.backends.base import LoadImage, NodeExec, PreloadCiliumImages
from cilium_labs.backends.kind import KindBackend
from cilium_labs.errors import BackendError, CommandError, PreflightError
from cilium_labs.spec import LabSpec, from_dict

FAKES = Path(__file__).resolve().parents[2] / "fakes"


# -- stand-ins ---------------------------------------------------------------------------------------------------


class ImageNotFound(Exception):
    pass


class FakeContainer:
    def __init__(self, name: str, role: str, cluster: str, v4: str = "", v6: str = "", status: str = "running"):
        self.name = name
        self.labels = {"io.x-k8s.kind.cluster": cluster, "io.x-k8s.kind.role": role}
        self.attrs = {"NetworkSettings": {"Networks": {"kind": {"IPAddress": v4, "GlobalIPv6Address": v6}}}}
        self.status = status
        self.removed = False

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.removed = True


class FakeDocker:
    """Just what the backend asks the Docker SDK: containers by label, info, images get/pull."""

    def __init__(self, cgroup: str = "2") -> None:
        self.containers_: list[FakeContainer] = []
        self.cgroup = cgroup
        self.images_present: set[str] = set()
        self.pulled: list[tuple[str, str]] = []
        self.pull_fails: set[str] = set()
        outer = self

        class Containers:
            def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
                want = (filters or {}).get("label", "")
                key, _, value = want.partition("=")
                return [c for c in outer.containers_ if not c.removed and c.labels.get(key) == value]

        class Images:
            def get(self, ref: str) -> object:
                if ref not in outer.images_present:
                    raise ImageNotFound(ref)
                return object()

            def pull(self, repo: str, tag: str | None = None) -> object:
                ref = f"{repo}:{tag}"
                if ref in outer.pull_fails:
                    raise RuntimeError(f"Get https://{repo}: dial tcp: lookup failed")
                outer.pulled.append((repo, str(tag)))
                outer.images_present.add(ref)
                return object()

        self.containers = Containers()
        self.images = Images()

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"CgroupVersion": self.cgroup}


@pytest.fixture
def kind_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The fake kind and a fake helm first on PATH, a fake /proc with generous limits, call log and state."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a sh wrapper around this interpreter: `env python3` may be a slow pyenv shim, and the fake runs per call
    (bindir / "kind").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKES / "kind"}" "$@"\n')
    (bindir / "kind").chmod(0o755)
    helm = bindir / "helm"
    helm.write_text('#!/bin/sh\nif [ -n "$FAKE_HELM_FAIL" ]; then echo "Error: $FAKE_HELM_FAIL" >&2; exit 1; fi\n')
    helm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "kind-calls.jsonl"
    state = tmp_path / "kind-state.json"
    monkeypatch.setenv("FAKE_KIND_LOG", str(log))
    monkeypatch.setenv("FAKE_KIND_STATE", str(state))
    monkeypatch.delenv("FAKE_KIND_FAIL", raising=False)
    monkeypatch.delenv("FAKE_HELM_FAIL", raising=False)
    proc = tmp_path / "proc"
    (proc / "sys/fs/inotify").mkdir(parents=True)
    (proc / "sys/fs/inotify/max_user_watches").write_text("1048576\n")
    (proc / "sys/fs/inotify/max_user_instances").write_text("8192\n")
    (proc / "meminfo").write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return {"bindir": bindir, "proc": proc, "calls": calls, "state": state, "tmp": tmp_path}


def make(kind_env: dict[str, Any], docker: FakeDocker | None = None, **data: Any) -> KindBackend:
    data.setdefault("name", "lab1")
    backend = KindBackend(
        from_dict(data), kind_env["tmp"] / "labstate", docker_client_factory=lambda: docker or FakeDocker()
    )
    backend.proc_root = kind_env["proc"]
    backend.cgroup_root = kind_env["tmp"] / "no-cgroup"
    return backend


def created(kind_env: dict[str, Any]) -> bool:
    """Whether anything was created: a create call, a cluster in the fake's state, or files in the lab state."""
    any_create = any(c[:2] == ["create", "cluster"] for c in kind_env["calls"]())
    state = json.loads(kind_env["state"].read_text()) if kind_env["state"].exists() else {"clusters": []}
    lab_files = list((kind_env["tmp"] / "labstate").glob("*")) if (kind_env["tmp"] / "labstate").exists() else []
    return any_create or bool(state["clusters"]) or bool(lab_files)


# -- pre-flight ----------------------------------------------------------------------------------------------------


def test_preflight_passes_on_a_good_machine(kind_env: dict[str, Any]) -> None:
    backend = make(kind_env)
    assert backend.preflight() == []
    assert ["version"] in kind_env["calls"]() and ["get", "clusters"] in kind_env["calls"]()
    assert not created(kind_env)


def test_preflight_docker_unreachable(kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{kind_env['tmp']}/no-such-docker.sock")
    backend = KindBackend(from_dict({"name": "lab1"}), kind_env["tmp"] / "labstate")  # the real SDK connect
    backend.proc_root = kind_env["proc"]
    with pytest.raises(PreflightError, match="Docker daemon is not reachable") as err:
        backend.preflight()
    assert "DOCKER_HOST" in (err.value.fix or "") or "docker" in (err.value.fix or "")
    assert not created(kind_env)


def test_preflight_kind_missing(kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    (kind_env["bindir"] / "kind").unlink()
    monkeypatch.setenv("PATH", str(kind_env["bindir"]))
    with pytest.raises(PreflightError, match="'kind' was not found") as err:
        make(kind_env).preflight()
    assert "kind.sigs.k8s.io" in (err.value.fix or "")
    assert not created(kind_env)


def test_preflight_kind_too_old_for_node_image(kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KIND_VERSION", "0.20.0")
    with pytest.raises(PreflightError, match=r"kind v0\.20\.0 is too old for kindest/node:v1\.33\.1") as err:
        make(kind_env, k8s_version="1.33.1").preflight()
    assert "1.27.3" in (err.value.fix or "")  # kind 0.20's default image, as an alternative
    assert not created(kind_env)
    monkeypatch.setenv("FAKE_KIND_VERSION", "0.20.0")
    assert make(kind_env, k8s_version="1.27.3").preflight() == []


def test_preflight_warns_on_unpublished_patch_and_custom_image(kind_env: dict[str, Any]) -> None:
    warnings = make(kind_env, k8s_version="1.33.2").preflight()
    assert any("was not published" in w and "1.33.12" in w for w in warnings)
    warnings = make(kind_env, kind={"node_image": "my/node:dev"}).preflight()
    assert any("no version tag" in w for w in warnings)


@pytest.mark.parametrize(("installer", "tool"), [("helm", "helm"), ("cilium-cli", "cilium")])
def test_preflight_installer_tool_missing(
    kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, installer: str, tool: str
) -> None:
    if tool == "helm":
        (kind_env["bindir"] / "helm").unlink()
    monkeypatch.setenv("PATH", f"{kind_env['bindir']}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(PreflightError, match=f"'{tool}' \\(for installer {installer}\\) was not found") as err:
        make(kind_env, installer=installer).preflight()
    assert err.value.fix
    assert not created(kind_env)


def test_preflight_inotify_watches_too_low(kind_env: dict[str, Any]) -> None:
    (kind_env["proc"] / "sys/fs/inotify/max_user_watches").write_text("8192\n")
    with pytest.raises(PreflightError, match="fs.inotify.max_user_watches is 8192") as err:
        make(kind_env).preflight()
    assert (
        err.value.fix == "sudo sysctl -w fs.inotify.max_user_watches=524288 (and add it to /etc/sysctl.d/ to keep it)"
    )
    assert not created(kind_env)


def test_preflight_inotify_instances_scale_with_nodes(kind_env: dict[str, Any]) -> None:
    (kind_env["proc"] / "sys/fs/inotify/max_user_instances").write_text("512\n")
    assert make(kind_env, workers=3).preflight() == []  # 4 nodes: 512 is enough
    with pytest.raises(PreflightError, match="max_user_instances is 512, below the 1024 a 8-node") as err:
        make(kind_env, workers=7).preflight()
    assert "max_user_instances=1024" in (err.value.fix or "")
    assert not created(kind_env)


def test_preflight_not_enough_memory(kind_env: dict[str, Any]) -> None:
    (kind_env["proc"] / "meminfo").write_text("MemTotal: 4000000 kB\nMemAvailable:    1024000 kB\n")
    with pytest.raises(PreflightError, match="only 1000 MiB of memory is available; 3 kind nodes need about 2816 MiB"):
        make(kind_env).preflight()
    assert not created(kind_env)


def test_preflight_cluster_exists(kind_env: dict[str, Any]) -> None:
    kind_env["state"].write_text(json.dumps({"clusters": ["lab1"]}))
    with pytest.raises(PreflightError, match="a kind cluster named 'lab1' already exists") as err:
        make(kind_env).preflight()
    assert "kind delete cluster --name lab1" in (err.value.fix or "")
    assert not any(c[:2] == ["create", "cluster"] for c in kind_env["calls"]())
    assert make(kind_env, kind={"reuse_cluster": True}).preflight() == []


def test_preflight_kpr_needs_cgroup_v2(kind_env: dict[str, Any]) -> None:
    with pytest.raises(PreflightError, match="needs cgroup v2.*cgroup v1") as err:
        make(kind_env, FakeDocker(cgroup="1"), kube_proxy_replacement=True).preflight()
    assert "kube_proxy_replacement: false" in (err.value.fix or "")
    assert not created(kind_env)
    assert make(kind_env, FakeDocker(cgroup="1")).preflight() == []  # without KPR cgroup v1 is fine
    assert make(kind_env, FakeDocker(cgroup="2"), kube_proxy_replacement=True).preflight() == []


def test_preflight_reports_every_problem_at_once(kind_env: dict[str, Any]) -> None:
    (kind_env["proc"] / "sys/fs/inotify/max_user_watches").write_text("8192\n")
    kind_env["state"].write_text(json.dumps({"clusters": ["lab1"]}))
    with pytest.raises(PreflightError, match=r"2 problems.*\(1\) fs.inotify.*\(2\) a kind cluster named"):
        make(kind_env).preflight()


def test_preflight_bad_extra_config(kind_env: dict[str, Any]) -> None:
    with pytest.raises(PreflightError, match="kind kind.x-k8s.io/v1alpha4 has no field 'podSubnets'"):
        make(kind_env, kind={"extra_config": {"networking": {"podSubnets": "x"}}}).preflight()
    assert not created(kind_env)


# -- lifecycle -----------------------------------------------------------------------------------------------------


def test_up_creates_with_exact_argv_and_private_kubeconfig(kind_env: dict[str, Any]) -> None:
    lines: list[str] = []
    backend = make(kind_env, ip_family="dual")
    backend.progress = lines.append
    backend.up()
    sd = kind_env["tmp"] / "labstate"
    assert kind_env["calls"]()[-1] == [
        "create", "cluster", "--name", "lab1", "--config", str(sd / "kind-config.yaml"),
        "--kubeconfig", str(sd / "kubeconfig"), "--image", "kindest/node:v1.33.1",
    ]  # fmt: skip
    assert "ipFamily: dual" in (sd / "kind-config.yaml").read_text()
    assert stat.S_IMODE(backend.kubeconfig().stat().st_mode) == 0o600
    assert any("Ensuring node image" in line for line in lines)


def test_up_with_keep_retains_and_failure_keeps_the_nodes(
    kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KIND_FAIL", "create cluster")
    backend = make(kind_env)
    with pytest.raises(CommandError, match="injected failure"):
        backend.up(keep_on_failure=True)
    calls = kind_env["calls"]()
    assert calls[-1][-1] == "--retain"
    assert not any(c[:2] == ["delete", "cluster"] for c in calls)


def test_failed_create_without_keep_deletes(kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    docker = FakeDocker()
    docker.containers_.append(FakeContainer("lab1-control-plane", "control-plane", "lab1", "172.18.0.2"))
    monkeypatch.setenv("FAKE_KIND_FAIL", "create cluster")
    with pytest.raises(CommandError):
        make(kind_env, docker).up()
    calls = kind_env["calls"]()
    assert "--retain" not in calls[-2]
    assert calls[-1] == [
        "delete",
        "cluster",
        "--name",
        "lab1",
        "--kubeconfig",
        str(kind_env["tmp"] / "labstate/kubeconfig"),
    ]
    assert docker.containers_[0].removed  # leftovers go too


def test_create_without_kubeconfig_is_an_error_and_cleans_up(
    kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KIND_NO_KUBECONFIG", "1")
    with pytest.raises(BackendError, match="wrote no kubeconfig"):
        make(kind_env).up()
    assert kind_env["calls"]()[-1][:2] == ["delete", "cluster"]
    assert json.loads(kind_env["state"].read_text())["clusters"] == []


def test_down_is_idempotent(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    docker.containers_.append(FakeContainer("lab1-control-plane", "control-plane", "lab1", "172.18.0.2"))
    backend = make(kind_env, docker)
    assert backend.is_up() is False  # a container alone is not a cluster kind knows
    backend.up()
    assert backend.is_up() is True
    assert ["get", "nodes", "--name", "lab1"] in kind_env["calls"]()
    backend.down()
    assert backend.is_up() is False
    backend.down()
    assert [c[:2] for c in kind_env["calls"]()].count(["delete", "cluster"]) == 2
    assert json.loads(kind_env["state"].read_text())["clusters"] == []
    assert docker.containers_[0].removed


def test_reuse_adopts_an_existing_cluster(kind_env: dict[str, Any]) -> None:
    kind_env["state"].write_text(json.dumps({"clusters": ["lab1"]}))
    backend = make(kind_env, kind={"reuse_cluster": True})
    backend.up()
    assert kind_env["calls"]()[-1] == [
        "export", "kubeconfig", "--name", "lab1", "--kubeconfig", str(kind_env["tmp"] / "labstate/kubeconfig")
    ]  # fmt: skip
    assert not any(c[:2] == ["create", "cluster"] for c in kind_env["calls"]())


def test_dump_logs(kind_env: dict[str, Any]) -> None:
    backend = make(kind_env)
    backend.up()
    files = backend.dump_logs(kind_env["tmp"] / "artifacts")
    assert kind_env["calls"]()[-1] == ["export", "logs", str(kind_env["tmp"] / "artifacts/kind"), "--name", "lab1"]
    assert any(p.name == "kubelet.log" for p in files)


def test_nodes_addresses_and_api_server(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    docker.containers_ += [
        FakeContainer("lab1-worker", "worker", "lab1", "172.18.0.3", "fc00:f853:ccd:e793::3"),
        FakeContainer("lab1-control-plane", "control-plane", "lab1", "172.18.0.2", "fc00:f853:ccd:e793::2"),
        FakeContainer("other-control-plane", "control-plane", "other", "172.18.0.9"),
    ]
    backend = make(kind_env, docker, ip_family="dual")
    nodes = backend.nodes()
    assert [(n.name, n.role, n.ipv4, n.ipv6) for n in nodes] == [
        ("lab1-control-plane", "control-plane", "172.18.0.2", "fc00:f853:ccd:e793::2"),
        ("lab1-worker", "worker", "172.18.0.3", "fc00:f853:ccd:e793::3"),
    ]
    assert backend.api_server_endpoint() == ("172.18.0.2", 6443)
    assert make(kind_env, docker, ip_family="ipv6").api_server_endpoint() == ("fc00:f853:ccd:e793::2", 6443)
    docker.containers_.append(
        FakeContainer("lab1-external-load-balancer", "external-load-balancer", "lab1", "172.18.0.8")
    )
    assert backend.api_server_endpoint() == ("lab1-external-load-balancer", 6443)
    assert [n.name for n in backend.nodes()] == ["lab1-control-plane", "lab1-worker"]
    assert make(kind_env, FakeDocker()).api_server_endpoint() is None


def test_capabilities_are_declared(kind_env: dict[str, Any]) -> None:
    backend = make(kind_env)
    assert isinstance(backend, NodeExec) and isinstance(backend, LoadImage) and isinstance(backend, PreloadCiliumImages)


def test_load_image_pulls_once_then_loads(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    backend = make(kind_env, docker)
    backend.up()
    backend.load_image("quay.io/cilium/cilium:v1.20.0")
    backend.load_image("quay.io/cilium/cilium:v1.20.0")
    assert docker.pulled == [("quay.io/cilium/cilium", "v1.20.0")]
    assert kind_env["calls"]()[-1] == ["load", "docker-image", "quay.io/cilium/cilium:v1.20.0", "--name", "lab1"]


def test_preload_images(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    docker.images_present.add("quay.io/cilium/operator-generic:v1.20.0")
    backend = make(kind_env, docker)
    backend.up()
    images = ["quay.io/cilium/cilium:v1.20.0", "quay.io/cilium/operator-generic:v1.20.0"]
    assert backend.preload_images(images) == images
    assert docker.pulled == [("quay.io/cilium/cilium", "v1.20.0")]
    assert kind_env["calls"]()[-1] == ["load", "docker-image", *images, "--name", "lab1"]
    assert backend.preload_commands(images) == [
        ["docker", "pull", images[0]],
        ["docker", "pull", images[1]],
        ["kind", "load", "docker-image", *images, "--name", "lab1"],
    ]


def test_preload_offline_release_image_is_left_to_nodes(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    docker.pull_fails.add("quay.io/cilium/cilium:v1.20.0")
    lines: list[str] = []
    backend = make(kind_env, docker)
    backend.up()
    backend.progress = lines.append
    assert backend.preload_images(["quay.io/cilium/cilium:v1.20.0"]) == []
    assert any("the nodes will pull it themselves" in line for line in lines)
    assert kind_env["calls"]()[-1][:2] != ["load", "docker-image"]


def test_local_agent_image_must_exist(kind_env: dict[str, Any]) -> None:
    docker = FakeDocker()
    docker.pull_fails.add("my/cilium:dev")
    backend = make(kind_env, docker, kind={"cilium_image": "my/cilium:dev", "preload_images": False})
    backend.up()
    assert backend.agent_image() == "my/cilium:dev" and backend.preloads_images()
    with pytest.raises(BackendError, match="agent image my/cilium:dev is not in the local Docker"):
        backend.preload_images(["my/cilium:dev", "quay.io/cilium/operator-generic:v1.20.0"])
    docker.images_present.add("my/cilium:dev")
    assert backend.preload_images(["my/cilium:dev", "quay.io/cilium/operator-generic:v1.20.0"]) == ["my/cilium:dev"]
    assert backend.preload_commands(["my/cilium:dev", "x:1"]) == [
        ["kind", "load", "docker-image", "my/cilium:dev", "--name", "lab1"]
    ]


def test_preload_off(kind_env: dict[str, Any]) -> None:
    backend = make(kind_env, kind={"preload_images": False})
    assert not backend.preloads_images()
    assert backend.preload_images(["a:1"]) == [] and backend.preload_commands(["a:1"]) == []


def test_plan_touches_nothing(kind_env: dict[str, Any]) -> None:
    backend = make(kind_env, kube_proxy_replacement=True, workers=1)
    plan = backend.plan()
    assert plan.backend == "kind"
    assert "kubeProxyMode: none" in plan.files["kind-config.yaml"]
    assert plan.commands == [backend.create_argv(keep_on_failure=False)]
    assert not created(kind_env) and kind_env["calls"]() == []


def test_kubeconfig_before_up(kind_env: dict[str, Any]) -> None:
    with pytest.raises(BackendError, match="no kubeconfig yet"):
        make(kind_env).kubeconfig()


def test_spec_default_is_valid_for_kind() -> None:
    assert KindBackend(LabSpec(), Path("/nonexistent")).create_argv(keep_on_failure=True)[-1] == "--retain"


# -- with the lab driving it ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keep", "deleted"), [("never", True), ("on-failure", False)])
def test_failed_install_dumps_kind_logs_then_deletes_unless_kept(
    kind_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, keep: str, deleted: bool
) -> None:
    from cilium_labs.lab import Lab

    monkeypatch.setenv("FAKE_HELM_FAIL", "INSTALLATION FAILED: timed out waiting for the condition")
    backend = make(kind_env, kind={"preload_images": False})
    artifacts = kind_env["tmp"] / "artifacts"
    lab = Lab(backend.spec, backend, keep=keep, state_dir=kind_env["tmp"] / "labs", artifacts_dir=artifacts)
    with pytest.raises(CommandError, match="INSTALLATION FAILED"), lab:
        lab.install(timeout_s=30)
    calls = kind_env["calls"]()
    export = ["export", "logs", str(artifacts / "kind"), "--name", "lab1"]
    delete = ["delete", "cluster", "--name", "lab1", "--kubeconfig", str(kind_env["tmp"] / "labstate/kubeconfig")]
    assert export in calls
    assert (artifacts / "kind" / "lab1-control-plane" / "kubelet.log").is_file()
    assert (delete in calls) is deleted
    if deleted:
        assert calls.index(export) < calls.index(delete)  # logs first, then the cluster goes
    assert ("lab1" in json.loads(kind_env["state"].read_text())["clusters"]) is not deleted
