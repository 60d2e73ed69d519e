"""An installed wheel (not a checkout) must find kind-configs/, terraform/, vagrant/ and bootstrap/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from cilium_labs.assets import ASSET_DIRS
from tests.helpers import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    # Build from a copy of the tracked tree so a developer's stray files cannot make the test pass.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(src)], check=True)
    wheel = next(dist.glob("cilium_labs-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return py


@pytest.mark.parametrize("name", ASSET_DIRS)
def test_installed_wheel_finds_each_asset_folder(installed_python: Path, name: str) -> None:
    code = (
        "from cilium_labs.assets import asset_dir\n"
        f"d = asset_dir({name!r})\n"
        "assert 'site-packages' in str(d), d\n"
        "assert any(p.is_file() for p in d.rglob('*')), d\n"
        "print(d)"
    )
    out = subprocess.run([str(installed_python), "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
