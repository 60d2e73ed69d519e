"""Agent outputs as the normalized dicts of ``cilium_labs.cilium.parse`` (the shapes ``cilium-labs parse`` prints).

The checks compare plain dicts, so they depend on the documented normalized shapes and not on the parser's
internal types; this module is the one place that goes from parser values to those dicts.
"""

from __future__ import annotations

from typing import Any

from ..cilium import parse


def status(text: str) -> dict[str, Any]:
    """``status -o json`` -> ``{"healthy", "cilium", "kubernetes", "kvstore", "controllers", "routing", ...}``."""
    return parse.parse_status(text).to_dict()


def health(text: str) -> dict[str, Any]:
    """``cilium-health status -o json`` -> ``{"local", "reachable", "total", "nodes": [{"name", "reachable",
    "problems", ...}]}``."""
    return parse.parse_health(text).to_dict()


def tunnel_entries(text: str) -> list[dict[str, Any]]:
    """``bpf tunnel list -o json`` -> ``[{"prefix","endpoint","encrypt_key","cluster_id"}]``."""
    return list(parse.parse_tunnel_list(text).to_dict()["entries"])


def ipcache_entries(text: str) -> list[dict[str, Any]]:
    """``bpf ipcache list -o json`` (1.18+) -> the tunnelled entries, in the tunnel map's shape."""
    return list(parse.parse_ipcache(text).to_dict()["entries"])


def services(text: str) -> list[dict[str, Any]]:
    """``service list -o json`` -> ``[{"id","frontend","protocol","type","backends":[{"address","state",...}]}]``."""
    return list(parse.parse_service_list(text).to_dict()["services"])
