"""Run one container's process the way a container runtime would, with the host's programs: its own mount
namespace and root, the pod's network namespace, the node's cgroup, and the pod's volumes mounted where the pod
spec says.

Run as ``python -m cilium_labs.local.container SPEC.json`` (root). It never returns: it sets itself up and
``execve``s the container's program, so the pid the runtime recorded *is* the container's main process, and
``nsenter -t PID -m -n`` (the exec shim) enters exactly the namespaces the program sees.

The root is a fresh tmpfs holding bind mounts of the host's program directories (``/usr``, ``/lib``..., read
only where possible) and empty private ``/tmp``, ``/run``, ``/var``, ``/opt``, ``/host``, so a pod's volume
mounts (``/host/etc/cni/net.d``, ``/tmp/cilium/config-map``, ``/var/run/secrets/...``) are realised inside the
container and never create anything on the host's file system. Nothing here knows Cilium: the runtime turns a
pod spec into a ``ContainerSpec`` and this module only obeys it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import attrs

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

HOST_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "root", "home", "srv")
"""Host directories bound into every container root (``/bin`` and ``/lib`` are symlinks on merged-/usr
systems and are recreated as such). The runtime binds the directories of the programs it runs explicitly."""
PRIVATE_DIRS = ("tmp", "run", "var", "opt", "host", "mnt", "media")
"""Fresh tmpfs directories: what a container writes there stays in the container."""


@attrs.frozen
class Mount:
    """One mount inside the container: ``kind`` is ``bind`` (``source`` a host path), ``copy`` (a private,
    writable copy of ``source``), ``bpf``, ``tmpfs``."""

    target: str
    kind: str = "bind"
    source: str = ""
    read_only: bool = False


@attrs.frozen
class ContainerSpec:
    """Everything ``container`` needs to start one process."""

    argv: tuple[str, ...]
    env: dict[str, str] = attrs.field(factory=dict)
    netns: str = ""
    """Path of the network namespace to join (``/run/netns/NAME``); empty keeps the caller's."""
    cgroup: str = ""
    """A cgroup v2 directory to join before exec (its ``cgroup.procs``)."""
    mounts: tuple[Mount, ...] = ()
    workdir: str = "/"
    hostname: str = ""
    """Given, the container gets a UTS namespace of its own with this host name (the kubelet's: the pod's name,
    or the node's for a ``hostNetwork`` pod); empty keeps the caller's."""

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        data: dict[str, Any] = json.loads(text)
        data["argv"] = tuple(data["argv"])
        data["mounts"] = tuple(Mount(**m) for m in data.get("mounts", ()))
        return cls(**data)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(155, new_root.encode(), put_old.encode()), "pivot_root")  # SYS_pivot_root on x86_64


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _build_root(spec: ContainerSpec) -> None:
    """A tmpfs root with the host's program dirs bound in, then the pod's mounts; pivot into it."""
    new = "/mnt"  # an existing empty directory: mounting over it in our own namespace changes nothing on the host
    os.makedirs(new, exist_ok=True)
    mount("tmpfs", new, "tmpfs", MS_NOSUID, "mode=0755")
    for name in HOST_DIRS:
        host = Path("/") / name
        inside = Path(new) / name
        if host.is_symlink():
            os.symlink(os.readlink(host), inside)
        elif host.is_dir():
            inside.mkdir()
            mount(str(host), str(inside), None, MS_BIND | MS_REC)
    for name in PRIVATE_DIRS:
        (Path(new) / name).mkdir()
        mount("tmpfs", str(Path(new) / name), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.chmod(Path(new) / "tmp", 0o1777)
    (Path(new) / "var" / "lib").mkdir()
    os.symlink("/run", Path(new) / "var" / "run")
    for name in ("proc", "dev"):
        (Path(new) / name).mkdir()
        mount(f"/{name}", str(Path(new) / name), None, MS_BIND | MS_REC)
    # sysfs as the container's network namespace sees it (``ip netns exec`` does the same), so
    # /sys/class/net lists the pod's links, not the host's; mounted in the new root only, so bind sources
    # under the host's /sys (the node's cgroup) still resolve
    (Path(new) / "sys").mkdir()
    mount("sysfs", str(Path(new) / "sys"), "sysfs", MS_NOSUID | MS_NODEV)
    for m in spec.mounts:
        _mount_one(m, resolve_in(Path(new), m.target))
    old = Path(new) / ".old-root"
    old.mkdir()
    os.chdir(new)
    pivot_root(".", ".old-root")
    os.chdir("/")
    umount("/.old-root")
    os.rmdir("/.old-root")


def resolve_in(root: Path, path: str, _depth: int = 0) -> Path:
    """``path`` as it resolves inside ``root`` (a symlink's absolute target starts again at ``root``, as after
    chroot): ``/var/run/secrets`` in a root whose ``/var/run`` links to ``/run`` is ``root/run/secrets``, never
    the host's ``/run``."""
    if _depth > 16:
        raise OSError(f"too many symbolic links resolving {path}")
    parts = [p for p in Path(path).parts if p not in ("/", "", ".")]
    inside: list[str] = []  # the resolved path below root, component by component
    for i, part in enumerate(parts):
        if part == "..":
            if inside:
                inside.pop()
            continue
        candidate = root.joinpath(*inside, part)
        if candidate.is_symlink():
            link = os.readlink(candidate)
            base = "/" if link.startswith("/") else "/" + "/".join(inside)
            rest = parts[i + 1:]
            return resolve_in(root, str(Path(base, link, *rest)), _depth + 1)
        inside.append(part)
    return root.joinpath(*inside)


def _mount_one(m: Mount, target: Path) -> None:
    if m.kind == "bind":
        src = Path(m.source)
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        mount(m.source, str(target), None, MS_BIND | MS_REC)
        if m.read_only:
            mount("", str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    elif m.kind == "copy":
        # writable image content: the container gets its own copy (an image layer is copy-on-write)
        shutil.copytree(m.source, target, symlinks=True, dirs_exist_ok=True)
    elif m.kind == "bpf":
        target.mkdir(parents=True, exist_ok=True)
        mount("bpf", str(target), "bpf", 0, "mode=0700")
    elif m.kind == "tmpfs":
        target.mkdir(parents=True, exist_ok=True)
        mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    else:
        raise ValueError(f"unknown mount kind {m.kind!r}")


def enter(spec: ContainerSpec) -> None:
    """Set up this process as the container; the caller then execs the program."""
    if spec.cgroup:
        Path(spec.cgroup, "cgroup.procs").write_text(str(os.getpid()))
    if spec.netns:
        setns(spec.netns, CLONE_NEWNET)
    if spec.hostname:
        unshare(CLONE_NEWUTS)
        name = spec.hostname.encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    unshare(CLONE_NEWNS)
    mount("", "/", None, MS_REC | MS_SLAVE)  # nothing we mount reaches the host; host unmounts still reach us
    _build_root(spec)
    os.chdir(spec.workdir or "/")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m cilium_labs.local.container SPEC.json\n")
        raise SystemExit(2)
    spec = ContainerSpec.from_json(Path(args[0]).read_text())
    try:
        enter(spec)
    except OSError as exc:
        sys.stderr.write(f"cilium-labs container: {exc}\n")
        raise SystemExit(128) from None
    env = dict(spec.env)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    try:
        os.execvpe(spec.argv[0], list(spec.argv), env)
    except OSError as exc:
        sys.stderr.write(f"cilium-labs container: cannot run {spec.argv[0]}: {exc}\n")
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
