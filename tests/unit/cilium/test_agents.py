"""Agent discovery, CLI/version detection, retries and the bounded parallel fan-out."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from cilium_labs.cilium.agents import Agent, Agents, cluster_error_status, transient_status, with_retries
from cilium_labs.cluster import PodExec
from cilium_labs.errors import ClusterError, UsageError
from tests.unit.checks.fakecluster import FakeCluster


def _agents(fake: FakeCluster, **kw: object) -> Agents:
    kw.setdefault("backoff_s", 0.001)
    return Agents(fake, "kube-system", **kw)  # type: ignore[arg-type]


def test_discovery_maps_pods_to_nodes_and_skips_unscheduled() -> None:
    fake = FakeCluster(nodes=3)
    fake.pods_list[2].spec.node_name = None
    with _agents(fake) as ag:
        assert [(a.node, a.pod) for a in ag.agents] == [
            ("lab-control-plane", "cilium-00000"),
            ("lab-worker", "cilium-00001"),
        ]
        assert ag.agents[0].ready and ag.agents[0].image_version == (1, 16, 3)


def test_by_node_prefers_the_running_pod_during_a_rollout() -> None:
    fake = FakeCluster(nodes=2)
    old = fake._pod(9, fake.node_names[1])
    old.metadata.name = "cilium-old"
    old.status.phase = "Failed"
    fake.pods_list.insert(0, old)
    with _agents(fake) as ag:
        assert ag.by_node()[fake.node_names[1]].pod == "cilium-00001"


@pytest.mark.parametrize(
    ("version", "cli"),
    [("1.12.19", "cilium"), ("1.14.5", "cilium"), ("1.15.0", "cilium-dbg"), ("1.20.0", "cilium-dbg")],
)
def test_cli_and_version_detected_once(version: str, cli: str) -> None:
    fake = FakeCluster(version=version)
    with _agents(fake) as ag:
        assert ag.cli == cli
        assert ag.version_str == version
        assert ag.command(["status"]) == [cli, "status"]
        calls = len(fake.calls)
        assert ag.version == tuple(map(int, version.split(".")))
        assert len(fake.calls) == calls  # cached
    assert calls == (2 if cli == "cilium" else 1)  # cilium-dbg tried first, then the fallback


def test_version_from_image_tag_when_the_cli_has_no_version_command() -> None:
    fake = FakeCluster(version="1.18.2")
    fake.support_version_cmd = False
    with _agents(fake) as ag:
        assert (ag.cli, ag.version_str) == ("cilium-dbg", "1.18.2")


def test_version_from_status_when_the_image_is_custom() -> None:
    fake = FakeCluster(version="1.17.2")
    fake.support_version_cmd = False
    for p in fake.pods_list:
        p.spec.containers[0].image = "localhost:5000/cilium/cilium-dev:local"
    with _agents(fake) as ag:
        assert ag.version_str == "1.17.2"


def test_detection_skips_a_dead_agent() -> None:
    fake = FakeCluster(version="1.14.5")
    fake.slow[fake.node_names[0]] = 5
    with _agents(fake, timeout_s=0.1) as ag:
        assert (ag.cli, ag.version_str) == ("cilium", "1.14.5")


def test_command_prefixing() -> None:
    with _agents(FakeCluster(version="1.14.5")) as ag:
        assert ag.command(["bpf", "tunnel", "list"]) == ["cilium", "bpf", "tunnel", "list"]
        assert ag.command(["cilium-dbg", "status"]) == ["cilium", "status"]
        assert ag.command(["cilium-health", "status"]) == ["cilium-health", "status"]
        assert ag.command(["/usr/bin/ip", "route"]) == ["/usr/bin/ip", "route"]
        with pytest.raises(UsageError):
            ag.command([])


class ScriptedCluster:
    """Answers exec with a script of outcomes (a PodExec or a ClusterError), then success."""

    def __init__(self, script: list[PodExec | ClusterError]) -> None:
        self.script = list(script)
        self.calls = 0

    def exec(self, ns: str, pod: str, container: str, argv: Sequence[str], *, timeout: float = 60) -> PodExec:
        self.calls += 1
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, ClusterError):
                raise item
            return item
        return PodExec("ok\n", "", 0)


def _err(status: int) -> ClusterError:
    return ClusterError(f"exec: API answered {status}", status=status)


AGENT = Agent(pod="cilium-1", node="n1", namespace="kube-system")


@pytest.mark.parametrize(
    "script",
    [
        [_err(500), _err(503)],
        [_err(429)],
        [_err(0)],
        [PodExec("", "", 126, "OCI runtime exec failed: resource busy"), PodExec("", "", -1, "stream closed")],
    ],
)
def test_transient_failures_are_retried(script: list[PodExec | ClusterError]) -> None:
    cl = ScriptedCluster(script)
    ag = Agents(cl, backoff_s=0.001)  # type: ignore[arg-type]
    res = ag.exec(AGENT, ["cilium-dbg", "status"])
    assert res.ok and res.stdout == "ok\n" and res.attempts == len(script) + 1
    ag.close()


def test_retries_are_bounded_and_end_in_an_error_not_an_exception() -> None:
    cl = ScriptedCluster([_err(500)] * 10)
    ag = Agents(cl, attempts=3, backoff_s=0.001)  # type: ignore[arg-type]
    res = ag.exec(AGENT, ["cilium-dbg", "status"])
    assert not res.answered and res.attempts == 3 and cl.calls == 3 and "500" in (res.error or "")
    ag.close()


@pytest.mark.parametrize(
    "outcome",
    [
        _err(403),
        _err(404),
        PodExec("", "Error: unknown command\n", 1, "exit 1"),
        PodExec("", "", -1, "no answer within 1s"),
    ],
)
def test_final_failures_are_not_retried(outcome: PodExec | ClusterError) -> None:
    cl = ScriptedCluster([outcome])
    ag = Agents(cl, backoff_s=0.001)  # type: ignore[arg-type]
    res = ag.exec(AGENT, ["cilium-dbg", "status"], timeout_s=1)
    assert cl.calls == 1 and not res.ok
    if isinstance(outcome, PodExec) and outcome.reason.startswith("no answer"):
        assert res.timed_out and res.error == "no answer within 1s"
    ag.close()


def test_stdout_and_stderr_stay_apart() -> None:
    cl = ScriptedCluster([PodExec("out\n", "Defaulted container ...\n", 0)])
    ag = Agents(cl)  # type: ignore[arg-type]
    res = ag.exec(AGENT, ["cilium-dbg", "status"])
    assert (res.stdout, res.stderr) == ("out\n", "Defaulted container ...\n")
    ag.close()


def test_fan_out_is_bounded_by_concurrency() -> None:
    fake = FakeCluster(nodes=12)
    fake.exec_delay = 0.02
    with _agents(fake, concurrency=4) as ag:
        ag.cli  # noqa: B018  detection first, so only the fan-out is measured
        fake.max_in_flight = 0
        results = ag.run_all(["status", "-o", "json"])
    assert set(results) == set(fake.node_names)
    assert all(r.ok for r in results.values())
    assert fake.max_in_flight == 4


def test_run_many_queues_every_command_of_every_agent() -> None:
    fake = FakeCluster(nodes=3)
    with _agents(fake, concurrency=8) as ag:
        out = ag.run_many([["status", "-o", "json"], ["cilium-health", "status", "-o", "json"]])
    assert set(out) == set(fake.node_names)
    assert all(len(v) == 2 and v[0].argv[0] == "cilium-dbg" and v[1].argv[0] == "cilium-health" for v in out.values())


def test_started_execs_arrive_as_each_agent_answers() -> None:
    """A check starts its execs, does its own reads, then takes results as they come: a slow agent does not
    hold back the others' results."""
    fake = FakeCluster(nodes=3)
    slow = fake.node_names[0]
    with _agents(fake, concurrency=8) as ag:
        ag.cli  # noqa: B018  detection first, so only the fan-out is slowed
        fake.slow[slow] = 0.3
        pending = ag.start(["status", "-o", "json"])
        assert len(pending) == 3
        order = [r.node for r in pending.as_completed()]
        assert sorted(order) == sorted(fake.node_names) and order[-1] == slow
        many = ag.start_many([["status", "-o", "json"], ["cilium-health", "status", "-o", "json"]])
        got = list(many.as_completed())
    assert [node for node, _ in got][-1] == slow and len(got) == 3
    assert all([r.argv[0] for r in results] == ["cilium-dbg", "cilium-health"] for _, results in got)


def test_unreachable_agent_in_a_fan_out() -> None:
    fake = FakeCluster(nodes=3)
    fake.down.add(fake.node_names[1])
    with _agents(fake) as ag:
        res = ag.run_all(["status"])
    bad = res[fake.node_names[1]]
    assert bad.answered and bad.daemon_down and "Is the agent running?" in bad.describe_failure()
    assert res[fake.node_names[0]].ok


def test_reads_are_retried_on_a_flaky_api() -> None:
    fake = FakeCluster(nodes=2)
    fake.flaky_reads = 2
    with _agents(fake) as ag:
        assert len(ag.agents) == 2


def test_with_retries_gives_up_on_non_transient() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        raise _err(401)

    with pytest.raises(ClusterError):
        with_retries(fn, backoff_s=0.001)
    assert len(calls) == 1


def test_status_classification() -> None:
    assert transient_status(0) and transient_status(429) and transient_status(502) and transient_status(None)
    assert not transient_status(404) and not transient_status(403)
    plain = ClusterError("x")
    assert cluster_error_status(plain) is None
    try:
        raise ClusterError("y") from OSError("reset")
    except ClusterError as exc:
        assert cluster_error_status(exc) == 0


def test_bad_arguments() -> None:
    fake = FakeCluster(nodes=1)
    with pytest.raises(UsageError):
        Agents(fake, concurrency=0)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        Agents(fake, timeout_s=0)  # type: ignore[arg-type]


def test_thread_safety_of_detection() -> None:
    fake = FakeCluster(nodes=2, version="1.14.5")
    with _agents(fake) as ag:
        threads = [threading.Thread(target=lambda: ag.cli) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(1 for _, argv in fake.calls if argv[-1] == "version") == 2


HANDSHAKE = (
    "exec in kube-system/cilium-1: API answered 0 Handshake status {code} {phrase} -+-+- "
    "{{'content-type': 'text/plain; charset=utf-8', 'content-length': '36'}} -+-+- "
    'container not found ("cilium-agent")'
)


def _handshake(code: int, phrase: str) -> ClusterError:
    return ClusterError(HANDSHAKE.format(code=code, phrase=phrase), status=0)


def test_refused_upgrade_reads_as_its_real_status_and_message() -> None:
    cl = ScriptedCluster([_handshake(500, "Internal Server Error")] * 10)
    ag = Agents(cl, attempts=2, backoff_s=0.001)  # type: ignore[arg-type]
    res = ag.exec(AGENT, ["cilium-dbg", "status"])
    assert cl.calls == 2  # 500: retried
    assert res.error == (
        'exec in kube-system/cilium-1: API answered 500 Internal Server Error: container not found ("cilium-agent")'
    )
    cl = ScriptedCluster([_handshake(404, "Not Found")] * 10)
    res = Agents(cl, attempts=3, backoff_s=0.001).exec(AGENT, ["cilium-dbg", "status"])  # type: ignore[arg-type]
    assert cl.calls == 1 and "API answered 404 Not Found" in (res.error or "")  # 404: not retried
