"""The local backend's small parts: container paths, the exec shim, faults, control-plane flags, node paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cilium_labs.errors import UsageError
from cilium_labs.local import container, controlplane, faults, images, runtime, shim


def test_resolve_in_keeps_symlinks_inside_the_root(tmp_path: Path) -> None:
    """``/var/run`` links to ``/run`` in every container root: a ServiceAccount token mounted at
    ``/var/run/secrets/...`` must land in the container's ``/run``, never the host's (seen on a real run)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    os.symlink("../run", tmp_path / "var" / "rel")
    got = container.resolve_in(tmp_path, "/var/run/secrets/kubernetes.io/serviceaccount")
    assert got == tmp_path / "run" / "secrets" / "kubernetes.io" / "serviceaccount"
    assert container.resolve_in(tmp_path, "/var/rel/x") == tmp_path / "run" / "x"
    assert container.resolve_in(tmp_path, "/host/etc/cni/net.d") == tmp_path / "host" / "etc" / "cni" / "net.d"
    os.symlink("/loop", tmp_path / "loop")
    with pytest.raises(OSError):
        container.resolve_in(tmp_path, "/loop/x")


def test_container_spec_round_trips() -> None:
    spec = container.ContainerSpec(argv=("cilium-agent", "--config-dir=/tmp/cilium/config-map"), env={"A": "1"},
                                   netns="/run/netns/x", mounts=(container.Mount("/sys/fs/bpf", "bpf"),),
                                   hostname="lab-worker")
    assert container.ContainerSpec.from_json(spec.to_json()) == spec


def _run_shim(folder: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(folder / name), "status"], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_shim_refuses_without_a_running_target(tmp_path: Path) -> None:
    folder = shim.install(tmp_path / "shim", sys.executable)
    assert (folder / "cilium-dbg").is_symlink() and (folder / "curl").is_symlink()
    res = _run_shim(folder, "cilium-dbg", {})
    assert res.returncode == 126 and "no exec target" in res.stderr
    target = tmp_path / "t.json"
    target.write_text(json.dumps({"pid": 2**22 + 7, "path": "/usr/bin"}))
    res = _run_shim(folder, "cilium-dbg", {shim.TARGET_ENV: str(target)})
    assert res.returncode == 126 and "not running" in res.stderr
    target.write_text("{")
    res = _run_shim(folder, "cilium-dbg", {shim.TARGET_ENV: str(target)})
    assert res.returncode == 126


def test_faults_are_checked_before_anything_is_applied() -> None:
    nodes = ["lab-control-plane", "lab-worker"]
    assert faults.parse("vxlan-blocked:lab-worker:lab-control-plane", nodes) == (
        "vxlan-blocked", ["lab-worker", "lab-control-plane"])
    for bad, why in (("nope:lab-worker", "unknown local fault"), ("agent-stop", "takes NODE"),
                     ("agent-stop:lab-worker9", "no node named")):
        with pytest.raises(UsageError, match=why):
            faults.parse(bad, nodes)


def test_apiserver_flags_the_loopback_control_plane_needs(tmp_path: Path) -> None:
    files = controlplane.Files(tmp_path)
    ep = controlplane.Endpoints(1, 2, 3, 4, 5, 6, "127.0.0.1")
    argv = controlplane.apiserver_argv(Path("/bin/kube-apiserver"), files, ep, service_cidrs="10.96.0.0/16")
    assert "--endpoint-reconciler-type=none" in argv
    assert "--kubelet-preferred-address-types=Hostname" in argv
    assert "--authorization-mode=Node,RBAC" in argv
    cm = controlplane.controller_manager_argv(Path("/bin/kcm"), files, ep, cluster_cidrs="10.244.0.0/16",
                                              service_cidrs="10.96.0.0/16", masks={4: 24})
    assert "--node-cidr-mask-size-ipv4=24" in cm and not any("ipv6" in a for a in cm)
    kp = controlplane.kube_proxy_argv(Path("/bin/kube-proxy"), files, "lab-worker", cluster_cidrs="10.244.0.0/16")
    assert "--conntrack-max-per-core=0" in kp and "--hostname-override=lab-worker" in kp


def test_kwok_config_spells_out_its_defaults() -> None:
    import yaml

    docs = list(yaml.safe_load_all(controlplane.kwok_config([{"kind": "Stage", "metadata": {"name": "n"}}])))
    options = docs[0]["options"]
    assert options["enableDebuggingHandlers"] is True and options["nodeLeaseParallelism"] > 0
    assert [d["kind"] for d in docs] == ["KwokConfiguration", "Stage"]


def test_node_paths_map_host_paths_to_the_node(tmp_path: Path) -> None:
    node = runtime.NodeInfo(name="w", netns="cll-x-n-w", ips=("172.18.0.3",), root=tmp_path / "root",
                            cgroup=tmp_path / "cg", bpffs=tmp_path / "bpf")
    assert node.host_path("/sys/fs/bpf") == tmp_path / "bpf"
    assert node.host_path("/run/cilium/cgroupv2") == tmp_path / "cg"
    assert node.host_path("/proc/sys/net") == Path("/proc/sys/net")
    assert node.host_path("/var/run/cilium") == tmp_path / "root" / "run" / "cilium"
    assert node.host_path("/etc/cni/net.d") == tmp_path / "root" / "etc" / "cni" / "net.d"
    assert node.cilium_socket() == tmp_path / "root" / "run" / "cilium" / "cilium.sock"


def test_pod_host_names() -> None:
    assert runtime._hostname({"spec": {}}, "echo-abcde") == "echo-abcde"
    assert runtime._hostname({"spec": {"hostname": "custom"}}, "echo-abcde") == "custom"
    assert runtime._hostname({"spec": {"hostNetwork": True, "hostname": "x"}}, "lab-worker") == "lab-worker"
    assert len(runtime._hostname({"spec": {}}, "a" * 80)) == 63


def test_images_match_by_prefix(tmp_path: Path) -> None:
    rule = images.ImageRule(prefixes=("quay.io/cilium/cilium:",))
    assert images.match([rule], "quay.io/cilium/cilium:v1.19.4") is rule
    with pytest.raises(Exception, match="no program for image docker.io/nginx"):
        images.match([rule], "docker.io/nginx:1")


def test_cni_error_text() -> None:
    assert runtime._cni_error('{"code": 999, "msg": "unable to connect", "details": "dial unix"}') == (
        "unable to connect dial unix")
    assert runtime._cni_error("not json") == ""


def test_image_programs_are_visible_wherever_the_cache_is(tmp_path: Path) -> None:
    """The image folder holds links into the build cache; with the cache under /tmp (private in every container)
    the agent's init container could not run `cilium-dbg` (seen in a CI run with CILIUM_LABS_CACHE_DIR=/tmp/...)."""
    cilium_bin = tmp_path / "cache" / "bin"
    cilium_bin.mkdir(parents=True)
    for name in ("cilium-dbg", "cilium-agent"):
        (cilium_bin / name).write_text("")
        (cilium_bin / name).chmod(0o755)
    table = images.rules(root=tmp_path / "lab", cilium_bin=cilium_bin, cilium_src=tmp_path / "src",
                         agnhost=tmp_path / "agnhost")
    agent = images.match(table, "quay.io/cilium/cilium:v1.19.4")
    assert str(cilium_bin) in agent.host_dirs
    assert (Path(agent.path_dir) / "cilium").resolve() == (cilium_bin / "cilium-dbg").resolve()
