"""``vagrant validate`` of vagrant/Vagrantfile with the lab files the backend writes, using the real Vagrant and
vagrant-libvirt plugin (no VM is created). Skipped where vagrant is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cilium_labs.backends.vagrant import VagrantBackend
from cilium_labs.spec import from_dict

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("vagrant") is None, reason="vagrant is not installed (apt-get install vagrant vagrant-libvirt)"
    ),
]


def _validate(backend: VagrantBackend) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["vagrant", "validate"],
        env={**os.environ, **backend.vagrant_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("driver", "provision"), [("kvm", True), ("qemu", False)])
def test_vagrantfile_validates_for_every_kind_of_lab(tmp_path: Path, provision: bool, driver: str) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_text("")
    vagrant = {"provision": provision, "driver": driver, "box": "local/test", "box_url": str(tmp_path / "t.box")}
    if driver == "qemu":
        vagrant |= {"kernel": str(kernel), "initrd": str(kernel)}
    # Three control planes: only one machine may be Vagrant's primary.
    spec = from_dict({"name": "vv", "workers": 2, "control_planes": 3, "vagrant": vagrant})
    backend = VagrantBackend(spec, tmp_path / "vv")
    backend.write_lab_files()
    res = _validate(backend)
    assert res.returncode == 0, res.stderr
    assert "Vagrantfile validated successfully." in res.stdout


def test_vagrantfile_refuses_a_lab_file_of_another_schema(tmp_path: Path) -> None:
    backend = VagrantBackend(from_dict({"name": "vv", "vagrant": {"provision": False}}), tmp_path / "vv")
    backend.write_lab_files()
    doc = json.loads(backend.lab_file.read_text())
    backend.lab_file.write_text(json.dumps({**doc, "schema": 2}))
    res = _validate(backend)
    assert res.returncode != 0
    assert "is not a schema-1 lab file" in res.stderr


def test_vagrantfile_without_a_lab_file_says_how_to_get_one(tmp_path: Path) -> None:
    backend = VagrantBackend(from_dict({"name": "vv", "vagrant": {"provision": False}}), tmp_path / "vv")
    backend.write_lab_files()
    backend.lab_file.unlink()
    res = _validate(backend)
    assert res.returncode != 0
    assert "cilium-labs up --backend vagrant" in res.stderr
