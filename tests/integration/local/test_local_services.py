"""The load-balancer model against REAL agents (issue 12, point 2): a local lab of real Cilium 1.19.4 agents with
every kind of frontend the model knows, with and without kube-proxy replacement, verifies ok, and every agent's
real ``cilium-dbg service list`` is what ``cilium.lb_model`` predicts from the objects the real API server serves.

The objects are the simulator lab's (tests/integration/sim/test_lb_lab.py) with agnhost as the image, since the
local runtime runs agnhost: a ClusterIP Service, a NodePort with ``externalTrafficPolicy: Cluster`` and one with
``Local``, a LoadBalancer with an ingress IP, a pod with a hostPort, a selector-less Service whose own EndpointSlice
holds a terminating endpoint, and a Service with a never-ready endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import _outputs
from cilium_labs.checks.services import as_json
from cilium_labs.cilium import lb_model
from cilium_labs.cluster import Cluster
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec
from tests import lb_objects

from .test_local_lab import CILIUM, _assert_nothing_left, _why_not

pytestmark = [pytest.mark.integration, pytest.mark.local, pytest.mark.timeout(1800)]



def _populate(k8s: Cluster) -> None:
    lb_objects.populate(k8s, server=lb_objects.AGNHOST, dual=False)


def _wait_running(k8s: Cluster, want: int, logs: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        running = [p for p in k8s.pods("default") if p.status.phase == "Running"]
        if len(running) >= want:
            return
        time.sleep(1)
    raise AssertionError(f"{want} pods did not start:\n" + "\n".join(_describe(p) for p in k8s.pods("default"))
                         + "\n" + _tail(logs))


def _describe(pod: Any) -> str:
    """What a person would look at first: where the pod went, its conditions, why its containers wait."""
    conds = ", ".join(f"{c.type}={c.status}{'(' + c.reason + ': ' + (c.message or '') + ')' if c.reason else ''}"
                      for c in pod.status.conditions or [])
    waits = ", ".join(f"{c.name}: {c.state.waiting.reason} {c.state.waiting.message or ''}"
                      for c in pod.status.container_statuses or [] if c.state and c.state.waiting)
    return f"  {pod.metadata.name} on {pod.spec.node_name or '(unscheduled)'}: {pod.status.phase}; {conds}; {waits}"


def _tail(log: Path, lines: int = 60) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no supervisor log: {exc})"
    return f"last {lines} lines of {log}:\n" + "\n".join(text[-lines:])


@pytest.fixture(scope="module", params=[True, False], ids=["kpr", "kube-proxy"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    why = _why_not()
    if why:
        pytest.skip(why)
    kpr = request.param
    state = tmp_path_factory.mktemp("local-lb")
    name = "itlb" + ("k" if kpr else "p")
    spec = LabSpec(name=name, backend="local", workers=2, cilium_version=CILIUM, kube_proxy_replacement=kpr)
    lab = Lab(spec, keep="always", state_dir=state, progress=lambda m: print(f"[{name}] {m}", flush=True))
    try:
        lab.up()
        lab.install(timeout_s=600)
        k8s = Cluster(lab.backend.kubeconfig())
        _populate(k8s)
        _wait_running(k8s, 5, lab.backend.log_path)  # type: ignore[attr-defined]  # 2 web, hp, flaky-ok, flaky-bad (never ready, still running)
        yield SimpleNamespace(lab=lab, k8s=k8s, kpr=kpr, spec=spec)
    finally:
        lab.down()
        _assert_nothing_left(name, state / name)


def test_services_verify_ok_on_real_agents(lab: Any) -> None:
    report = lab.lab.verify(["services"], wait_s=180)
    assert report.ok, [f"{f.node} {f.kind} {f.object}: want {f.expected}, found {f.found}" for f in report.findings]


def test_every_real_agent_prints_what_the_model_says(lab: Any) -> None:
    k8s = lab.k8s
    version = tuple(int(x) for x in CILIUM.split("."))
    config = k8s.config_map("kube-system", "cilium-config")
    cfg = lb_model.AgentConfig.from_cilium_config(version, config)  # type: ignore[arg-type]
    agents = {p.spec.node_name: p.metadata.name for p in k8s.pods("kube-system", label_selector="k8s-app=cilium")}
    deadline = time.monotonic() + 120
    mismatch: dict[str, Any] = {}
    while time.monotonic() < deadline:
        objects = lb_model.Objects(as_json(k8s.services()), as_json(k8s.endpoint_slices()), as_json(k8s.all_pods()))
        mismatch, kinds = {}, set()
        for node in k8s.nodes():
            ips = [a.address for a in node.status.addresses if a.type == "InternalIP"]
            name = node.metadata.name
            fes = objects.frontends(cfg, lb_model.Node(name, lb_model.node_addresses(ips)))
            out = k8s.exec("kube-system", agents[name], "cilium-agent", ["cilium-dbg", "service", "list"])
            assert out.exit_code == 0, out.stderr
            actual = _outputs.service_index(out.stdout, with_proto=cfg.by_protocol)
            want = {fe.key(cfg.by_protocol): (fe.type, fe.expect) for fe in fes}
            if actual != want:
                mismatch[name] = {"only agent": {k: v for k, v in actual.items() if want.get(k) != v},
                                  "only model": {k: v for k, v in want.items() if actual.get(k) != v}}
            kinds |= {kind for kind, _ in want.values()}
        if not mismatch:
            break
        time.sleep(3)
    assert not mismatch, mismatch
    # 1.19: LoadBalancer without kube-proxy replacement too; NodePort and HostPort only with it
    want_kinds = {"ClusterIP", "NodePort", "LoadBalancer", "HostPort"} if lab.kpr else {"ClusterIP", "LoadBalancer"}
    assert kinds == want_kinds
