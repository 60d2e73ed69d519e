"""Per-lab state on disk, so ``list``, ``status`` and ``down`` work from a new shell.

Layout: ``<root>/<lab name>/state.json`` (+ the backend's own files: kubeconfig, Terraform working copy, Vagrant
dotfiles, server logs). ``root`` is ``$CILIUM_LABS_STATE_DIR``, else ``$XDG_STATE_HOME/cilium-labs``, else
``~/.local/state/cilium-labs``. Writes are atomic (temp file + rename) so a crash mid-write never leaves a state
file that hides a running, billing lab.

The folders are 0700 and the files 0600: a lab folder holds kubeconfigs, Helm values (which may carry secrets),
Terraform variables and SSH keys. A state file that is damaged anyway (truncated by a full disk, edited by hand)
never hides its lab: ``scan`` lists it as unreadable with the reason, and ``down NAME --force`` still finds what
the lab's backend left by name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, get_args

import attrs

from .errors import LabStateError

Phase = Literal["creating", "up", "installing", "installed", "failed", "deleting", "down"]


def state_root(override: str | Path | None = None) -> Path:
    """The state root, absolute: paths under it are recorded (and matched against processes' command lines),
    so ``--state-dir ./x`` must mean the same folder from any directory."""
    if override:
        return Path(override).expanduser().absolute()
    env = os.environ.get("CILIUM_LABS_STATE_DIR")
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg).expanduser().absolute() / "cilium-labs"


ARTIFACTS_DIR = "artifacts"
"""The one part of a lab folder ``down`` keeps by default: logs a failed run said it wrote there."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only, and make an existing one so."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except PermissionError:  # a folder we do not own (a shared --state-dir): leave its mode alone
        pass
    return path


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content, never half of it."""
    private_dir(path.parent)
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

    created_by: str | None = None
    """Who created it: pid and command line, so a refusal can say whose lab it is."""

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), indent=2, sort_keys=True)


_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "backend": (str,),
    "spec": (dict,),
    "kubeconfig": (str, type(None)),
    "created_at": (int, float),
    "updated_at": (int, float),
    "backend_state": (dict,),
    "cilium_installed": (str, type(None)),
    "last_error": (str, type(None)),
    "created_by": (str, type(None)),
}


def from_data(data: Any) -> LabState:
    """A ``LabState`` from parsed JSON, or ``ValueError`` naming the first field that is not what we wrote."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    for key in ("name", "backend", "spec"):
        if key not in data:
            raise ValueError(f"'{key}' is missing")
    for key, types in _TYPES.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            raise ValueError(f"'{key}' is {data[key]!r}, not {' or '.join(t.__name__ for t in types)}")
    if "phase" in data and data["phase"] not in get_args(Phase):
        raise ValueError(f"'phase' is {data['phase']!r}, not one of {', '.join(get_args(Phase))}")
    known = {f.name for f in attrs.fields(LabState)}
    return LabState(**{k: v for k, v in data.items() if k in known})


@attrs.frozen
class Unreadable:
    """A lab folder whose state file cannot be used, and why: listed, never hidden."""

    name: str
    reason: str
    backend: str | None = None
    """The backend the damaged file still names, if any part of it does."""


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
            raw = p.read_bytes()
        except FileNotFoundError:
            raise LabStateError(f"no lab named {name!r} in {self.root}", fix="see `cilium-labs list`") from None
        except OSError as exc:
            raise unreadable_error(name, exc.strerror or str(exc)) from exc
        try:
            state = from_data(json.loads(raw.decode()))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
            raise unreadable_error(name, _reason(raw, exc)) from exc
        if state.name != name:
            raise unreadable_error(name, f"it records a lab named {state.name!r}")
        return state

    def save(self, state: LabState) -> None:
        state.updated_at = time.time()
        private_dir(self.root)
        atomic_write(self.path(state.name), state.to_json())

    def remove(self, name: str) -> None:
        """Forget a lab's record only, keeping its files (what ``gc`` does after a cloud-side delete)."""
        self.path(name).unlink(missing_ok=True)

    def forget(self, name: str, *, keep_artifacts: bool = True) -> None:
        """Forget a lab whose resources are gone: its record and every file in its folder (kubeconfig, Helm
        values, Terraform variables, keys), except the artifacts folder unless ``keep_artifacts`` is off."""
        folder = self.lab_dir(name)
        if not folder.is_dir():
            return
        for entry in folder.iterdir():
            if keep_artifacts and entry.name == ARTIFACTS_DIR and entry.is_dir():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if not any(folder.iterdir()):
            folder.rmdir()

    def scan(self) -> list[LabState | Unreadable]:
        """Every lab folder with a state file, readable or not (a damaged one is listed with the reason)."""
        if not self.root.is_dir():
            return []
        out: list[LabState | Unreadable] = []
        for p in sorted(self.root.glob("*/state.json")):
            try:
                out.append(self.load(p.parent.name))
            except LabStateError as exc:
                out.append(Unreadable(p.parent.name, _unreadable_reason(exc), recorded_backend(p)))
        return out

    def all(self) -> list[LabState]:
        """The readable records only (callers that must see damaged ones use ``scan``)."""
        return [s for s in self.scan() if isinstance(s, LabState)]


def unreadable_error(name: str, reason: str) -> LabStateError:
    return LabStateError(
        f"state of lab {name!r} is unreadable: {reason}",
        fix=f"`cilium-labs down {name} --force` removes what its backend can find by name, then the record",
    )


def _unreadable_reason(exc: LabStateError) -> str:
    return exc.message.split(": ", 1)[-1]


def _reason(raw: bytes, exc: ValueError) -> str:
    if not raw.strip():
        return "the file is empty"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; truncated?)"
    if isinstance(exc, UnicodeDecodeError):
        return "not text"
    return str(exc)


def recorded_backend(path: Path) -> str | None:
    """The backend a state file names, even when the rest of it is damaged: keys are written sorted, so
    ``"backend"`` comes near the top and survives a truncation."""
    try:
        text = path.read_bytes()[:65536].decode(errors="replace")
    except OSError:
        return None
    m = re.search(r'"backend"\s*:\s*"([a-z0-9-]{1,63})"', text)
    return m.group(1) if m else None
