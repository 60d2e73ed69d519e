"""The lean exec transport: the same answers as ``kubernetes.stream`` from the simulated API server, the same
wording when the API refuses, client certificates, websocket framing, and when it must step aside.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cilium_labs import _wsexec
from cilium_labs.cilium.agents import _exec_refusal
from cilium_labs.cluster import Cluster, PodExec
from cilium_labs.errors import ClusterError
from cilium_labs.sim import SimHandle, running
from cilium_labs.spec import LabSpec

SPEC = LabSpec(name="lab", backend="sim", cilium_version="1.16.19", workers=2)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running(SPEC, use_chart=False, seed=11) as handle:
        yield handle


@pytest.fixture()
def clusters(sim: SimHandle) -> Iterator[tuple[Cluster, Cluster]]:
    """(lean transport, kubernetes.stream) over the same kubeconfig."""
    sim.clear_faults()
    lean = Cluster(sim.kubeconfig)
    assert lean._transport is not None
    stream = Cluster(sim.kubeconfig)
    stream._transport = None
    yield lean, stream
    sim.clear_faults()


def _agent_pod(cluster: Cluster, node: str) -> str:
    meta = cluster.pods("kube-system", "k8s-app=cilium", f"spec.nodeName={node}")[0].metadata
    assert meta is not None
    return str(meta.name)


def _both(clusters: tuple[Cluster, Cluster], pod: str, argv: list[str], container: str = "cilium-agent",
          timeout: float = 20.0) -> tuple[PodExec, PodExec]:
    lean, stream = clusters
    return (lean.exec("kube-system", pod, container, argv, timeout=timeout),
            stream.exec("kube-system", pod, container, argv, timeout=timeout))


@pytest.mark.parametrize("argv", [
    ["cilium", "status", "--brief"],
    ["cilium-dbg", "service", "list"],
    ["cilium", "nope"],  # exit 1 with stderr
    ["echo", "héllo wörld ✓"],  # UTF-8 across the stream
    ["cilium-health", "status", "-o", "json"],
])
def test_answers_match_kubernetes_stream(clusters: tuple[Cluster, Cluster], argv: list[str]) -> None:
    pod = _agent_pod(clusters[0], "lab-worker")
    lean, stream = _both(clusters, pod, argv)
    if argv[0] == "cilium-health":  # probe timestamps and latencies are per call: compare the shape
        assert lean.exit_code == stream.exit_code == 0
        assert sorted(__import__("json").loads(lean.stdout)) == sorted(__import__("json").loads(stream.stdout))
        return
    assert lean == stream
    if argv[1:] == ["nope"]:
        assert lean.exit_code == 1 and "unknown command" in lean.stderr and "exit code 1" in lean.reason


def test_runtime_failure_is_read_from_the_status_channel(clusters: tuple[Cluster, Cluster]) -> None:
    pod = _agent_pod(clusters[0], "lab-worker")
    lean, stream = _both(clusters, pod, ["no-such-binary"])
    assert lean.exit_code == stream.exit_code == -1
    assert "executable file not found" in lean.reason and "executable file not found" in stream.reason


def test_big_output_arrives_whole(sim: SimHandle, clusters: tuple[Cluster, Cluster]) -> None:
    for i in range(80):
        sim.cluster.create("services", "default", {"metadata": {"name": f"big-{i}"}, "spec": {
            "selector": {"k8s-app": "kube-dns"}, "ports": [{"port": 53, "protocol": "UDP"}]}})
    try:
        pod = _agent_pod(clusters[0], "lab-control-plane")
        lean, stream = _both(clusters, pod, ["cilium-dbg", "service", "list", "-o", "json"])
        assert lean == stream and len(lean.stdout) > 65536  # more than one websocket length class, many records
    finally:
        for i in range(80):
            sim.cluster.delete("services", "default", f"big-{i}")


def test_refusals_are_worded_as_kubernetes_stream_words_them(sim: SimHandle,
                                                             clusters: tuple[Cluster, Cluster]) -> None:
    sim.set_faults(["agent-down:lab-worker2"])
    down = _agent_pod(clusters[0], "lab-worker2")
    for pod, container, code in ((down, "cilium-agent", 500), ("no-such-pod", "cilium-agent", 404),
                                 (_agent_pod(clusters[0], "lab-worker"), "nope", 400)):
        seen = []
        for cluster in clusters:
            with pytest.raises(ClusterError) as err:
                cluster.exec("kube-system", pod, container, ["true"])
            assert getattr(err.value, "status", None) == 0
            seen.append(_exec_refusal(err.value))
        assert seen[0] == seen[1]
        assert seen[0][0] == code


def test_an_exec_that_outlives_its_timeout_reports_no_answer(sim: SimHandle,
                                                            clusters: tuple[Cluster, Cluster]) -> None:
    sim.set_faults(["agent-slow:lab-worker:1"])
    pod = _agent_pod(clusters[0], "lab-worker")
    lean, stream = _both(clusters, pod, ["cilium", "version"], timeout=0.5)
    assert lean == stream == PodExec("", "", -1, "no answer within 0.5s")
    sim.clear_faults()  # the transport is usable afterwards
    assert clusters[0].exec("kube-system", pod, "cilium-agent", ["true"]).exit_code == 0


def test_tls_sessions_are_resumed(sim: SimHandle) -> None:
    transport = Cluster(sim.kubeconfig)._transport
    assert transport is not None
    reused = []
    for _ in range(3):
        conn = transport._connect(time.monotonic() + 30)
        try:
            assert isinstance(conn.sock, ssl.SSLSocket)
            transport._upgrade(conn, "/api/v1/namespaces/kube-system/pods/nope/exec?command=true")
        except _wsexec.ExecRefused:
            pass  # 404: the handshake (and the session ticket) came first
        finally:
            reused.append(conn.sock.session_reused)  # type: ignore[attr-defined]
            conn.close()
    assert reused == [False, True, True]


def test_concurrent_execs_share_one_transport(sim: SimHandle, clusters: tuple[Cluster, Cluster]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lean = clusters[0]
    pods = [_agent_pod(lean, n) for n in ("lab-control-plane", "lab-worker", "lab-worker2")] * 8
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: lean.exec("kube-system", p, "cilium-agent", ["hostname"]), pods))
    assert {r.stdout.strip() for r in got} == {"lab-control-plane", "lab-worker", "lab-worker2"}
    assert all(r.exit_code == 0 for r in got)


# -- when the transport steps aside ------------------------------------------------------------------------------
def _kubeconfig(tmp_path: Path, sim: SimHandle, user: dict[str, Any]) -> Path:
    doc = yaml.safe_load(sim.kubeconfig.read_text())
    doc["users"][0]["user"] = user
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_exec_plugins_and_proxies_go_through_kubernetes_stream(sim: SimHandle, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    token = {"token": sim.token}
    assert Cluster(_kubeconfig(tmp_path, sim, token))._transport is not None
    plugin = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "echo", "args": ["{}"]}}
    assert _wsexec.ExecTransport.from_kubeconfig(
        Cluster(sim.kubeconfig).api_client.configuration, _kubeconfig(tmp_path, sim, plugin), None) is None
    basic = {"username": "admin", "password": "secret"}
    assert Cluster(_kubeconfig(tmp_path, sim, basic))._transport is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    cluster = Cluster(_kubeconfig(tmp_path, sim, token))
    assert cluster._transport is None
    monkeypatch.delenv("HTTPS_PROXY")
    pod = _agent_pod(Cluster(sim.kubeconfig), "lab-worker")
    assert cluster.exec("kube-system", pod, "cilium-agent", ["hostname"]).stdout == "lab-worker\n"


# -- client certificates and framing, against a minimal API server written here ----------------------------------
def _cert(name: str, issuer: tuple[Any, x509.Name] | None, *, ca: bool = False, server: bool = False,
          ) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = issuer if issuer else (key, subject)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            __import__("ipaddress").ip_address("127.0.0.1"))]), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return key, builder.sign(signer, hashes.SHA256())


def _write(path: Path, key: Any, cert: x509.Certificate) -> tuple[Path, Path]:
    crt, pem = path.with_suffix(".crt"), path.with_suffix(".key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def _frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    head = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", head, n) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


class _MiniApiServer:
    """Accepts one TLS connection that must present a client certificate, answers one exec upgrade with
    fragmented stdout, a ping, a v5 stream-close frame and a status, then records what the client sent."""

    def __init__(self, tmp: Path) -> None:
        ca_key, ca = _cert("test-ca", None, ca=True)
        srv_key, srv = _cert("kube-apiserver", (ca_key, ca.subject), server=True)
        cli_key, cli = _cert("admin", (ca_key, ca.subject))
        self.ca_file = tmp / "ca.crt"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        srv_crt, srv_pem = _write(tmp / "server", srv_key, srv)
        self.client_crt, self.client_key = _write(tmp / "client", cli_key, cli)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(srv_crt, srv_pem)
        self.ctx.load_verify_locations(cafile=self.ca_file)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.peer_cn = ""
        self.request = b""
        self.after: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        self.listener.close()
        try:
            self._answer(raw)
        except (OSError, StopIteration):
            raw.close()  # the client refused our certificate, or sent no upgrade

    def _answer(self, raw: socket.socket) -> None:
        with self.ctx.wrap_socket(raw, server_side=True) as conn:
            cert = conn.getpeercert() or {}
            self.peer_cn = str(dict(x[0] for x in cert.get("subject", ()))["commonName"])  # type: ignore[misc]
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            key = next(line.split(b":", 1)[1].strip() for line in self.request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
            body = ("out-" * 20000).encode()
            conn.sendall(_frame(0x2, b"\x01" + body[:70000], fin=False) + _frame(0x9, b"are you there")
                         + _frame(0x0, body[70000:]) + _frame(0x2, b"\x02warn\n") + _frame(0x2, b"\xff\x01")
                         + _frame(0x2, b'\x03{"metadata":{},"status":"Success"}') + _frame(0x8, b"\x03\xe8"))
            conn.settimeout(5)
            try:
                while data := conn.recv(4096):
                    self.after.append(data)
            except OSError:
                pass


def test_client_certificates_and_framing(tmp_path: Path) -> None:
    server = _MiniApiServer(tmp_path)
    transport = _wsexec.ExecTransport(f"https://127.0.0.1:{server.port}", ca_file=str(server.ca_file),
                                      cert_file=str(server.client_crt), key_file=str(server.client_key),
                                      spares=False)  # the server here answers one connection
    out = transport.exec("kube-system", "cilium-x", "cilium-agent", ["cilium-dbg", "status"], timeout=10)
    server.thread.join(10)
    assert server.peer_cn == "admin"
    head = server.request.decode()
    assert head.startswith("GET /api/v1/namespaces/kube-system/pods/cilium-x/exec?command=cilium-dbg&command=status"
                           "&container=cilium-agent&stderr=true&stdin=false&stdout=true&tty=false HTTP/1.1\r\n")
    assert "Sec-WebSocket-Protocol: v5.channel.k8s.io,v4.channel.k8s.io\r\n" in head
    assert "Authorization" not in head
    assert out == _wsexec.ExecOutput("out-" * 20000, "warn\n", '{"metadata":{},"status":"Success"}', True)
    sent = b"".join(server.after)
    assert sent[0] == 0x8A and sent[1] & 0x80  # a masked pong first
    assert sent[1] & 0x7F == len(b"are you there")
    assert any(b[0] == 0x88 for b in [sent[2 + 4 + 13:]])  # then a close frame


def test_an_untrusted_server_is_refused(tmp_path: Path) -> None:
    server = _MiniApiServer(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    ca_key, ca = _cert("another-ca", None, ca=True)
    (other / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    transport = _wsexec.ExecTransport(f"https://127.0.0.1:{server.port}", ca_file=str(other / "ca.crt"),
                                      spares=False)
    with pytest.raises(_wsexec.ExecRefused, match="CERTIFICATE_VERIFY_FAILED"):
        transport.exec("kube-system", "cilium-x", "cilium-agent", ["true"], timeout=5)


def test_execs_start_on_connections_made_while_earlier_ones_waited(sim: SimHandle,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wsexec, "SPARE_MAX_AGE_S", 0.5)
    lean = Cluster(sim.kubeconfig)
    transport = lean._transport
    assert transport is not None and transport.spares
    pod = _agent_pod(lean, "lab-worker")
    made = []
    connect = transport._connect

    def counting(deadline: float) -> Any:
        made.append(threading.current_thread().name)
        return connect(deadline)

    transport._connect = counting  # type: ignore[method-assign]
    sim.server.exec_latency_ms = 100  # time for the next connection to be made during each exec
    try:
        outs = [lean.exec("kube-system", pod, "cilium-agent", ["hostname"]).stdout for _ in range(4)]
    finally:
        sim.server.exec_latency_ms = 0
    assert outs == ["lab-worker\n"] * 4
    assert made[0] == threading.current_thread().name  # the first exec had to connect itself
    assert made.count(threading.current_thread().name) == 1  # the others found a spare ready
    time.sleep(_wsexec.SPARE_MAX_AGE_S + 0.5)  # a spare nobody takes is closed when it gets old
    assert all(c.expired and c.sock.fileno() == -1 for c in transport._spares)
    assert lean.exec("kube-system", pod, "cilium-agent", ["hostname"]).stdout == "lab-worker\n"
