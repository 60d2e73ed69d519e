"""On the netns datapath a test pod's ``cat`` reads the pod's real files: ``cat /sys/class/net/eth0/mtu`` is how the
connectivity check learns the pod MTU. The simulator answered every ``cat`` itself ("No such file or directory"),
so on a netns lab the connectivity check failed every MTU probe and ``cilium-labs upgrade`` refused to start."""

from __future__ import annotations

from collections.abc import Sequence

from cilium_labs.cluster import Cluster
from cilium_labs.sim import running
from cilium_labs.sim.agent import ExecOutcome
from cilium_labs.spec import LabSpec


def test_cat_in_a_pod_the_datapath_runs_reads_the_pods_file() -> None:
    asked: list[list[str]] = []

    def handler(namespace: str, pod: str, container: str, argv: Sequence[str]) -> ExecOutcome | None:
        if namespace != "kube-system" or not pod.startswith("coredns-"):
            return None
        asked.append(list(argv))
        return ExecOutcome("1450\n")

    with running(LabSpec(name="lab", backend="sim", workers=1, cilium_version="1.18.12"), use_chart=False) as sim:
        sim.cluster.exec_handler = handler  # type: ignore[attr-defined]
        cluster = Cluster(sim.kubeconfig)
        dns = next(p.metadata.name for p in cluster.pods("kube-system", "k8s-app=kube-dns"))
        res = cluster.exec("kube-system", dns, "coredns", ["cat", "/sys/class/net/eth0/mtu"])
        assert (res.exit_code, res.stdout) == (0, "1450\n")
        assert asked == [["cat", "/sys/class/net/eth0/mtu"]]
        agent = next(p.metadata.name for p in cluster.pods("kube-system", "k8s-app=cilium"))
        res = cluster.exec("kube-system", agent, "cilium-agent", ["cat", "/nope"])  # agents stay simulated
        assert res.exit_code == 1 and "No such file or directory" in res.stderr
