"""Parsers for what the ``vagrant`` backend reads: Vagrant's machine-readable output, ``vagrant ssh-config``,
the host's IPv4 routes and libvirt network XML.

Kept apart from the backend so each format is tested on recorded real output without Vagrant installed, and so
a malformed input is a ``ParseError`` that says what was expected instead of a KeyError three calls later.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import attrs

from ..errors import BackendError, ParseError

# -- vagrant --machine-readable -------------------------------------------------------------------------------

_MR_LINE = re.compile(r"^(\d+),([^,]*),([^,]+)(?:,(.*))?$")


@attrs.frozen
class MachineLine:
    """One record of ``--machine-readable`` output: ``timestamp,target,type,data...``."""

    timestamp: int
    target: str
    type: str
    data: tuple[str, ...]


def _unescape(field: str) -> str:
    # Vagrant (lib/vagrant/ui.rb, MachineReadable#machine) writes "," as %!(VAGRANT_COMMA) and newlines as
    # the two characters backslash-n, so every record is one line and splitting on "," is safe.
    return field.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")


def parse_machine_readable(text: str) -> list[MachineLine]:
    """Records of Vagrant's machine-readable output; lines that are not records (a plugin's stray warning,
    a pasted prompt) are skipped. An ``error-exit`` record becomes a ``BackendError`` carrying Vagrant's message.
    """
    records: list[MachineLine] = []
    for raw in text.splitlines():
        m = _MR_LINE.match(raw.strip())
        if not m:
            continue
        data = tuple(_unescape(f) for f in m.group(4).split(",")) if m.group(4) is not None else ()
        records.append(MachineLine(int(m.group(1)), m.group(2), m.group(3), data))
    for rec in records:
        if rec.type == "error-exit":
            kind = rec.data[0] if rec.data else "unknown error"
            message = rec.data[1] if len(rec.data) > 1 else ""
            raise BackendError(f"vagrant failed ({kind}): {message.strip()}")
    return records


@attrs.frozen
class MachineState:
    """A machine as ``vagrant status`` reports it. ``state`` is the provider's word: libvirt says ``running``,
    ``shutoff``, ``paused``, ``not_created``..."""

    name: str
    state: str
    provider: str = ""

    @property
    def created(self) -> bool:
        return self.state != "not_created"

    @property
    def running(self) -> bool:
        return self.state == "running"


def parse_status(text: str) -> dict[str, MachineState]:
    """``vagrant status --machine-readable`` -> machine name -> state, in Vagrant's order."""
    records = parse_machine_readable(text)
    providers: dict[str, str] = {}
    states: dict[str, str] = {}
    for rec in records:
        if not rec.target:
            continue
        if rec.type == "provider-name" and rec.data:
            providers[rec.target] = rec.data[0]
        elif rec.type == "metadata" and len(rec.data) >= 2 and rec.data[0] == "provider":
            providers.setdefault(rec.target, rec.data[1])
        elif rec.type == "state" and rec.data:
            states[rec.target] = rec.data[0]
    if not states:
        raise ParseError(
            "no machine states in the output of `vagrant status --machine-readable`",
            fix="pass the whole output of `vagrant status --machine-readable` ('1700000000,NAME,state,running' lines)",
        )
    return {name: MachineState(name, state, providers.get(name, "")) for name, state in states.items()}


# -- vagrant ssh-config ------------------------------------------------------------------------------------------


@attrs.frozen
class SshTarget:
    """How to reach one machine over SSH, as ``vagrant ssh-config`` says."""

    host_alias: str
    hostname: str
    user: str
    port: int = 22
    identity_files: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    """Every other option Vagrant printed (UserKnownHostsFile, StrictHostKeyChecking, ProxyCommand...), in order."""


_EXPLICIT = {"host", "hostname", "user", "port", "identityfile"}


def parse_ssh_config(text: str) -> dict[str, SshTarget]:
    """``vagrant ssh-config [NAME]`` output -> Host alias -> target. Vagrant quotes values with spaces
    (``IdentityFile "/home/a b/key"``); ``Key=Value`` is accepted too, as OpenSSH accepts it."""
    blocks: list[tuple[str, list[tuple[str, str]]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)$", line)
        if not m:
            if blocks:
                raise ParseError(f"ssh-config line {lineno} is not 'Key value': {line!r}")
            continue  # text before the first Host line (a prompt, a warning) is not ours to judge
        key, value = m.group(1), m.group(2).strip()
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise ParseError(f"ssh-config line {lineno} has unbalanced quotes: {line!r}") from exc
        value = " ".join(parts) if key.lower() != "proxycommand" else value
        if key.lower() == "host":
            blocks.append((value, []))
        elif blocks:
            blocks[-1][1].append((key, value))
    if not blocks:
        raise ParseError(
            "no 'Host' entry in the ssh-config text",
            fix="pass the output of `vagrant ssh-config` (it starts with 'Host NAME')",
        )
    out: dict[str, SshTarget] = {}
    for alias, pairs in blocks:
        lower: dict[str, str] = {}
        identity: list[str] = []
        other: list[tuple[str, str]] = []
        for key, value in pairs:
            k = key.lower()
            if k == "identityfile":
                identity.append(value)
            elif k in _EXPLICIT:
                lower.setdefault(k, value)
            else:
                other.append((key, value))
        missing = [k for k in ("hostname", "user") if k not in lower]
        if missing:
            raise ParseError(f"ssh-config entry for {alias!r} has no {' or '.join(missing)}")
        try:
            port = int(lower.get("port", "22"))
        except ValueError as exc:
            raise ParseError(f"ssh-config entry for {alias!r} has port {lower['port']!r}, not a number") from exc
        out[alias] = SshTarget(alias, lower["hostname"], lower["user"], port, tuple(identity), tuple(other))
    return out


def ssh_argv(target: SshTarget, command: str, *, connect_timeout: int = 20, ssh: str = "ssh") -> list[str]:
    """An OpenSSH argv that runs ``command`` (already quoted for the remote shell) on ``target``, with nothing
    read from the user's ~/.ssh/config (``-F /dev/null``) and no prompt (``BatchMode``)."""
    argv = [ssh, "-F", "/dev/null"]
    seen = set()
    for key, value in target.options:
        if key.lower() in seen:  # OpenSSH keeps the first value of an option; so do we
            continue
        seen.add(key.lower())
        argv += ["-o", f"{key}={value}"]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=15"]
    for identity in target.identity_files:
        argv += ["-i", identity]
    argv += ["-p", str(target.port), "-l", target.user, "--", target.hostname, command]
    return argv


# -- host routes and libvirt networks (pre-flight) ---------------------------------------------------------------


@attrs.frozen
class Route:
    iface: str
    network: ipaddress.IPv4Network


def parse_proc_net_route(text: str) -> list[Route]:
    """``/proc/net/route`` (hex, little-endian) -> routes, the default route left out."""
    routes: list[Route] = []
    lines = text.splitlines()
    if not lines or not lines[0].split() or lines[0].split()[0] != "Iface":
        raise ParseError("not the content of /proc/net/route (no 'Iface Destination ...' header)")
    for raw in lines[1:]:
        fields = raw.split()
        if len(fields) < 8:
            continue
        try:
            dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except ValueError as exc:
            raise ParseError(f"/proc/net/route line {raw!r} is malformed") from exc
        if net.prefixlen == 0:
            continue
        routes.append(Route(fields[0], net))
    return routes


@attrs.frozen
class LibvirtNetwork:
    name: str
    bridge: str | None
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    connections: int


def parse_network_xml(text: str) -> LibvirtNetwork:
    """``virsh net-dumpxml NAME`` -> name, bridge, address ranges, active connections."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"libvirt network XML does not parse: {exc}") from exc
    if root.tag != "network":
        raise ParseError(f"expected a <network> document, got <{root.tag}>")
    name = (root.findtext("name") or "").strip()
    bridge_el = root.find("bridge")
    bridge = bridge_el.get("name") if bridge_el is not None else None
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for ip in root.findall("ip"):
        address = ip.get("address")
        if not address:
            continue
        prefix = ip.get("prefix") or ip.get("netmask") or ("24" if ":" not in address else "64")
        try:
            nets.append(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
        except ValueError as exc:
            raise ParseError(f"libvirt network {name!r} has a bad address {address}/{prefix}") from exc
    return LibvirtNetwork(name, bridge, tuple(nets), int(root.get("connections", "0") or 0))


def overlapping(
    cidr: ipaddress.IPv4Network, candidates: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [c for c in candidates if c.version == cidr.version and c.overlaps(cidr)]
