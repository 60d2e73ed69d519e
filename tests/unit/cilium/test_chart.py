"""Finding charts on disk and rendering ``cilium-config`` offline (skipped without ../shared/charts)."""

from __future__ import annotations

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
