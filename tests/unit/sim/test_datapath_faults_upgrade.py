"""``upgrade-drop:NODE:MS``: parsed with the node's short name, refused off the netns datapath (only a real kernel
can drop the traffic), and the nftables it loads: a forward hook dropping everything, then no table."""

from __future__ import annotations

import pytest

from cilium_labs import spec as spec_mod
from cilium_labs.backends import get
from cilium_labs.errors import UsageError
from cilium_labs.sim.datapath_faults import KINDS, drop_script
from cilium_labs.sim.faults import FaultError, parse_fault
from cilium_labs.validate import validate

NODES = ("lab-control-plane", "lab-worker", "lab-worker2")


def test_it_parses_with_a_short_node_name() -> None:
    fault = parse_fault("upgrade-drop:worker:300", NODES)
    assert (fault.node, fault.get("ms"), str(fault)) == ("lab-worker", 300, "upgrade-drop:lab-worker:300")
    for bad in ("upgrade-drop:worker", "upgrade-drop:worker:0", "upgrade-drop:worker:soon", "upgrade-drop:nope:300"):
        with pytest.raises(FaultError):
            parse_fault(bad, NODES)
    assert "upgrade-drop" in KINDS


@pytest.mark.parametrize("datapath", ["api", "netns"])
def test_only_the_netns_datapath_can_inject_it(datapath: str, tmp_path: object) -> None:
    spec = spec_mod.from_dict({"name": "lab", "backend": "sim", "workers": 2,
                               "sim": {"datapath": datapath, "faults": ["upgrade-drop:worker:300"]}})
    backend = get("sim")(spec, tmp_path)  # type: ignore[arg-type]
    if datapath == "api":
        with pytest.raises(UsageError, match="netns datapath"):
            validate(spec, backend)
    else:
        validate(spec, backend)


def test_the_drop_table() -> None:
    on = drop_script(True)
    assert "type filter hook forward priority filter; policy drop;" in on
    assert on.startswith("table inet cl_drop\ndelete table inet cl_drop\n")  # replaces whatever was there
    assert drop_script(False) == "table inet cl_drop\ndelete table inet cl_drop\n"
