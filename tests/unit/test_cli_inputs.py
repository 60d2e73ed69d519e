"""User mistakes in what is handed to the CLI: each is one line with a fix and exit 2, never a traceback
(issue 11). Bad files here; bad lab settings in ``test_validate.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cilium_labs.cli import main


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def one_line_exit_2(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(fix: " in lines[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


def _binary(tmp_path: Path) -> Path:
    f = tmp_path / "image.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(256))
    return f


def _garbage(tmp_path: Path) -> Path:
    f = tmp_path / "garbage"
    f.write_text("this: is: not [ yaml\n  }{\n")
    return f


def test_spec_validate_of_a_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was a UnicodeDecodeError traceback."""
    code, _, err = run_main(["spec", "validate", str(_binary(tmp_path))], capsys)
    one_line_exit_2(code, err, "not UTF-8 text")


@pytest.mark.parametrize("make", [_binary, _garbage], ids=["binary", "garbage"])
def test_verify_with_a_garbage_kubeconfig(make: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was a 75-line yaml ScannerError traceback."""
    code, _, err = run_main(["verify", "--kubeconfig", str(make(tmp_path))], capsys)  # type: ignore[operator]
    one_line_exit_2(code, err, "kubeconfig" if make is _garbage else "not UTF-8")


@pytest.mark.parametrize("text", ["", "[1, 2, 3]\n", "just a string\n"], ids=["empty", "list", "scalar"])
def test_verify_with_a_kubeconfig_that_is_no_kubeconfig(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = tmp_path / "kc"
    kc.write_text(text)
    code, _, err = run_main(["verify", "--kubeconfig", str(kc)], capsys)
    one_line_exit_2(code, err, str(kc))


def test_an_empty_spec_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "lab.yaml"
    empty.write_text("\n")
    code, _, err = run_main(["spec", "validate", str(empty)], capsys)
    one_line_exit_2(code, err, "is empty", "spec init")


def test_spec_from_dev_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["plan", "--spec", "/dev/zero"], capsys)
    one_line_exit_2(code, err, "binary data")


def test_sim_values_file_that_is_binary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(
        ["sim", "serve", "--values", str(_binary(tmp_path)), "--kubeconfig-out", str(tmp_path / "kc")], capsys
    )
    one_line_exit_2(code, err, "not UTF-8")
