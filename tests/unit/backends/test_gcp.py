"""GcpBackend without a cloud: plan, pre-flight, credentials, the public address, SSH-driven capabilities.

Provisioning with the real terraform binary is in tests/integration/test_terraform_real.py.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from cilium_labs import ssh
from cilium_labs.backends import get
from cilium_labs.backends.base import Capture, ExecResult, Node, NodeExec
from cilium_labs.backends.gcp import (
    GcpBackend,
    _https_get,
    find_credentials,
    node_from_output,
    public_ipv4,
    rewrite_kubeconfig,
)
from cilium_labs.errors import BackendError, PreflightError, SpecError, UsageError
from cilium_labs.spec import GcpOptions, LabSpec

PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")  # an empty little-endian pcap
ADMIN_CONF = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==
    server: https://172.16.0.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
"""


def _spec(**gcp: Any) -> LabSpec:
    opts = {"project": "my-project-123", **gcp}
    return LabSpec(name="lab", backend="gcp", workers=2, gcp=GcpOptions(**opts))


def _no_network() -> str:
    raise AssertionError("no network access allowed here")


def _backend(tmp_path: Path, spec: LabSpec | None = None, **kw: Any) -> GcpBackend:
    kw.setdefault("ip_lookup", _no_network)
    kw.setdefault("clock", lambda: 1_800_000_000.0)
    return GcpBackend(spec or _spec(), tmp_path / "lab", **kw)


NODES = [
    Node("lab-control-plane", "control-plane", ("172.16.0.10",), "34.1.2.3"),
    Node("lab-worker", "worker", ("172.16.0.11",), "34.1.2.4"),
    Node("lab-worker2", "worker", ("172.16.0.12",), "34.1.2.5"),
]


def _up_backend(tmp_path: Path) -> GcpBackend:
    backend = _backend(tmp_path)
    backend.restore(
        {
            "nodes": [
                {"name": n.name, "role": n.role, "internal_ips": list(n.internal_ips), "external_ip": n.external_ip}
                for n in NODES
            ],
            "ssh_user": "cilium-labs",
            "api_server_external_ip": "34.1.2.3",
            "control_plane_address": "172.16.0.10",
            "expires_at": 1_800_014_400,
        }
    )
    return backend


class FakeSsh:
    """Stands in for ``ssh.run``: records (host, argv, sudo, input) and answers from a handler."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.calls: list[tuple[str, list[str], bool, str | None]] = []

    def __call__(
        self,
        identity: ssh.SshIdentity,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        input: str | None = None,
        sudo: bool = False,
    ) -> ExecResult:
        self.calls.append((host, list(argv), sudo, input))
        # the real argv builder must accept what the backend sends
        ssh.ssh_argv(identity, host, argv, sudo=sudo)
        return self.handler(host, list(argv))  # type: ignore[no-any-return]


# -- registry, capabilities -------------------------------------------------------------------------------------


def test_registered_with_capabilities(tmp_path: Path) -> None:
    assert get("gcp") is GcpBackend
    backend = _backend(tmp_path)
    assert isinstance(backend, NodeExec) and isinstance(backend, Capture)
    assert GcpBackend.recommended_mtu() == 1460
    assert "subtract" in (GcpBackend.recommended_mtu.__doc__ or "")


# -- plan ----------------------------------------------------------------------------------------------------------


def test_plan_prints_tfvars_commands_and_cost_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*a: Any, **k: Any) -> None:
        raise AssertionError("plan must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    backend = _backend(tmp_path)
    plan = backend.plan()
    tfvars = plan.extra["tfvars"]
    assert tfvars["project"] == "my-project-123" and tfvars["lab_name"] == "lab"
    assert tfvars["admin_source_ranges"] == ["<your public IPv4>/32"]
    assert tfvars["expires_at"] == 1_800_000_000 + 4 * 3600
    assert tfvars["network_mtu"] == 1460 and tfvars["node_cidr"] == "172.16.0.0/24"
    assert plan.files and json.loads(next(iter(plan.files.values()))) == tfvars
    init, apply, output = plan.commands
    assert init[:2] == ["terraform", f"-chdir={backend.workdir}"] and "-input=false" in init
    assert apply[2:] == ["apply", "-auto-approve", "-input=false", "-json"]
    assert output[2:4] == ["output", "-json"]
    text = "\n".join(plan.notes)
    assert "e2-standard-2 VM: 3 VM x 0.067006 = 0.2010 USD/h" in text
    assert "USD/hour" in text and "list prices of 2025-06-01" in text
    assert "expires at 2027-01-15" in text and "cilium-labs gc" in text
    assert plan.extra["cost_per_hour"] > 0.2
    assert not backend.workdir.exists(), "plan creates nothing"


def test_plan_without_project_shows_a_placeholder(tmp_path: Path) -> None:
    backend = _backend(tmp_path, LabSpec(name="lab", backend="gcp"))
    plan = backend.plan()
    assert plan.extra["tfvars"]["project"] == "<gcp.project>"
    assert any("--gcp-project" in n for n in plan.notes)


def test_plan_uses_given_admin_ranges(tmp_path: Path) -> None:
    plan = _backend(tmp_path, _spec(admin_source_ranges=("198.51.100.0/24",))).plan()
    assert plan.extra["tfvars"]["admin_source_ranges"] == ["198.51.100.0/24"]


def test_world_open_needs_allow_world_in_so_many_words(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="whole internet"):
        _spec(admin_source_ranges=("0.0.0.0/0",))
    plan = _backend(tmp_path, _spec(admin_source_ranges=("0.0.0.0/0",), allow_world=True)).plan()
    assert plan.extra["tfvars"]["allow_world"] is True
    assert plan.extra["tfvars"]["admin_source_ranges"] == ["0.0.0.0/0"]


# -- pre-flight ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (LabSpec(name="lab", backend="gcp"), SpecError, "gcp.project"),
        (LabSpec(name="1lab", backend="gcp", gcp=GcpOptions(project="p-123456")), SpecError, "start with a letter"),
        (
            LabSpec(name="lab", backend="gcp", ip_family="dual", gcp=GcpOptions(project="p-123456")),
            PreflightError,
            "IPv4-only",
        ),
        (
            LabSpec(name="lab", backend="gcp", routing="native", gcp=GcpOptions(project="p-123456")),
            PreflightError,
            "VPC route",
        ),
        (LabSpec(name="lab", backend="gcp", gcp=GcpOptions(project="p-123456", ttl_hours=0)), SpecError, "expires"),
    ],
)
def test_spec_checks(tmp_path: Path, spec: LabSpec, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _backend(tmp_path, spec, environ={"GOOGLE_OAUTH_ACCESS_TOKEN": "x"}).preflight()


def test_missing_credentials_say_how_to_log_in(tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as err:
        find_credentials({}, home=tmp_path)
    assert "gcloud auth application-default login" in str(err.value)
    with pytest.raises(PreflightError, match="does not exist"):
        find_credentials({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "nope.json")}, home=tmp_path)
    key = tmp_path / "key.json"
    key.write_text("{}")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in find_credentials({"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    adc = tmp_path / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    assert "application default credentials" in find_credentials({}, home=tmp_path)
    assert find_credentials({"CLOUDSDK_CONFIG": str(adc.parent)}, home=tmp_path / "elsewhere")


def test_preflight_fails_on_credentials_before_creating_anything(tmp_path: Path) -> None:
    backend = _backend(tmp_path, environ={})
    with pytest.raises(PreflightError, match="credentials"):
        # HOME without gcloud config: no ADC
        backend._environ = {"CLOUDSDK_CONFIG": str(tmp_path / "empty")}
        backend.preflight()
    assert not backend.state_dir.exists()


def test_admin_range_defaults_to_the_callers_address(tmp_path: Path) -> None:
    backend = _backend(tmp_path, ip_lookup=lambda: "203.0.113.7", environ={"GOOGLE_OAUTH_ACCESS_TOKEN": "x"})
    assert backend.preflight() == []
    assert backend.tfvars(admin_ranges=backend._resolve_admin_ranges(), expires_at=1, ssh_public_key="k")[
        "admin_source_ranges"
    ] == ["203.0.113.7/32"]


def test_public_ipv4_tries_the_next_endpoint_and_checks_the_answer() -> None:
    answers = {
        "https://a": OSError("timed out"),
        "https://b": "10.0.0.1\n",
        "https://c": "<html>",
        "https://d": "34.120.55.9\n",
    }

    def fetch(url: str, timeout: float) -> str:
        value = answers[url]
        if isinstance(value, Exception):
            raise value
        return value

    assert public_ipv4(urls=["https://a", "https://b", "https://c", "https://d"], fetch=fetch) == "34.120.55.9"
    with pytest.raises(PreflightError) as err:
        public_ipv4(urls=["https://a", "https://b", "https://c"], fetch=fetch)
    message = str(err.value)
    assert "timed out" in message and "not a public address" in message and "not an IPv4 address" in message
    assert "gcp.admin_source_ranges" in message


@pytest.fixture
def echo_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"93.184.215.14\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_https_get_reads_a_short_answer(echo_server: str) -> None:
    assert _https_get(echo_server, 5.0).strip() == "93.184.215.14"
    assert public_ipv4(urls=[echo_server]) == "93.184.215.14"


# -- outputs, kubeconfig -------------------------------------------------------------------------------------------


def test_node_from_output() -> None:
    node = node_from_output(
        {"name": "lab-worker", "role": "worker", "internal_ip": "172.16.0.11", "external_ip": "34.1.2.4"}
    )
    assert node == Node("lab-worker", "worker", ("172.16.0.11",), "34.1.2.4")
    with pytest.raises(BackendError, match="lacks"):
        node_from_output({"name": "x"})
    with pytest.raises(BackendError, match="role"):
        node_from_output({"name": "x", "role": "master", "internal_ip": "1.2.3.4"})


def test_rewrite_kubeconfig() -> None:
    out = yaml.safe_load(rewrite_kubeconfig(ADMIN_CONF, "https://34.1.2.3:6443"))
    assert out["clusters"][0]["cluster"]["server"] == "https://34.1.2.3:6443"
    assert out["users"][0]["user"]["client-key-data"] == "a2V5"
    with pytest.raises(BackendError):
        rewrite_kubeconfig("kind: Config\n", "https://x:6443")


def test_fetch_kubeconfig_over_ssh_written_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    fake = FakeSsh(lambda host, argv: ExecResult(0, ADMIN_CONF, ""))
    monkeypatch.setattr(ssh, "run", fake)
    path = backend.kubeconfig()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == "https://34.1.2.3:6443"
    assert fake.calls == [("34.1.2.3", ["cat", "/etc/kubernetes/admin.conf"], True, None)]


# -- node_exec, capture, dump_logs ---------------------------------------------------------------------------------


def test_node_exec_runs_as_root_over_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    fake = FakeSsh(lambda host, argv: ExecResult(0, "ok\n", ""))
    monkeypatch.setattr(ssh, "run", fake)
    res = backend.node_exec("lab-worker2", ["ip", "-d", "link", "show", "cilium_vxlan"])
    assert res.stdout == "ok\n"
    assert fake.calls == [("34.1.2.5", ["ip", "-d", "link", "show", "cilium_vxlan"], True, None)]
    with pytest.raises(UsageError, match="no node named 'lab-worker9'"):
        backend.node_exec("lab-worker9", ["true"])


def test_capture_returns_pcap_bytes_and_quotes_the_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    fake = FakeSsh(lambda host, argv: ExecResult(0, base64.b64encode(PCAP).decode(), ""))
    monkeypatch.setattr(ssh, "run", fake)
    hostile = "udp port 8472; rm -rf /"
    assert backend.capture("lab-worker", hostile, 5) == PCAP
    host, argv, sudo, _ = fake.calls[0]
    assert sudo and argv[:2] == ["sh", "-c"] and argv[-2:] == ["5", hostile]
    assert hostile not in argv[2]  # the filter is a positional parameter, not part of the script
    assert "tcpdump" in argv[2] and "base64" in argv[2]


def test_capture_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    monkeypatch.setattr(ssh, "run", FakeSsh(lambda h, a: ExecResult(0, "", "tcpdump: syntax error in filter")))
    with pytest.raises(BackendError, match="syntax error in filter"):
        backend.capture("lab-worker", "bogus (", 1)
    with pytest.raises(UsageError):
        backend.capture("lab-worker", "udp", 0)


def test_dump_logs_collects_every_node_and_keeps_going(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)

    def handler(host: str, argv: list[str]) -> ExecResult:
        if host == "34.1.2.5":
            return ExecResult(255, "", "ssh: connect to host 34.1.2.5 port 22: Connection timed out")
        return ExecResult(0, f"{host} {' '.join(argv)}\n", "")

    monkeypatch.setattr(ssh, "run", FakeSsh(handler))
    files = backend.dump_logs(tmp_path / "artifacts")
    names = {str(p.relative_to(tmp_path / "artifacts")) for p in files}
    assert "lab-control-plane/bootstrap.log" in names and "lab-worker/kubelet.log" in names
    assert "lab-worker2/errors.txt" in names
    cp_kubelet = (tmp_path / "artifacts/lab-control-plane/kubelet.log").read_text()
    assert "journalctl -u kubelet --no-pager" in cp_kubelet
    assert "/var/log/cilium-labs-bootstrap.log" in (tmp_path / "artifacts/lab-worker/bootstrap.log").read_text()
    assert "Connection timed out" in (tmp_path / "artifacts/lab-worker2/errors.txt").read_text()


# -- converge: bootstrap wait, joins, kubeconfig over the backend's own SSH runner ---------------------------------


def test_converge_joins_workers_and_fetches_the_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    token = "abcdef.0123456789abcdef"
    hash_ = "sha256:" + "b" * 64
    joined: list[str] = []

    def handler(host: str, argv: list[str]) -> ExecResult:
        if argv[-1] == "status":
            return ExecResult(0, "done\n" if host == "34.1.2.3" or host in joined else "prepared\n", "")
        if argv[1:] == ["join-command"]:
            return ExecResult(
                0, f"kubeadm join 172.16.0.10:6443 --token {token} --discovery-token-ca-cert-hash {hash_}\n", ""
            )
        if argv[1:] == ["join"]:
            joined.append(host)
            return ExecResult(0, "", "")
        if argv == ["cat", "/etc/kubernetes/admin.conf"]:
            return ExecResult(0, ADMIN_CONF, "")
        raise AssertionError(argv)

    fake = FakeSsh(handler)
    monkeypatch.setattr(ssh, "run", fake)
    backend._converge()
    assert sorted(joined) == ["34.1.2.4", "34.1.2.5"]
    join_calls = [c for c in fake.calls if c[1][1:] == ["join"]]
    assert all(c[2] and c[3] and token in c[3] for c in join_calls)  # as root, token on stdin only
    assert all(token not in " ".join(c[1]) for c in fake.calls)
    assert backend.kubeconfig_path.exists()


def test_state_round_trip(tmp_path: Path) -> None:
    backend = _up_backend(tmp_path)
    other = _backend(tmp_path)
    other.restore(json.loads(json.dumps(backend.state())))
    assert other.nodes() == NODES
    assert other.api_server_endpoint() == ("172.16.0.10", 6443)
    assert other.state() == backend.state()


def test_not_up_lab_has_no_nodes_and_down_is_a_no_op(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    with pytest.raises(BackendError, match="not up"):
        backend.nodes()
    assert backend.is_up() is False
    backend.down()
    backend.down()
    assert backend.api_server_endpoint() is None


def test_failed_bootstrap_keeps_node_logs_before_destroying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _up_backend(tmp_path)
    order: list[str] = []
    monkeypatch.setattr(backend, "preflight", lambda: [])
    monkeypatch.setattr(ssh, "ensure_keypair", lambda path, comment: "ssh-ed25519 AAAA test")
    monkeypatch.setattr(backend, "_prepare_workdir", lambda ranges, key: None)
    monkeypatch.setattr(backend, "_resolve_admin_ranges", lambda: ("34.120.55.9/32",))

    class Tf:
        def init(self) -> None:
            order.append("init")

        def apply(self) -> Any:
            order.append("apply")
            return type("S", (), {"added": 7, "changed": 0})()

    monkeypatch.setattr(backend, "terraform", lambda: Tf())
    monkeypatch.setattr(backend, "_load_outputs", lambda tf: None)

    def converge() -> None:
        raise BackendError("bootstrap failed on lab-control-plane: line 3: apt-get -q update")

    monkeypatch.setattr(backend, "_converge", converge)
    monkeypatch.setattr(backend, "dump_logs", lambda dest: order.append(f"dump {dest.parent.name}") or [dest])
    monkeypatch.setattr(backend, "_destroy_after_failure", lambda tf, exc: order.append("destroy"))
    with pytest.raises(BackendError, match="bootstrap failed"):
        backend.up()
    assert order == ["init", "apply", "dump artifacts", "destroy"]
