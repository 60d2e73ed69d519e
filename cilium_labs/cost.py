"""Hourly cost estimate of a GCP lab, from a small price table that says how old it is.

A lab that someone forgets costs money every hour, so ``plan`` states the price up front. The table holds
on-demand list prices in USD for us-central1 (other regions cost up to about 30% more; the estimate says so).
It is deliberately small and dated: prices change, and a stale estimate that admits its date is more honest
than a precise-looking number. Override it with ``$CILIUM_LABS_GCP_PRICES`` (a JSON or YAML file with the same
keys as ``PriceTable``), or pass ``prices=`` to ``estimate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from .errors import UsageError
from .spec import LabSpec

HOURS_PER_MONTH = 730.0
PRICES_ENV = "CILIUM_LABS_GCP_PRICES"


@attrs.frozen
class PriceTable:
    """On-demand prices; ``date`` is when they were read from the sources below."""

    date: str
    region: str
    currency: str
    machine_hourly: dict[str, float]
    disk_gb_month: dict[str, float]
    external_ip_hourly: float
    sources: tuple[str, ...] = ()


DEFAULT_PRICES = PriceTable(
    date="2025-06-01",
    region="us-central1",
    currency="USD",
    machine_hourly={
        "e2-micro": 0.008376,
        "e2-small": 0.016751,
        "e2-medium": 0.033503,
        "e2-standard-2": 0.067006,
        "e2-standard-4": 0.134012,
        "e2-standard-8": 0.268024,
        "e2-standard-16": 0.536048,
        "n1-standard-1": 0.0475,
        "n1-standard-2": 0.095,
        "n1-standard-4": 0.19,
        "n2-standard-2": 0.097118,
        "n2-standard-4": 0.194236,
        "n2-standard-8": 0.388472,
        "n2d-standard-2": 0.084492,
        "n2d-standard-4": 0.168984,
        "t2d-standard-1": 0.042246,
        "t2d-standard-2": 0.084492,
    },
    disk_gb_month={"pd-standard": 0.04, "pd-balanced": 0.10, "pd-ssd": 0.17},
    external_ip_hourly=0.005,
    sources=(
        "https://cloud.google.com/compute/vm-instance-pricing",
        "https://cloud.google.com/compute/disks-image-pricing",
        "https://cloud.google.com/vpc/network-pricing#ipaddress",
    ),
)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The price table: ``path``, else ``$CILIUM_LABS_GCP_PRICES``, else the built-in one.

    A file may give only some keys (e.g. one machine type); the rest come from the built-in table.
    """
    source = path or os.environ.get(PRICES_ENV)
    if not source:
        return DEFAULT_PRICES
    p = Path(source)
    from ._files import read_text

    text = read_text(p, what="a price table (JSON or YAML)", fix=f"fix or unset ${PRICES_ENV}")
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"price table {p} is not valid JSON/YAML", fix="see cilium_labs.cost.PriceTable") from exc
    return merge_prices(DEFAULT_PRICES, data or {}, source=str(p))


def merge_prices(base: PriceTable, data: Mapping[str, Any], *, source: str = "override") -> PriceTable:
    fields = {f.name for f in attrs.fields(PriceTable)}
    if not isinstance(data, Mapping):
        raise UsageError(f"price table {source} must be a mapping")
    unknown = set(data) - fields
    if unknown:
        raise UsageError(f"price table {source}: unknown keys {', '.join(sorted(unknown))}",
                         fix=f"known keys: {', '.join(sorted(fields))}")  # fmt: skip
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("machine_hourly", "disk_gb_month"):
            if not isinstance(value, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value.values()
            ):
                raise UsageError(f"price table {source}: {key} must map names to non-negative numbers")
            changes[key] = {**getattr(base, key), **{str(k): float(v) for k, v in value.items()}}
        elif key == "external_ip_hourly":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"price table {source}: external_ip_hourly must be a non-negative number")
            changes[key] = float(value)
        elif key == "sources":
            changes[key] = tuple(str(v) for v in value)
        else:
            changes[key] = str(value)
    if "date" not in changes:
        changes["date"] = f"{base.date} (partly overridden by {source})"
    return attrs.evolve(base, **changes)


@attrs.frozen
class CostLine:
    item: str
    quantity: float
    unit: str
    unit_price: float | None
    hourly: float | None


@attrs.frozen
class CostEstimate:
    lines: tuple[CostLine, ...]
    currency: str
    prices_date: str
    notes: tuple[str, ...] = ()

    @property
    def hourly(self) -> float:
        """Sum of the lines with a known price (see ``complete``)."""
        return sum(line.hourly or 0.0 for line in self.lines)

    @property
    def complete(self) -> bool:
        return all(line.hourly is not None for line in self.lines)

    def for_hours(self, hours: float) -> float:
        return self.hourly * hours

    def render(self, ttl_hours: float | None = None) -> list[str]:
        """Lines for ``plan``: each item, the total per hour, and over the lab's time to live."""
        out = []
        for line in self.lines:
            price = f"{line.unit_price:.6g}" if line.unit_price is not None else "unknown"
            hourly = f"{line.hourly:.4f}" if line.hourly is not None else "unknown"
            out.append(f"  {line.item}: {line.quantity:g} {line.unit} x {price} = {hourly} {self.currency}/h")
        total = f"{self.hourly:.3f} {self.currency}/hour"
        if not self.complete:
            total = "at least " + total
        if ttl_hours:
            total += f", about {self.for_hours(ttl_hours):.2f} {self.currency} over the {ttl_hours:g} h time to live"
        out.append(f"  total: {total} (list prices of {self.prices_date})")
        out += [f"  ({n})" for n in self.notes]
        return out


def estimate(
    spec: LabSpec, prices: PriceTable | None = None, *, disk_size_gb: float = 20.0, disk_type: str = "pd-balanced"
) -> CostEstimate:
    """What the lab ``spec`` costs per hour on GCE: VMs, boot disks, external addresses."""
    table = prices or load_prices()
    n = spec.node_count
    machine = spec.gcp.machine_type
    notes: list[str] = []
    vm_price = table.machine_hourly.get(machine)
    if vm_price is None:
        notes.append(f"no price for machine type {machine}; add it to a price table in ${PRICES_ENV}")
    disk_month = table.disk_gb_month.get(disk_type)
    if disk_month is None:
        notes.append(f"no price for disk type {disk_type}")
    if spec.gcp.region != table.region:
        notes.append(f"prices are for {table.region}; {spec.gcp.region} may cost up to ~30% more")
    lines = (
        CostLine(f"{machine} VM", n, "VM", vm_price, None if vm_price is None else vm_price * n),
        CostLine(
            f"{disk_type} boot disk",
            n * disk_size_gb,
            "GB",
            None if disk_month is None else disk_month / HOURS_PER_MONTH,
            None if disk_month is None else disk_month / HOURS_PER_MONTH * n * disk_size_gb,
        ),
        CostLine("external IPv4 address", n, "address", table.external_ip_hourly, table.external_ip_hourly * n),
    )
    notes.append("network egress is billed on top (small for a lab: image pulls come in, not out)")
    return CostEstimate(lines, table.currency, table.date, tuple(notes))
