"""Backend registry: built-ins plus whatever third parties register under the ``cilium_labs.backends``
entry-point group (``mybackend = mypkg.module:MyBackend``)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..errors import UsageError
from .base import Backend, Capture, ExecResult, LoadImage, Node, NodeExec, Plan

ENTRY_POINT_GROUP = "cilium_labs.backends"

#: Built-in backends, imported lazily so a missing optional dependency of one does not break the others.
BUILTIN: dict[str, str] = {
    "existing": "cilium_labs.backends.existing:ExistingBackend",
    "sim": "cilium_labs.backends.sim:SimBackend",
    "kind": "cilium_labs.backends.kind:KindBackend",
    "gcp": "cilium_labs.backends.gcp:GcpBackend",
    "vagrant": "cilium_labs.backends.vagrant:VagrantBackend",
    "local": "cilium_labs.backends.local:LocalBackend",
}


def _load(target: str) -> type[Backend]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"{target} is not a cilium_labs Backend subclass")
    return cls


def registered() -> dict[str, str]:
    """Backend name -> ``module:Class``, built-ins first; an entry point may not shadow a built-in."""
    names = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, ep.value)
    return names


def get(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    table = registered()
    if name not in table:
        raise UsageError(f"unknown backend {name!r}", fix=f"use one of: {', '.join(sorted(table))}")
    try:
        return _load(table[name])
    except ImportError as exc:
        raise UsageError(f"backend {name!r} cannot be loaded: {exc}", fix="reinstall cilium-labs") from exc


__all__ = [
    "Backend",
    "Capture",
    "ENTRY_POINT_GROUP",
    "ExecResult",
    "LoadImage",
    "Node",
    "NodeExec",
    "Plan",
    "get",
    "registered",
]
