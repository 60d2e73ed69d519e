"""cilium_labs.cost: the dated price table, overrides, and the estimate plan shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cilium_labs.cost import DEFAULT_PRICES, PRICES_ENV, estimate, load_prices
from cilium_labs.errors import UsageError
from cilium_labs.spec import GcpOptions, LabSpec


def test_table_is_dated_and_sourced() -> None:
    assert DEFAULT_PRICES.date and DEFAULT_PRICES.sources
    assert DEFAULT_PRICES.machine_hourly[GcpOptions().machine_type] > 0


def test_estimate_three_default_nodes() -> None:
    est = estimate(LabSpec(workers=2))
    vm, disk, ip = est.lines
    assert vm.quantity == 3 and vm.hourly == pytest.approx(3 * 0.067006)
    assert disk.quantity == 60 and disk.hourly == pytest.approx(60 * 0.10 / 730)
    assert ip.hourly == pytest.approx(3 * 0.005)
    assert est.complete and est.hourly == pytest.approx(0.201018 + 0.0082192 + 0.015, rel=1e-4)
    text = "\n".join(est.render(4))
    assert "total: 0.224 USD/hour, about 0.90 USD over the 4 h time to live (list prices of 2025-06-01)" in text


def test_unknown_machine_and_region_are_said() -> None:
    est = estimate(LabSpec(gcp=GcpOptions(machine_type="c4-standard-2", region="europe-west1")))
    assert not est.complete
    text = "\n".join(est.render())
    assert "at least" in text and "no price for machine type c4-standard-2" in text
    assert "prices are for us-central1; europe-west1" in text


def test_override_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"date": "2026-10-01", "machine_hourly": {"c4-standard-2": 0.1}}))
    monkeypatch.setenv(PRICES_ENV, str(path))
    table = load_prices()
    assert table.date == "2026-10-01"
    assert table.machine_hourly["c4-standard-2"] == 0.1 and "e2-standard-2" in table.machine_hourly
    est = estimate(LabSpec(workers=0, gcp=GcpOptions(machine_type="c4-standard-2")))
    assert est.complete and est.lines[0].hourly == pytest.approx(0.1)
    yml = tmp_path / "prices.yaml"
    yml.write_text("external_ip_hourly: 0.004\n")
    partial = load_prices(yml)
    assert partial.external_ip_hourly == 0.004 and "partly overridden" in partial.date


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"machine_hourly": {"e2-small": "cheap"}}', "non-negative numbers"),
        ('{"colour": "blue"}', "unknown keys colour"),
        ('{"external_ip_hourly": -1}', "non-negative"),
        ("[1, 2]", "must be a mapping"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_override_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=match):
        load_prices(path)
    with pytest.raises(UsageError, match="cannot read"):
        load_prices(tmp_path / "missing.json")
