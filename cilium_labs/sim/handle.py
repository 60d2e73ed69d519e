"""Run a simulated cluster in this process (a background thread with its own event loop) for tests and demos."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..backends.base import Node
from ..errors import BackendError
from ..spec import LabSpec
from .config import resolve, spec_values
from .faults import Fault
from .model import SimCluster
from .server import SimServer


class ServerThread:
    """A ``SimServer`` served from a daemon thread; ``start``/``stop`` are blocking and idempotent."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="cilium-labs-sim", daemon=True)
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # a connection accepted while the server stopped leaves a handler task that never ran: end it here
        left = asyncio.all_tasks(self.loop)
        for task in left:
            task.cancel()
        if left:
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def start(self, timeout: float = 30.0) -> None:
        if self._started:
            return
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop)
        try:
            fut.result(timeout)
        except (OSError, concurrent.futures.TimeoutError) as exc:
            self.stop()
            raise BackendError(f"the simulated API server did not start: {exc}") from exc
        self._started = True

    async def _shutdown(self) -> None:
        """Stop the server, then end what it leaves behind (handlers of connections a client keeps open), so
        the loop closes with no task pending."""
        await self.server.stop()
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
        self.loop.close()
        self._started = False


@attrs.define
class SimHandle:
    """A running simulated cluster: its kubeconfig (mode 0600), server and cluster model."""

    kubeconfig: Path
    server: SimServer
    thread: ServerThread

    @property
    def cluster(self) -> SimCluster:
        return self.server.cluster

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.pki.token

    @property
    def spec(self) -> LabSpec:
        return self.cluster.spec

    def nodes(self) -> list[Node]:
        return [Node(n.name, "control-plane" if n.role == "control-plane" else "worker", tuple(n.ips))
                for n in self.cluster.nodes]

    def set_faults(self, faults: Iterable[str | Fault], *, replace: bool = False) -> list[Fault]:
        """Add faults (or replace all of them); bad strings raise ``FaultError``."""
        return self.cluster.set_faults(faults, replace=replace)

    def clear_faults(self) -> None:
        self.cluster.set_faults([], replace=True)

    def install_cilium(self, values: Mapping[str, Any] | None = None, version: str | None = None, *,
                       use_chart: bool = True) -> None:
        version = version or self.spec.cilium_version
        if values is None:
            values = spec_values(self.spec.replace(cilium_version=version))
        self.cluster.install_cilium(resolve(values, version, use_chart=use_chart))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until every agent is ready (raises ``BackendError`` on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cluster.lock:
                self.cluster.tick()
                pending = [n for n, at in self.cluster.agent_ready_at.items()
                           if self.cluster.clock() < at and not self.cluster.agent_down(n)]
                pods = [p for p in self.cluster._objects("pods") if p.get("status", {}).get("phase") == "Pending"
                        and p["spec"].get("nodeName") and not self.cluster.agent_down(p["spec"]["nodeName"])]
            if not pending and not pods:
                return
            if time.monotonic() > deadline:
                raise BackendError(f"simulated agents not ready after {timeout:g}s: {', '.join(pending[:5])}")
            time.sleep(0.02)


@contextlib.contextmanager
def running(
    spec: LabSpec,
    *,
    faults: Iterable[str | Fault] = (),
    exec_latency_ms: float = 0.0,
    ready_delay_s: float = 0.0,
    pod_start_s: float = 0.0,
    install: bool = True,
    values: Mapping[str, Any] | None = None,
    cilium_version: str | None = None,
    use_chart: bool = True,
    nodes: int | None = None,
    kubeconfig: Path | None = None,
    seed: int | None = None,
    wait: bool = True,
) -> Iterator[SimHandle]:
    """Start a simulated cluster for ``spec`` on 127.0.0.1 and yield a ``SimHandle``; stop it on exit.

    Defaults suit tests: no exec latency, agents ready at once, Cilium installed (``spec.cilium_version``, Helm
    values from ``spec_values``, the real chart when one is found). ``nodes`` overrides the node count (beyond
    the spec's limit of 100 workers, for benchmarks).
    """
    cluster = SimCluster(spec, nodes=nodes, ready_delay_s=ready_delay_s, pod_start_s=pod_start_s, seed=seed)
    if install:
        version = cilium_version or spec.cilium_version
        vals = values if values is not None else spec_values(spec.replace(cilium_version=version))
        cluster.install_cilium(resolve(vals, version, use_chart=use_chart))
    cluster.set_faults(faults)
    server = SimServer(cluster, exec_latency_ms=exec_latency_ms)
    thread = ServerThread(server)
    thread.start()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    try:
        if kubeconfig is None:
            tmp = tempfile.TemporaryDirectory(prefix="cilium-labs-sim-")
            kubeconfig = Path(tmp.name) / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        handle = SimHandle(Path(kubeconfig), server, thread)
        if install and wait:
            handle.wait_ready(timeout=max(30.0, ready_delay_s * 3 + pod_start_s * 3))
        yield handle
    finally:
        thread.stop()
        if tmp is not None:
            tmp.cleanup()
