"""The sim backend's pre-flight asks the kernel before a netns lab uses Geneve, so a matrix (or ``run``) shows
the combination as refused with the kernel's reason instead of building VXLAN under a Geneve label."""

from __future__ import annotations

from pathlib import Path

import pytest

from cilium_labs.backends.sim import SimBackend
from cilium_labs.errors import PreflightError
from cilium_labs.sim import netns
from cilium_labs.spec import LabSpec


def _backend(tmp_path: Path, **fields: object) -> SimBackend:
    spec = LabSpec(backend="sim").replace(**fields)
    return SimBackend(spec, tmp_path)


def test_a_netns_geneve_lab_asks_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, ...]] = []

    def refuse(kind: str, *args: str) -> None:
        asked.append((kind, *args))
        raise PreflightError("this kernel cannot create geneve devices (Error: Unknown device type.)")

    monkeypatch.setattr(netns, "require_link_kind", refuse)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with pytest.raises(PreflightError, match="cannot create geneve"):
        _backend(tmp_path, tunnel_protocol="geneve", sim={"datapath": "netns"}).preflight()
    assert asked == [("geneve", "external", "dstport", "6081")]


@pytest.mark.parametrize("fields", [{"tunnel_protocol": "geneve"}, {"sim": {"datapath": "netns"}}])
def test_other_labs_do_not_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, object]) -> None:
    def boom(kind: str, *args: str) -> None:
        raise AssertionError("probed")

    monkeypatch.setattr(netns, "require_link_kind", boom)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert _backend(tmp_path, **fields).preflight() == []
