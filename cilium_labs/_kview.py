"""Kubernetes objects read through the ``kubernetes`` client's attribute names, without building its models.

Building the client's models is most of what listing costs: with kubernetes 37 (pydantic models) a list of a
hundred agent pods takes half a second of CPU, and verify lists every node, Service and EndpointSlice of the
cluster to read a few fields of each. A ``KView`` keeps the JSON the API sent and converts a field when it is
first read, by the model class's own ``openapi_types`` and ``attribute_map`` (present in every client since the
first release), so callers keep writing ``pod.status.container_statuses[0].ready`` and get the same values.

The one difference: ``date``/``datetime`` fields stay the RFC 3339 strings of the JSON (nothing in verify
compares times). Objects are read-only.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from kubernetes import client

_AS_IS = frozenset({"str", "int", "float", "bool", "object", "date", "datetime", "bytearray", "bytes"})
_LIST = re.compile(r"^(?:List|list)\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, ?(.+)\]|dict\(str, ?(.+)\))$")


class KView:
    """One object of model class ``cls`` (``client.V1Pod``...) over its JSON ``data``."""

    __slots__ = ("_cls", "_data", "_seen")

    def __init__(self, cls: type, data: dict[str, Any]) -> None:
        self._cls = cls
        self._data = data
        self._seen: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        seen = self._seen
        if name in seen:
            return seen[name]
        kind = self._cls.openapi_types.get(name)  # type: ignore[attr-defined]
        if kind is None:
            raise AttributeError(f"{self._cls.__name__} has no attribute {name!r}")
        value = seen[name] = convert(kind, self._data.get(self._cls.attribute_map[name]))  # type: ignore[attr-defined]
        return value

    def __repr__(self) -> str:
        meta = self._data.get("metadata") or {}
        where = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
        return f"<{self._cls.__name__} view {where}>"


def convert(kind: str, raw: Any) -> Any:
    """JSON ``raw`` as the client would give a field of type ``kind`` (``"List[V1Endpoint]"``, ``"str"``...)."""
    if raw is None:
        return None
    how, arg = _parsed(kind)
    if how == "as-is":
        return raw
    if how == "list":
        return [convert(arg, v) for v in raw]
    if how == "dict":
        return dict(raw) if arg in _AS_IS else {k: convert(arg, v) for k, v in raw.items()}
    return KView(arg, raw) if isinstance(raw, dict) else raw


@functools.lru_cache(maxsize=1024)
def _parsed(kind: str) -> tuple[str, Any]:
    kind = kind.strip()
    if kind in _AS_IS:
        return "as-is", None
    m = _LIST.match(kind)
    if m:
        return "list", m.group(1)
    m = _DICT.match(kind)
    if m:
        return "dict", (m.group(1) or m.group(2)).strip()
    cls = getattr(client, kind, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return "as-is", None  # a type this client does not model: keep the JSON
    return "model", cls


def items(cls: type, body: dict[str, Any]) -> list[Any]:
    """The items of a list response ``body`` (decoded JSON), each as a view of ``cls``."""
    return [KView(cls, item) for item in body.get("items") or []]
