"""Finding charts on disk and rendering ``cilium-config`` offline (skipped without ../shared/charts)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cilium_labs.cilium import chart
from tests.helpers import charts_dir

CHARTS = charts_dir()
needs_charts = pytest.mark.skipif(CHARTS is None,
                                  reason="no Cilium charts (../shared/charts or $CILIUM_LABS_CHARTS_DIR)")


def _fake_dir(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_find_chart_exact_then_newest_patch_of_the_minor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _fake_dir(tmp_path, "cilium-1.16.3.tgz", "cilium-1.16.19.tgz", "cilium-1.18.12.tgz", "notes.txt")
    monkeypatch.setenv(chart.CHARTS_ENV, str(d))
    monkeypatch.setattr(chart, "chart_dirs", lambda: [d])
    assert chart.find_chart("1.16.3") == d / "cilium-1.16.3.tgz"
    assert chart.find_chart("v1.16.5") == d / "cilium-1.16.19.tgz"
    assert chart.find_chart("1.18") == d / "cilium-1.18.12.tgz"
    assert chart.find_chart("1.17.0") is None


def test_env_dir_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(chart.CHARTS_ENV, str(tmp_path))
    assert chart.chart_dirs()[0] == tmp_path


def test_bad_version_is_a_usage_error() -> None:
    from cilium_labs.errors import UsageError

    with pytest.raises(UsageError, match="not a Cilium version"):
        chart.find_chart("latest")


@needs_charts
def test_render_cilium_config_from_the_real_chart() -> None:
    path = chart.find_chart("1.16.19")
    assert path is not None
    cm = chart.render_cilium_config(path, {"routingMode": "native", "ipv4NativeRoutingCIDR": "10.244.0.0/16",
                                           "autoDirectNodeRoutes": True, "ipam": {"mode": "kubernetes"}})
    assert cm["routing-mode"] == "native" and cm["ipam"] == "kubernetes"
    assert cm["auto-direct-node-routes"] == "true"
    objs = chart.manifests(chart.render(path, {}))
    assert chart.find_object(objs, "DaemonSet", "cilium") is not None


@needs_charts
def test_old_charts_use_the_tunnel_key() -> None:
    path = chart.find_chart("1.13.18")
    assert path is not None
    cm = chart.render_cilium_config(path, {"tunnel": "geneve"})
    assert cm["tunnel"] == "geneve" and "routing-mode" not in cm


@needs_charts
def test_values_the_templates_cannot_use_are_a_chart_error() -> None:
    path = chart.find_chart("1.16.19")
    assert path is not None
    with pytest.raises(chart.ChartError):
        chart.render(path, {"operator": {"replicas": {"bad": "type"}}, "image": "not-a-map"})


def test_lookup_never_depends_on_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to search cwd/../shared/charts: the same command found a chart or not depending on where it ran."""
    shared = tmp_path / "shared" / "charts"
    shared.mkdir(parents=True)
    (shared / "cilium-1.20.0.tgz").write_bytes(b"")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(chart.CHARTS_ENV, raising=False)
    assert chart.chart_dirs() == [] and chart.find_chart("1.20.0") is None
    monkeypatch.setenv(chart.CHARTS_ENV, f"{tmp_path / 'nope'}{os.pathsep}{shared}")
    assert chart.find_chart("1.20.0") == shared / "cilium-1.20.0.tgz"


def test_without_the_sdk_a_chart_is_not_renderable_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "helm_python", None)  # `import helm_python` raises ImportError
    assert not chart.sdk_available()
    why = chart.renderable(tmp_path / "cilium-1.20.0.tgz")
    assert "cilium-1.20.0.tgz" in why and "pip install helm-python-sdk" in why
    assert chart.renderable(None) == ""


def test_the_simulator_falls_back_to_values_without_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sim serve``/``run --backend sim`` failed outright when a chart was found and the SDK was missing."""
    from cilium_labs.sim.config import resolve

    d = _fake_dir(tmp_path, "cilium-1.20.0.tgz")
    monkeypatch.setenv(chart.CHARTS_ENV, str(d))
    monkeypatch.setitem(sys.modules, "helm_python", None)
    cfg = resolve({"routingMode": "tunnel", "tunnelProtocol": "geneve"}, "1.20.0")
    assert cfg.source.startswith("values (no chart: cilium-1.20.0.tgz found, but rendering it needs")
    assert cfg.routing == "tunnel" and cfg.tunnel_protocol == "geneve"
