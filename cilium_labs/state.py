"""Per-lab state on disk, so ``list``, ``status`` and ``down`` work from a new shell.

Layout: ``<root>/<lab name>/state.json`` (+ the backend's own files: kubeconfig, Terraform working copy, Vagrant
dotfiles, server logs). ``root`` is ``$CILIUM_LABS_STATE_DIR``, else ``$XDG_STATE_HOME/cilium-labs``, else
``~/.local/state/cilium-labs``. Writes are atomic (temp file + rename) so a crash mid-write never leaves a state
file that hides a running, billing lab.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import attrs

from .errors import LabStateError

Phase = Literal["creating", "up", "installing", "installed", "failed", "deleting", "down"]


def state_root(override: str | Path | None = None) -> Path:
    if override:
        return Path(override)
    env = os.environ.get("CILIUM_LABS_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "cilium-labs"


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@attrs.define
class LabState:
    """What we know about one lab between processes."""

    name: str
    backend: str
    spec: dict[str, Any]
    phase: Phase = "creating"
    kubeconfig: str | None = None
    created_at: float = attrs.field(factory=time.time)
    updated_at: float = attrs.field(factory=time.time)
    backend_state: dict[str, Any] = attrs.field(factory=dict)
    cilium_installed: str | None = None
    last_error: str | None = None

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), indent=2, sort_keys=True)


class StateStore:
    """The state folder of every lab."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = state_root(root)

    def lab_dir(self, name: str) -> Path:
        return self.root / name

    def path(self, name: str) -> Path:
        return self.lab_dir(name) / "state.json"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> LabState:
        p = self.path(name)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise LabStateError(f"no lab named {name!r} in {self.root}", fix="see `cilium-labs list`") from None
        except (OSError, ValueError) as exc:
            raise LabStateError(f"state of lab {name!r} is unreadable ({exc})", fix=f"inspect {p}") from exc
        known = {f.name for f in attrs.fields(LabState)}
        return LabState(**{k: v for k, v in data.items() if k in known})

    def save(self, state: LabState) -> None:
        state.updated_at = time.time()
        atomic_write(self.path(state.name), state.to_json())

    def remove(self, name: str) -> None:
        """Forget a lab whose resources are gone; keeps any file the backend still needs (e.g. Terraform
        state) by removing only ``state.json``."""
        self.path(name).unlink(missing_ok=True)

    def all(self) -> list[LabState]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob("*/state.json")):
            try:
                out.append(self.load(p.parent.name))
            except LabStateError:
                continue
        return out
