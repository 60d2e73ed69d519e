"""Real Go clients for the simulator's tests, built through the Go module proxy and cached outside the checkout.

- ``execclient`` (tests/go/execclient): one pod exec through client-go v0.36.3's own SPDY or websocket executor.
- ``cilium`` (cilium-cli v0.19.5): built through a small wrapper module. This machine's proxy serves the
  cilium-cli tag, but not the ``.mod`` of the cilium pseudo-version it requires (only its zip, which ``go`` fetches
  while loading packages), nor the zips of a few of that commit's dependencies; so the wrapper builds the cilium
  source from that zip and pins those dependencies to the versions cilium v1.20.0 (released a month later)
  requires, which the proxy serves. ``github.com/cilium/charts`` is not served at all: a stand-in module embeds
  the official chart packages the tests already use for rendering (cilium-cli's ``install`` reads them; ``status``
  and ``version`` never do).

Binaries live under ``$CILIUM_LABS_GOTOOLS`` (default ``~/.cache/cilium-labs/gotools``), keyed by Go version
and by a hash of the sources that define them. Each builder returns the binary or raises ``GoBuildUnavailable``
with the reason, for the test to skip on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.helpers import REPO, charts_dir

CILIUM_CLI_VERSION = "v0.19.5"
"""The newest cilium-cli tag the module proxy serves here (v0.19.6 and v0.19.7 answer 403)."""

CILIUM_CLI_PINS = {
    "github.com/cilium/hive": "v1.0.4",
    "github.com/cilium/proxy": "v0.0.0-20260701124752-9c14fdc485a1",
    "github.com/cilium/statedb": "v0.8.3",
    "github.com/vishvananda/netlink": "v1.3.2-0.20260624190457-bab08b3566fc",
    "sigs.k8s.io/mcs-api": "v0.5.2",
}
"""cilium v1.20.0's go.mod versions of the modules whose pre-release versions the proxy does not serve."""

BUILD_TIMEOUT_S = 1800.0


class GoBuildUnavailable(Exception):
    """The Go program cannot be built here (no ``go``, no module, a failed build): the reason to skip with."""


def cache_root() -> Path:
    return Path(os.environ.get("CILIUM_LABS_GOTOOLS") or Path.home() / ".cache" / "cilium-labs" / "gotools")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoBuildUnavailable("'go' is not on PATH (install Go to build the real Kubernetes clients)")
    return go


def go_env() -> dict[str, str]:
    """The environment for ``go``: the local backend's module and build caches (``cilium_labs.local.build``), so
    the Kubernetes and Cilium packages these clients share with it are downloaded and compiled once per machine;
    no toolchain downloads; static binaries."""
    from cilium_labs.local.build import go_env as local_go_env

    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    for key, value in local_go_env().items():
        if key in ("GOMODCACHE", "GOCACHE") and key not in os.environ:
            env[key] = value
    return env


def _run(argv: list[str], cwd: Path, what: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(argv, cwd=cwd, env=go_env(), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GoBuildUnavailable(f"{what}: timed out after {BUILD_TIMEOUT_S:g}s") from None
    if check and res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise GoBuildUnavailable(f"{what} failed: {tail}")
    return res


def go_version() -> str:
    return _run([_go(), "env", "GOVERSION"], REPO, "go env").stdout.strip()


def _digest(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:12]


def execclient() -> Path:
    """tests/go/execclient, built once per Go version and source."""
    src = REPO / "tests" / "go" / "execclient"
    out = cache_root() / go_version() / f"execclient-{_digest([*src.glob('*.go'), src / 'go.mod', src / 'go.sum'])}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        _run([_go(), "build", "-mod=readonly", "-o", str(tmp), "."], src, "go build execclient")
        tmp.replace(out)
    return out


def _cilium_requirement(cli_dir: Path) -> str:
    for line in (cli_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["require", "github.com/cilium/cilium"] or parts[:1] == ["github.com/cilium/cilium"]:
            return parts[-1]
    raise GoBuildUnavailable(f"cilium-cli {CILIUM_CLI_VERSION}'s go.mod requires no github.com/cilium/cilium")


def _cilium_source(work: Path, version: str) -> Path:
    """The cilium module at ``version``, extracted from the zip the proxy serves for it."""
    dest = work / "src" / f"cilium@{version}"
    if (dest / "go.mod").exists():
        return dest
    modcache = Path(_run([_go(), "env", "GOMODCACHE"], work, "go env").stdout.strip())
    zpath = modcache / "cache" / "download" / "github.com" / "cilium" / "cilium" / "@v" / f"{version}.zip"
    if not zpath.exists():  # loading a package of it makes go fetch the zip (the .info/.mod are refused)
        probe = work / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        (probe / "go.mod").write_text(f"module probe\n\ngo 1.26.0\n\nrequire github.com/cilium/cilium {version}\n")
        (probe / "main.go").write_text('package main\n\nimport _ "github.com/cilium/cilium/cilium-cli/defaults"\n\n'
                                       "func main() {}\n")
        _run([_go(), "list", "-deps", "."], probe, "fetching cilium's source", check=False)
    if not zpath.exists():
        raise GoBuildUnavailable(f"the module proxy serves no github.com/cilium/cilium@{version} zip")
    prefix = f"github.com/cilium/cilium@{version}/"
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(zpath) as z:
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            target = tmp / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
    tmp.replace(dest)
    return dest


def _charts_module(work: Path) -> Path:
    """A stand-in for github.com/cilium/charts: package ``helm`` with its ``HelmFS``."""
    d = work / "charts"
    d.mkdir(parents=True, exist_ok=True)
    names = ["README.txt"]
    (d / "README.txt").write_text("Official Cilium chart packages, copied from the tests' chart directory.\n")
    src = charts_dir()
    for tgz in sorted(src.glob("cilium-*.tgz")) if src else []:
        shutil.copyfile(tgz, d / tgz.name)
        names.append(tgz.name)
    (d / "go.mod").write_text("module github.com/cilium/charts\n\ngo 1.22\n")
    (d / "charts.go").write_text(
        "// Package helm stands in for github.com/cilium/charts, which the module proxy here does not serve.\n"
        'package helm\n\nimport "embed"\n\n'
        f"//go:embed {' '.join(names)}\nvar HelmFS embed.FS\n")
    return d


def cilium_cli() -> Path:
    """cilium-cli's ``cilium`` binary, built once per Go version (a first build takes minutes)."""
    go = _go()
    work = cache_root() / go_version() / f"cilium-cli-{CILIUM_CLI_VERSION}"
    out = work / "cilium"
    if out.exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    res = _run([go, "mod", "download", "-json", f"github.com/cilium/cilium-cli@{CILIUM_CLI_VERSION}"], work,
               "go mod download cilium-cli", check=False)
    try:
        cli_dir = Path(json.loads(res.stdout)["Dir"])
    except (ValueError, KeyError):
        raise GoBuildUnavailable(f"the module proxy does not serve cilium-cli {CILIUM_CLI_VERSION}: "
                                 f"{res.stdout.strip() or res.stderr.strip()}") from None
    cilium = _cilium_source(work, _cilium_requirement(cli_dir))
    charts = _charts_module(work)
    pins = "\n".join(f"\t{mod} => {mod} {ver}" for mod, ver in CILIUM_CLI_PINS.items())
    (work / "go.mod").write_text(
        "module cilium-labs.local/ciliumcli\n\ngo 1.26.0\n\n"
        "// cilium-cli's own go.mod carries this replace; replace directives are not inherited\n"
        "replace sigs.k8s.io/controller-tools => github.com/cilium/controller-tools v0.21.0-1\n\n"
        f"replace (\n\tgithub.com/cilium/charts => {charts}\n\tgithub.com/cilium/cilium => {cilium}\n{pins}\n)\n\n"
        f"require github.com/cilium/cilium-cli {CILIUM_CLI_VERSION}\n")
    (work / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "github.com/cilium/cilium-cli/cmd/cilium"\n')
    _run([go, "mod", "tidy"], work, "go mod tidy (cilium-cli wrapper)")
    tmp = work / "cilium.tmp"
    _run([go, "build", "-ldflags", "-s -w", "-o", str(tmp), "github.com/cilium/cilium-cli/cmd/cilium"], work,
         "go build cilium-cli")
    tmp.replace(out)
    return out
