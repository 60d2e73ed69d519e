"""Copies the repository's asset folders into the package at build time, so an installed wheel finds them
(``cilium_labs.assets.asset_dir``) without a checkout. Metadata lives in setup.cfg."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSET_DIRS = ("kind-configs", "terraform", "vagrant", "bootstrap")
SKIP = shutil.ignore_patterns(".terraform", "*.tfstate*", ".vagrant", "__pycache__")


class BuildWithAssets(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "cilium_labs" / "_assets"
        for name in ASSET_DIRS:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, target / name, ignore=SKIP, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithAssets})
