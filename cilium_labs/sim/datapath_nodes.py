"""Node access to a netns lab from any process: ``NodeExec`` and ``Capture`` by the namespaces' names.

The datapath lives in the simulator's server process; the backend that answers ``node_exec`` and ``capture``
(``cilium-labs preflight``, the encapsulation check) runs in another. Kernel state is global, so this needs no
connection to the server: the node's namespace is ``cln-<lab>-n-<node>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import ExecResult
from ..errors import BackendError
from . import netns
from .datapath import capture_in, exec_in


class NetnsNodes:
    """``NodeExec`` + ``Capture`` for the nodes of netns lab ``lab``."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.prefix = netns.lab_prefix(lab)

    def node_ns(self, node: str) -> str:
        ns = f"{self.prefix}n-{node}"
        if not netns.exists(ns):
            raise BackendError(f"node {node} of lab {self.lab} has no namespace {ns}", fix="is the lab up?")
        return ns

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        return exec_in(self.node_ns(node), argv, timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        return capture_in(self.node_ns(node), bpf_filter, seconds, what=node)
