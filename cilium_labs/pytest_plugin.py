"""pytest plugin: a Cilium lab as a fixture, for test suites of Cilium features.

    def test_my_feature(cilium_lab):
        report = cilium_lab.verify(["tunnels"])
        assert report.ok

Options: ``--cilium-lab-backend`` (default ``sim``: runs anywhere), ``--cilium-lab-spec lab.yaml``,
``--cilium-lab-keep always|never|on-failure``. Override the ``cilium_lab_spec`` fixture to describe the lab in
code. The lab is created once per session, Cilium installed, and torn down at the end unless kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .lab import Lab
    from .spec import LabSpec


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cilium-labs")
    group.addoption("--cilium-lab-backend", default="sim", help="backend for the cilium_lab fixture (default sim)")
    group.addoption("--cilium-lab-spec", default=None, help="lab spec YAML for the cilium_lab fixture")
    group.addoption(
        "--cilium-lab-keep", default="never", choices=["always", "never", "on-failure"], help="keep the lab after"
    )


@pytest.fixture(scope="session")
def cilium_lab_spec(pytestconfig: pytest.Config) -> LabSpec:
    """The spec of the session's lab; override this fixture to build it in code."""
    from . import spec as spec_mod

    path = pytestconfig.getoption("--cilium-lab-spec")
    base = spec_mod.load(path) if path else spec_mod.LabSpec(name="pytest-lab")
    return base.replace(backend=pytestconfig.getoption("--cilium-lab-backend"))


@pytest.fixture(scope="session")
def cilium_lab(cilium_lab_spec: LabSpec, pytestconfig: pytest.Config) -> Iterator[Lab]:
    """A lab with Cilium installed, shared by the session."""
    from .lab import Lab

    lab = Lab(cilium_lab_spec, keep=pytestconfig.getoption("--cilium-lab-keep"))
    with lab:
        lab.install()
        yield lab
