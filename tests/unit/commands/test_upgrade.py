"""``cilium-labs upgrade`` as a user meets it before anything runs: durations, which lab, what cannot be measured
(each a one-line error, exit 2, nothing changed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cilium_labs.cli import main
from cilium_labs.commands.upgrade import duration
from cilium_labs.errors import UsageError
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_durations_in_milliseconds_seconds_minutes() -> None:
    assert duration("100ms", "--probe-interval") == pytest.approx(0.1)
    assert duration("1s", "--max-gap") == 1.0 and duration("1.5s", "--max-gap") == 1.5
    assert duration("2m", "--timeout") == 120.0 and duration("45", "--timeout") == 45.0
    for bad in ("0", "0ms", "-1s", "soon", ""):
        with pytest.raises(UsageError):
            duration(bad, "--max-gap")


def test_which_lab(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["upgrade", "--cilium-version", "1.20.0"], capsys)
    assert code == 2 and "which lab? pass --lab NAME" in err and not out
    code, _, err = run_main(["upgrade", "--lab", "nope", "--cilium-version", "1.20.0"], capsys)
    assert code == 2 and "no lab named 'nope'" in err
    code, _, err = run_main(["upgrade", "--lab", "nope", "--cilium-version", "1.20.0", "--probe-interval", "5ms"],
                            capsys)
    assert code == 2 and "under 10 ms" in err


@pytest.fixture
def api_lab() -> Iterator[Lab]:
    """A simulated lab on the API-only datapath: its pods are records, no traffic runs."""
    lab = Lab(LabSpec(name="upg-api", backend="sim", workers=1, cilium_version="1.18.12"), keep="never")
    lab.up()
    try:
        lab.install()
        yield lab
    finally:
        lab.down()


def test_a_lab_whose_pods_do_not_run_is_refused(api_lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    before = api_lab.cluster.daemon_set("kube-system", "cilium").metadata.generation
    code, out, err = run_main(["upgrade", "--lab", "upg-api", "--cilium-version", "1.20.0", "-o", "json"], capsys)
    assert code == 2 and not out
    assert "the sim backend's pods do not run: there is no traffic to measure" in err and "--datapath netns" in err
    assert api_lab.cluster.daemon_set("kube-system", "cilium").metadata.generation == before  # nothing upgraded
