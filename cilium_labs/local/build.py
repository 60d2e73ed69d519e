"""Build the local backend's programs through the Go module proxy, once, into a cache outside any checkout.

Layout under ``cache_root()`` (``$CILIUM_LABS_CACHE_DIR``, else ``$XDG_CACHE_HOME/cilium-labs``, else
``~/.cache/cilium-labs``), in ``local/``:

- ``gomod/`` and ``gocache/``: the Go module and build caches, shared by every build, so a second Cilium version
  or a rebuild recompiles only what changed;
- ``src/<component>-<version>/``: wrapper go.mod files and copies of source modules (writable; the module cache
  is read-only);
- ``bin/<component>-<version>-<go version>/``: the programs, and ``built.json`` once every one of them was built
  and answered its version check. A warm machine finds ``built.json`` and builds nothing.

A build holds ``local/build.lock`` (flock): two concurrent ``local build`` runs do the work once, the second
waits and then finds the result.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from .. import _run
from ..errors import CommandError, NotBuiltError
from . import components as comp
from .components import Component

Progress = Callable[[str], None]
MARKER = "built.json"
BUILD_TIMEOUT_S = 3600.0
"""A cold Kubernetes build took 10.5 min on 2 cores (real-components.md); an hour bounds a stuck one."""
_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+\S+)?\s+=>\s+(\.\.?/\S*)\s*$")
_REQUIRE_LINE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)(?:\s*//.*)?$")


def _silent(_: str) -> None:
    return None


def cache_root() -> Path:
    env = os.environ.get("CILIUM_LABS_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "cilium-labs"


def local_root() -> Path:
    return cache_root() / "local"


def go_version() -> str:
    """``go1.26.8``: part of every cache key, since a binary built by another Go is another binary."""
    _run.require("go")
    return _run.run(["go", "env", "GOVERSION"], timeout=60).stdout.strip()


def go_env(root: Path | None = None) -> dict[str, str]:
    root = root or local_root()
    return {
        "GOMODCACHE": str(root / "gomod"),
        "GOCACHE": str(root / "gocache"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }


@attrs.frozen
class Built:
    """Where a built component's programs are."""

    component: Component
    directory: Path

    def path(self, binary: str) -> Path:
        self.component.binary(binary)  # KeyError for a name the component does not have
        return self.directory / binary


def bin_dir(component: Component, gover: str, root: Path | None = None) -> Path:
    return (root or local_root()) / "bin" / f"{component.key}-{gover}"


def find(component: Component, gover: str | None = None, root: Path | None = None) -> Built | None:
    """The cached build of ``component``, or None when it is not (completely) built."""
    gover = gover or go_version()
    directory = bin_dir(component, gover, root)
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    names = [b.name for b in component.binaries]
    if marker.get("binaries") != names or not all((directory / n).is_file() for n in names):
        return None
    return Built(component, directory)


def require(component: Component, root: Path | None = None) -> Built:
    """The cached build, or ``NotBuiltError`` naming the command that builds it."""
    built = find(component, root=root)
    if built is None:
        extra = f" --cilium-version {component.version}" if component.name == "cilium" else ""
        raise NotBuiltError(
            f"{component.name} {component.version} is not built for the local backend",
            fix=f"run `cilium-labs local build{extra}` (needs Go and the Go module proxy; cached afterwards)",
        )
    return built


@contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build(component: Component, *, progress: Progress = _silent, force: bool = False,
          root: Path | None = None) -> Built:
    """Build every program of ``component`` unless a complete cached build exists; check each by running it."""
    root = root or local_root()
    gover = go_version()
    with _lock(root):
        if not force:
            cached = find(component, gover, root)
            if cached is not None:
                progress(f"{component.key}: cached ({cached.directory})")
                return cached
        directory = bin_dir(component, gover, root)
        (directory / MARKER).unlink(missing_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
        env = go_env(root)
        workdir = _prepare(component, root, env, progress)
        ldflags = " ".join(["-s", "-w", *component.x_flags(), *_version_flags(component, env)])
        started = time.monotonic()
        for binary in component.binaries:
            t0 = time.monotonic()
            progress(f"{component.key}: building {binary.name} (go build {binary.package})")
            argv = ["go", "build", "-ldflags", ldflags]
            if binary.tags:
                argv += ["-tags", ",".join(binary.tags)]
            argv += ["-o", str(directory / binary.name), binary.package]
            _go(argv, workdir, env, progress)
            progress(f"{component.key}: {binary.name} built in {time.monotonic() - t0:.0f}s")
        _check(component, directory)
        (directory / MARKER).write_text(json.dumps({
            "binaries": [b.name for b in component.binaries],
            "component": component.key,
            "go": gover,
            "seconds": round(time.monotonic() - started, 1),
        }, indent=2) + "\n")
        return Built(component, directory)


def build_all(cilium_version: str = comp.DEFAULT_CILIUM, *, progress: Progress = _silent,
              force: bool = False) -> dict[str, Built]:
    return {c.name: build(c, progress=progress, force=force) for c in comp.all_for(cilium_version)}


def _go(argv: list[str], cwd: Path, env: Mapping[str, str], progress: Progress) -> None:
    def on_line(_stream: str, line: str) -> None:
        if line.startswith("go: downloading"):
            return
        progress(f"  {line}")

    try:
        _run.stream(argv, on_line, timeout=BUILD_TIMEOUT_S, env=env, cwd=cwd)
    except CommandError as exc:
        tail = " | ".join((exc.stderr or "").strip().splitlines()[-3:])
        raise NotBuiltError(f"`{' '.join(argv[:2])} ... {argv[-1]}` failed: {tail}",
                            fix="see the lines above; a proxy refusal (403) names a module the proxy lacks") from exc


def _prepare(component: Component, root: Path, env: Mapping[str, str], progress: Progress) -> Path:
    """The directory ``go build`` runs in, set up for the component's method."""
    src = root / "src" / component.key
    if component.method == "install":
        # a throwaway module that requires exactly this version (go build of a package at a version needs one)
        src.mkdir(parents=True, exist_ok=True)
        _write_go_mod(src, component, replaces=[*component.replaces])
        return src
    if component.method == "wrapper":
        src.mkdir(parents=True, exist_ok=True)
        upstream = _download(component, env)
        replaces = [*_staging_replaces(Path(upstream["GoMod"]).read_text(), component), *component.replaces]
        _write_go_mod(src, component, replaces=replaces)
        return src
    # source: a writable copy of the module as released
    if not (src / "go.mod").is_file():
        upstream = _download(component, env)
        progress(f"{component.key}: copying the module source")
        tmp = src.with_name(src.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(upstream["Dir"], tmp)
        for path in tmp.rglob("*"):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        tmp.chmod(tmp.stat().st_mode | 0o200)
        for old, new in component.replaces:
            _run.run(["go", "mod", "edit", "-replace", f"{old}={new}"], cwd=tmp, env=env, timeout=60)
        tmp.rename(src)
    return src


def _write_go_mod(src: Path, component: Component, *, replaces: list[tuple[str, str]]) -> None:
    lines = [
        f"module cilium-labs.local/{component.name}",
        "",
        "go 1.26.0",
        "",
        f"require {component.module} v{component.version}",
    ]
    if replaces:
        lines += ["", "replace (", *(f"\t{old} => {new}" for old, new in replaces), ")"]
    text = "\n".join(lines) + "\n"
    gomod = src / "go.mod"
    if not gomod.is_file() or gomod.read_text() != text:
        gomod.write_text(text)
        (src / "go.sum").unlink(missing_ok=True)


def _download(component: Component, env: Mapping[str, str]) -> dict[str, Any]:
    res = _run.run(["go", "mod", "download", "-json", f"{component.module}@v{component.version}"],
                   env=env, timeout=600, check=False)
    try:
        info = json.loads(res.stdout)
    except ValueError:
        info = {}
    if res.returncode != 0 or info.get("Error"):
        raise NotBuiltError(
            f"the Go module proxy did not serve {component.module}@v{component.version}: "
            f"{info.get('Error') or res.stderr.strip()}",
            fix="check GOPROXY and the network; see docs/local.md for which versions the proxy serves",
        )
    return info


def _staging_replaces(gomod: str, component: Component) -> list[tuple[str, str]]:
    """The module's own ``replace X => ./relative`` lines, pointed at published versions of X: the version the
    module requires when it names one (etcd's sibling modules), else ``v0.MINOR.PATCH`` (Kubernetes' staging
    modules are published as v0.N.P for Kubernetes 1.N.P and required as v0.0.0)."""
    required: dict[str, str] = {}
    for line in gomod.splitlines():
        m = _REQUIRE_LINE.match(line)
        if m and "=>" not in line:
            required[m.group(1)] = m.group(2)
    _, minor, patch = component.version.split(".")
    out: list[tuple[str, str]] = []
    for line in gomod.splitlines():
        m = _REPLACE_LINE.match(line)
        if not m or "FORBIDDEN" in m.group(2):
            continue
        mod = m.group(1)
        version = required.get(mod, "v0.0.0")
        if version.startswith("v0.0.0"):
            version = f"v0.{minor}.{patch}"
        out.append((mod, f"{mod} {version}"))
    return out


def _version_flags(component: Component, env: Mapping[str, str]) -> list[str]:
    """Cilium's Makefile.defs sets ``pkg/version.ciliumVersion`` to ``VERSION GIT_VERSION`` (``%h %aI`` of the
    tag's commit); the proxy's ``.info`` names the tag's commit and time."""
    if component.name != "cilium":
        return []
    info = _download(component, env)
    origin: Any = info.get("Origin") or {}
    commit = str(origin.get("Hash") if isinstance(origin, dict) else "")[:10]
    try:  # ``download -json`` names the .info file; its Time is the tag's commit time (UTC)
        stamp = str(json.loads(Path(str(info.get("Info"))).read_text()).get("Time") or "")
    except (OSError, ValueError):
        stamp = ""
    if not (commit and stamp):
        # pkg/version.FromString splits on spaces and reads fields by position: a missing field shifts "go
        # version ..." into the date and the agent's status then says "(v-)"
        raise NotBuiltError(f"the proxy gave no commit or time for {component.module}@v{component.version}",
                            fix="check GOPROXY (the origin metadata comes from proxy.golang.org)")
    value = " ".join(x for x in (component.version, commit, stamp) if x)
    return [f"-X 'github.com/cilium/cilium/pkg/version.ciliumVersion={value}'"]


def _check(component: Component, directory: Path) -> None:
    """Run the first program's version command: a binary that does not run is not built."""
    if not component.version_argv:
        return
    first = directory / component.binaries[0].name
    res = _run.run([str(first), *component.version_argv], timeout=60, check=False)
    expect = component.expect.format(version=component.version)
    if expect not in res.stdout + res.stderr:
        raise NotBuiltError(
            f"{first} does not report {expect!r} (exit {res.returncode}): "
            f"{(res.stdout + res.stderr).strip()[:200]}",
            fix="remove the folder and build again with `cilium-labs local build --force`",
        )
