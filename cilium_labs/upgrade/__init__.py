"""``cilium-labs upgrade``: upgrade (or downgrade, or restart) Cilium on a lab while probes between every node pair
measure what the traffic lost, and when, against each agent's restart.

    report = lab.upgrade("1.20.0", max_gap_s=0.5)
    report.ok, report.to_json(), report.to_junit()

``prober`` is what runs in the pods, ``measure`` turns its output into figures, ``rollout`` reads the agents,
``session`` sets the traffic up, ``report`` presents it all and ``run`` puts the steps in order.
"""

from __future__ import annotations

from .report import UpgradeReport
from .run import UpgradeOptions, upgrade

__all__ = ["UpgradeOptions", "UpgradeReport", "upgrade"]
