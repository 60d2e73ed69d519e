"""The OpenSSH client accepts the options cilium_labs.ssh builds (``ssh -G`` resolves them without connecting)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cilium_labs import ssh

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client is not installed"),
]


def test_ssh_resolves_our_options(tmp_path: Path) -> None:
    identity = ssh.SshIdentity(user="cilium-labs", key_file=tmp_path / "id", known_hosts=tmp_path / "kh", port=2222)
    argv = ssh.ssh_argv(identity, "34.1.2.3", ["true"])
    # `ssh -G` prints the configuration it would use and exits; a misspelt option is an error here.
    res = subprocess.run(["ssh", "-G", *argv[1:-1]], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    conf = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    assert conf["batchmode"] == "yes"
    assert conf["stricthostkeychecking"] == "accept-new"
    assert conf["userknownhostsfile"] == str(tmp_path / "kh")
    assert conf["identitiesonly"] == "yes" and conf["user"] == "cilium-labs" and conf["port"] == "2222"
    assert conf["hostname"] == "34.1.2.3"
    bad = subprocess.run(["ssh", "-G", "-o", "BatchMood=yes", "x"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0  # so the check above can fail
