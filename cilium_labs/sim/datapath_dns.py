"""What the CoreDNS pods answer on the netns datapath: Service names, from the simulator's model.

A pod resolves ``echo.test.svc.cluster.local`` the way it would on a real cluster: glibc reads the pod's
``/etc/resolv.conf`` (the kube-dns ClusterIP, the namespace's search path, ``ndots:5``; written to
``/etc/netns/<pod namespace>/resolv.conf``, which ``ip netns exec`` mounts over ``/etc/resolv.conf``), sends UDP to
the ClusterIP, the node's service table DNATs it to a CoreDNS pod, and a responder listening *in that pod's
namespace* answers A/AAAA records of Services (NXDOMAIN for anything else). So a broken Service path, a missing
tunnel to the node hosting CoreDNS, or no kube-dns endpoints shows up as a DNS failure, as it would.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from .datapath_echo import socket_in_netns

CLUSTER_DOMAIN = "cluster.local"
TYPE_A, TYPE_AAAA = 1, 28
TTL = 5

Resolver = Callable[[str], list[str] | None]
"""Name (lower case, no trailing dot) -> addresses, or None when the name does not exist."""


def parse_query(data: bytes) -> tuple[int, int, str, int, bytes] | None:
    """(id, flags, name, qtype, question bytes) of a one-question query; None when it is not one."""
    if len(data) < 12:
        return None
    ident, flags, qd = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or qd != 1:
        return None
    labels = []
    pos = 12
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > len(data):
            return None
        labels.append(data[pos + 1 : pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 4 > len(data):
        return None
    qtype = struct.unpack("!H", data[pos : pos + 2])[0]
    return ident, flags, ".".join(labels).lower(), qtype, data[12 : pos + 4]


def answer(query: bytes, resolve: Resolver) -> bytes | None:
    """The response to ``query``: A/AAAA records, an empty NOERROR (other family), or NXDOMAIN."""
    parsed = parse_query(query)
    if parsed is None:
        return None
    ident, flags, name, qtype, question = parsed
    addrs = resolve(name)
    rd = flags & 0x0100
    if addrs is None:
        return struct.pack("!HHHHHH", ident, 0x8080 | rd | 3, 1, 0, 0, 0) + question
    records = b""
    count = 0
    for addr in addrs:
        ip = ipaddress.ip_address(addr)
        if (qtype == TYPE_A and ip.version == 4) or (qtype == TYPE_AAAA and ip.version == 6):
            rdata = ip.packed
            records += struct.pack("!HHHIH", 0xC00C, qtype, 1, TTL, len(rdata)) + rdata
            count += 1
    return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, count, 0, 0) + question + records


class DnsResponder:
    """UDP port 53 in one pod's namespace, answering from ``resolve``."""

    def __init__(self, netns_path: Path, resolve: Resolver, *, port: int = 53) -> None:
        self.resolve = resolve
        self.sock = socket_in_netns(netns_path, socket.AF_INET6, socket.SOCK_DGRAM, ("::", port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(1500)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = answer(data, self.resolve)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def service_resolver(services: Callable[[], dict[str, list[str]]], domain: str = CLUSTER_DOMAIN) -> Resolver:
    """Names ``<svc>.<ns>.svc.<domain>`` from ``services()`` (``"ns/svc" -> ClusterIPs``)."""
    suffix = f".svc.{domain}"

    def resolve(name: str) -> list[str] | None:
        name = name.rstrip(".")
        if not name.endswith(suffix):
            return None
        parts = name[: -len(suffix)].split(".")
        if len(parts) != 2:
            return None
        return services().get(f"{parts[1]}/{parts[0]}")

    return resolve


def resolv_conf(nameservers: list[str], namespace: str, domain: str = CLUSTER_DOMAIN) -> str:
    """A pod's ``/etc/resolv.conf`` as the kubelet writes it for ``dnsPolicy: ClusterFirst``."""
    lines = [f"search {namespace}.svc.{domain} svc.{domain} {domain}"]
    lines += [f"nameserver {ip}" for ip in nameservers]
    lines.append("options ndots:5")
    return "\n".join(lines) + "\n"
