"""cilium-labs: a multi-node Kubernetes lab on a pluggable backend, Cilium installed, and proof that it works."""

from __future__ import annotations

__version__ = "0.1.0"
