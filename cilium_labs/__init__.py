"""cilium-labs: a multi-node Kubernetes lab on a pluggable backend, Cilium installed, and proof that it works."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``cilium_labs.matrix(...)`` without importing the matrix (and the lab machinery) on every import."""
    if name == "matrix":
        import importlib

        return importlib.import_module(".matrix", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
