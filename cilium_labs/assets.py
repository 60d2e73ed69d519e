"""Where the non-Python assets are: in a checkout, the repository folders; in an installed wheel, the copies
under ``cilium_labs/_assets`` that the build puts there (see setup.py)."""

from __future__ import annotations

from pathlib import Path

from .errors import CiliumLabsError

ASSET_DIRS = ("kind-configs", "terraform", "vagrant", "bootstrap")
_PKG = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """The folder ``name`` (one of ``ASSET_DIRS``), wherever this package is installed."""
    if name not in ASSET_DIRS:
        raise ValueError(f"unknown asset folder {name!r}; known: {', '.join(ASSET_DIRS)}")
    for candidate in (_PKG / "_assets" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise CiliumLabsError(f"asset folder {name!r} is missing from this installation", fix="reinstall cilium-labs")


def asset(name: str, *parts: str) -> Path:
    """A file inside an asset folder, e.g. ``asset("terraform", "gcp", "main.tf")``."""
    path = asset_dir(name).joinpath(*parts)
    if not path.exists():
        raise CiliumLabsError(f"asset {path} is missing from this installation", fix="reinstall cilium-labs")
    return path
