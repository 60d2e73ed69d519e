"""Find an official Cilium chart on disk and render it offline (helm-python-sdk, Helm compiled in-process).

Used where no cluster and no ``helm`` binary exist: the simulator installs "as the chart does" by rendering the
real chart with the installer's values and reading the resulting ``cilium-config``; tests assert what lands there.
A chart is either configured for the lab (``chart:`` in the spec, ``--chart``: a local directory or ``.tgz``) or
looked up by version in the folders ``$CILIUM_LABS_CHARTS_DIR`` names (``os.pathsep``-separated; the tests point
it at ``../shared/charts``). Never in the current directory: what a command does must not depend on where it was
started. Charts are never copied into the project. Without the ``helm-python-sdk`` package nothing is rendered:
``renderable`` says why, and the simulator falls back to values-derived config with that one-line notice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import CiliumLabsError, UsageError

log = logging.getLogger(__name__)

CHARTS_ENV = "CILIUM_LABS_CHARTS_DIR"
SDK_HINT = "pip install helm-python-sdk (or install cilium-labs[test])"
_CHART_FILE = re.compile(r"^cilium-v?(\d+)\.(\d+)\.(\d+)(?:\.tgz)?$")


class ChartError(CiliumLabsError):
    """The chart could not be loaded or rendered."""


def chart_dirs() -> list[Path]:
    """Folders searched for ``cilium-<version>.tgz``, in order: those ``$CILIUM_LABS_CHARTS_DIR`` names."""
    seen: list[Path] = []
    for part in os.environ.get(CHARTS_ENV, "").split(os.pathsep):
        d = Path(part).expanduser() if part.strip() else None
        if d is not None and d not in seen:
            seen.append(d)
    return seen


def _version(value: str) -> tuple[int, int, int]:
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(value).strip())
    if not m:
        raise UsageError(f"{value!r} is not a Cilium version", fix="write it as MAJOR.MINOR.PATCH, e.g. 1.16.19")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def find_chart(version: str) -> Path | None:
    """The chart for ``version``: an exact ``cilium-X.Y.Z.tgz`` (or unpacked ``cilium-X.Y.Z/``) if present,
    else the newest patch release of the same minor (its ``cilium-config`` keys are the same); None if neither."""
    want = _version(version)
    best: tuple[tuple[int, int, int], Path] | None = None
    for d in chart_dirs():
        if not d.is_dir():
            continue
        for p in d.iterdir():
            m = _CHART_FILE.match(p.name)
            if not m or not (p.suffix == ".tgz" or (p.is_dir() and (p / "Chart.yaml").is_file())):
                continue
            have = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            if have == want:
                return p
            if have[:2] == want[:2] and (best is None or have > best[0]):
                best = (have, p)
    return best[1] if best else None


def sdk_available() -> bool:
    """Whether ``helm-python-sdk`` (Helm compiled into a Python extension) can be imported."""
    try:
        import helm_python  # noqa: F401
    except ImportError:
        return False
    return True


def renderable(chart: Path | None) -> str:
    """Why ``chart`` cannot be rendered here ("" when it can, or when there is no chart to render): the one-line
    notice the simulator gives when it falls back to values-derived config."""
    if chart is None or sdk_available():
        return ""
    why = f"{chart.name} found, but rendering it needs the helm-python-sdk package ({SDK_HINT})"
    log.info("%s; using config derived from the values instead", why)
    return why


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:
        raise UsageError("rendering a chart offline needs the helm-python-sdk package", fix=SDK_HINT) from exc
    return helm_python


def render(chart: Path, values: Mapping[str, Any], *, namespace: str = "kube-system") -> dict[str, str]:
    """Render ``chart`` as release ``cilium`` in ``namespace``: template path -> manifest text (empty ones dropped)."""
    hp = _helm()
    try:
        loaded = hp.Chart.load(str(chart))
        out = loaded.render(values=dict(values), name="cilium", namespace=namespace)
    except Exception as exc:  # helm_python raises its own HelmError tree; keep the message
        raise ChartError(f"rendering {chart.name} failed: {exc}", fix="check the Helm values") from exc
    return {path: text for path, text in dict(out).items() if text and text.strip()}


def manifests(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a render, in template order."""
    objs: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise ChartError(f"{path} rendered to invalid YAML: {exc}") from exc
        objs += [d for d in docs if isinstance(d, dict) and d.get("kind")]
    return objs


def find_object(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objs if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name), None)


def render_cilium_config(chart: Path, values: Mapping[str, Any], *, namespace: str = "kube-system") -> dict[str, str]:
    """The ``data`` of the ``cilium-config`` ConfigMap the chart renders for ``values``."""
    cm = find_object(manifests(render(chart, values, namespace=namespace)), "ConfigMap", "cilium-config")
    if cm is None:
        raise ChartError(f"{chart.name} rendered no cilium-config ConfigMap")
    return {str(k): "" if v is None else str(v) for k, v in (cm.get("data") or {}).items()}
