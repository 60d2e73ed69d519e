"""A simulated Cilium cluster behind a real Kubernetes API on loopback: the project's test substrate.

Start one in-process (tests, demos)::

    from cilium_labs.sim import running
    with running(spec, faults=["tunnel-missing:lab-worker:lab-worker2"], exec_latency_ms=0) as sim:
        cluster = Cluster(sim.kubeconfig)        # the real kubernetes client, over HTTPS, with a token
        sim.set_faults(["agent-down:lab-worker"])  # change faults while it runs
        sim.install_cilium(values, "1.16.19")      # reinstall as the chart would

``running(spec, *, faults=(), exec_latency_ms=0.0, ready_delay_s=0.0, pod_start_s=0.0, install=True,
values=None, cilium_version=None, use_chart=True, nodes=None, kubeconfig=None, seed=None, wait=True)
-> ContextManager[SimHandle]``; ``SimHandle`` has ``kubeconfig`` (Path, 0600), ``url``, ``token``, ``server``
(``SimServer``), ``cluster`` (``SimCluster``), ``nodes()``, ``set_faults()``, ``clear_faults()``,
``install_cilium()``, ``wait_ready()``.

Out of process: ``cilium-labs sim serve --nodes 3 --cilium-version 1.16.19 --kubeconfig-out kc`` (or
``python -m cilium_labs.sim serve ...``), and ``backend: sim`` in a lab spec.
Fault strings: see ``cilium_labs.sim.faults`` (``describe()`` lists them).
"""

from __future__ import annotations

from .faults import Fault, FaultError, parse_fault, parse_faults
from .handle import ServerThread, SimHandle, running
from .model import ApiError, SimCluster
from .server import SimServer

__all__ = [
    "ApiError",
    "Fault",
    "FaultError",
    "ServerThread",
    "SimCluster",
    "SimHandle",
    "SimServer",
    "parse_fault",
    "parse_faults",
    "running",
]
