"""Network namespaces for the simulator's real datapath: naming, running commands in them, and cleaning up.

Everything the netns datapath creates in the root namespace is a namespace whose name starts with ``cln-``
(``PREFIX``); links, bridges and nftables rules live *inside* those namespaces, so deleting the namespaces
deletes them too, and nothing touches the root namespace's firewall (where dockerd's FORWARD DROP policy would
bite). A previous run that crashed leaves namespaces behind; ``cleanup`` finds them by prefix, kills what runs
in them and deletes them, and ``leftovers`` says whether anything with the prefix is still there (the test
session ends by asserting it is empty).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._run import Result, require, run
from ..errors import CommandError, CommandTimeout, PreflightError

PREFIX = "cln-"
"""Every namespace the netns datapath creates starts with this (not ``cl-``: the Vagrant tier's private
namespaces are ``cl-vagrant-*``, and a cleanup by prefix must never reach them)."""
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
"""Per-namespace files ``ip netns exec`` mounts over ``/etc`` (a pod's ``resolv.conf``)."""
_NETNS_LIST = re.compile(r"^(\S+)")


def require_root() -> None:
    """Namespaces, veths and nftables need root; say so before creating anything."""
    if os.geteuid() != 0:
        raise PreflightError(
            "the netns datapath needs root (it creates network namespaces, VXLAN devices and nftables rules)",
            fix="run as root (sudo), or use the simulator's default datapath: --datapath api",
        )


def require_tools() -> None:
    """``ip`` (iproute2) and ``nft`` (nftables) are needed to build the datapath at all."""
    require("ip")
    require("nft")


def require_link_kind(kind: str, *link_args: str) -> None:
    """Refuse (``PreflightError``) unless this kernel can create a ``kind`` link, asked the way Cilium's own
    probes ask: create a throwaway device in a fresh namespace (``HaveBIGTCPTunnel`` in
    pkg/datapath/linux/probes/probes.go, v1.20.0, adds a probe GENEVE device in a new netns). A kernel without
    Geneve cannot carry a Geneve lab: Cilium's agent itself fails there, in ``setupGeneveDevice``
    (pkg/datapath/loader/netlink.go, v1.20.0: "setting up geneve device: creating geneve device").
    """
    ns = f"{PREFIX}probe-{os.getpid()}"
    add(ns)
    try:
        res = ip(["link", "add", "probe0", "type", kind, *link_args], ns=ns, check=False)
    finally:
        delete(ns)
    if res.returncode != 0:
        raise PreflightError(
            f"this kernel cannot create {kind} devices ({res.stderr.strip() or f'exit {res.returncode}'}), "
            f"so a {kind} lab cannot run in network namespaces here",
            fix=f"use a kernel with {kind} (CONFIG_{kind.upper()}), or the simulator's API datapath",
        )


def lab_prefix(lab: str) -> str:
    """Namespace-name prefix for one lab: ``cln-<lab>-``."""
    return f"{PREFIX}{lab}-"


def ip(args: Sequence[str], *, ns: str | None = None, check: bool = True, timeout: float = 30.0) -> Result:
    """``ip [-n NS] ARGS`` through the one runner."""
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return run(argv, timeout=timeout, check=check)


def ip_batch(lines: Sequence[str], *, ns: str | None = None, timeout: float = 60.0, family: int = 0) -> Result:
    """Many ``ip`` commands in one process (``ip -batch -``): building a lab is hundreds of them.

    Routes and neighbours find their family from the address; ``ip rule`` does not, so IPv6 rules go in a batch
    with ``family=6``.
    """
    if not lines:
        return Result(["ip", "-batch", "-"], 0, "", "", 0.0)
    argv = ["ip", *(["-6"] if family == 6 else []), *(["-n", ns] if ns else []), "-batch", "-"]
    return run(argv, timeout=timeout, input="\n".join(lines) + "\n")


def in_ns(
    ns: str, argv: Sequence[str], *, timeout: float = 60.0, check: bool = False, input: str | None = None
) -> Result:
    """Run ``argv`` inside namespace ``ns`` (``ip netns exec``)."""
    return run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check, input=input)


def sysctl(ns: str, settings: dict[str, str | int]) -> None:
    in_ns(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())], check=True, timeout=15)


def nft(ns: str, script: str, *, timeout: float = 30.0) -> Result:
    """Load an nftables script into namespace ``ns`` atomically (``nft -f -``)."""
    return in_ns(ns, ["nft", "-f", "-"], input=script, check=True, timeout=timeout)


def namespaces(prefix: str = PREFIX) -> list[str]:
    """Named network namespaces whose name starts with ``prefix``."""
    names: set[str] = set()
    if NETNS_DIR.is_dir():
        names.update(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    res = ip(["netns", "list"], check=False)
    for line in res.stdout.splitlines():
        m = _NETNS_LIST.match(line)
        if m and m.group(1).startswith(prefix):
            names.add(m.group(1))
    return sorted(names)


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def add(name: str) -> None:
    ip(["netns", "add", name])
    ip(["link", "set", "lo", "up"], ns=name)


def pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (``ip netns pids``)."""
    res = ip(["netns", "pids", name], check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def _netns_inodes(names: Sequence[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for name in names:
        try:
            out[(NETNS_DIR / name).stat().st_ino] = name
        except OSError:
            continue
    return out


def processes(prefix: str = PREFIX) -> list[tuple[int, str, str]]:
    """``(pid, namespace, command line)`` of every process inside a namespace with ``prefix``."""
    inodes = _netns_inodes(namespaces(prefix))
    if not inodes:
        return []
    found: list[tuple[int, str, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            ino = os.stat(entry / "ns" / "net").st_ino
            if ino not in inodes:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry.name), inodes[ino], cmd))
    return found


def kill(pid_list: Sequence[int], *, grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after ``grace_s``."""
    alive = []
    for pid in pid_list:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def write_etc(name: str, filename: str, text: str) -> None:
    """``/etc/netns/NAME/FILE``: what commands run in namespace NAME see as ``/etc/FILE``."""
    folder = ETC_NETNS / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(text)


def _remove_etc(name: str) -> None:
    folder = ETC_NETNS / name
    if folder.is_dir():
        for f in folder.iterdir():
            f.unlink(missing_ok=True)
        folder.rmdir()


def delete(name: str) -> None:
    """Kill what runs in ``name`` and delete it (and its ``/etc/netns`` files); a namespace already gone is fine."""
    _remove_etc(name)
    if not exists(name):
        return
    kill(pids(name))
    try:
        ip(["netns", "del", name])
    except CommandError as exc:
        if exists(name):
            raise
        del exc


@attrs.frozen
class Leftovers:
    """What carries the prefix: namespaces, root-namespace links, nftables tables, iptables rules, processes."""

    namespaces: tuple[str, ...] = ()
    etc_dirs: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    nft_tables: tuple[str, ...] = ()
    iptables_rules: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.namespaces or self.etc_dirs or self.links or self.nft_tables or self.iptables_rules or self.processes
        )

    def describe(self) -> str:
        parts = []
        for field in attrs.fields(Leftovers):
            values = getattr(self, field.name)
            if values:
                parts.append(f"{field.name}: {', '.join(values)}")
        return "; ".join(parts) or "nothing"


def _root_links(prefix: str) -> list[str]:
    res = ip(["-o", "link", "show"], check=False)
    names = []
    for line in res.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@", 1)[0]
            if name.startswith(prefix):
                names.append(name)
    return names


def _root_nft_tables(prefix: str) -> list[str]:
    try:
        res = run(["nft", "list", "tables"], check=False, timeout=15)
    except Exception:  # nft missing: nothing we could have created with it
        return []
    marker = prefix.replace("-", "_")
    return [line.strip() for line in res.stdout.splitlines() if marker in line or prefix in line]


def _root_iptables(prefix: str) -> list[str]:
    rules: list[str] = []
    for tool in ("iptables-save", "ip6tables-save"):
        try:
            res = run([tool], check=False, timeout=15)
        except Exception:  # tool missing
            continue
        rules += [line for line in res.stdout.splitlines() if prefix in line and not line.startswith("#")]
    return rules


def leftovers(prefix: str = PREFIX) -> Leftovers:
    """Everything with ``prefix`` that still exists."""
    procs = [f"{pid} in {ns}: {cmd}" for pid, ns, cmd in processes(prefix)]
    etc = sorted(str(p) for p in ETC_NETNS.glob(f"{prefix}*")) if ETC_NETNS.is_dir() else []
    return Leftovers(
        tuple(namespaces(prefix)),
        tuple(etc),
        tuple(_root_links(prefix)),
        tuple(_root_nft_tables(prefix)),
        tuple(_root_iptables(prefix)),
        tuple(procs),
    )


def cleanup(prefix: str = PREFIX) -> list[str]:
    """Delete every namespace with ``prefix`` (after killing what runs in it) and root links with it.

    Safe to call any time, on nothing; used by ``down``, on Ctrl-C, and before ``up`` to remove what a crashed
    run left. Returns the names removed.
    """
    removed: list[str] = []
    for name in namespaces(prefix):
        try:
            delete(name)
            removed.append(name)
        except (CommandError, CommandTimeout):
            continue
    for link in _root_links(prefix):
        ip(["link", "del", link], check=False)
        removed.append(link)
    if ETC_NETNS.is_dir():
        for folder in ETC_NETNS.glob(f"{prefix}*"):
            _remove_etc(folder.name)
            removed.append(str(folder))
    return removed
