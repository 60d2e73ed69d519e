"""The simulated API server through the real ``kubernetes`` client: acceptance point 1 of issue 3.

One server for the module (faults are changed per test and cleared after); exec latency 0.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from cilium_labs.cluster import Cluster
from cilium_labs.sim import SimHandle, running, spdy
from cilium_labs.spec import LabSpec

SPEC = LabSpec(name="lab", backend="sim", cilium_version="1.16.19", workers=2)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running(SPEC, use_chart=False, seed=7) as handle:
        yield handle


@pytest.fixture()
def api(sim: SimHandle) -> Iterator[client.ApiClient]:
    sim.clear_faults()
    api_client = config.new_client_from_config(str(sim.kubeconfig))
    yield api_client
    sim.clear_faults()
    api_client.close()


def _agent_pods(core: client.CoreV1Api) -> list[Any]:
    return list(core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium").items)


def test_kubeconfig_is_private_and_has_ca_and_token(sim: SimHandle) -> None:
    assert sim.kubeconfig.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(sim.kubeconfig.read_text())
    assert doc["current-context"] == "kind-lab"
    assert doc["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"]
    assert doc["users"][0]["user"]["token"] == sim.token


def test_list_nodes_like_kind(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == ["lab-control-plane", "lab-worker", "lab-worker2"]
    cp = nodes[0]
    assert [a.address for a in cp.status.addresses if a.type == "InternalIP"] == ["172.18.0.2"]
    assert cp.spec.pod_cidrs == ["10.244.0.0/24"]
    assert [n.spec.pod_cidr for n in nodes] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert {c.type: c.status for c in cp.status.conditions}["Ready"] == "True"
    assert cp.spec.taints[0].key == "node-role.kubernetes.io/control-plane"


def test_pods_by_label_and_node(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    agents = _agent_pods(core)
    assert sorted(p.spec.node_name for p in agents) == ["lab-control-plane", "lab-worker", "lab-worker2"]
    assert all(p.spec.containers[0].name == "cilium-agent" for p in agents)
    assert all(p.status.phase == "Running" and p.status.pod_ip == p.status.host_ip for p in agents)
    on_worker = core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium",
                                         field_selector="spec.nodeName=lab-worker").items
    assert [p.spec.node_name for p in on_worker] == ["lab-worker"]
    set_based = core.list_namespaced_pod("kube-system", label_selector="k8s-app in (cilium, kube-dns)").items
    assert len(set_based) == 5
    none = core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium,!k8s-app").items
    assert none == []


def test_bad_selector_is_a_400_status(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).list_namespaced_pod("kube-system", field_selector="spec.bogus=1")
    assert exc.value.status == 400
    assert "field label not supported" in json.loads(exc.value.body)["message"]


def test_endpoint_slices_of_default_services(api: client.ApiClient) -> None:
    slices = client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces().items
    by_svc = {s.metadata.labels["kubernetes.io/service-name"]: s for s in slices}
    assert by_svc["kubernetes"].endpoints[0].addresses == ["172.18.0.2"]
    assert by_svc["kubernetes"].ports[0].port == 6443
    dns = by_svc["kube-dns"]
    assert dns.address_type == "IPv4"
    assert len(dns.endpoints) == 2 and all(e.conditions.ready for e in dns.endpoints)
    assert sorted(p.name for p in dns.ports) == ["dns", "dns-tcp", "metrics"]
    svcs = {s.metadata.name: s for s in client.CoreV1Api(api).list_service_for_all_namespaces().items}
    assert svcs["kubernetes"].spec.cluster_ip == "10.96.0.1"
    assert svcs["kube-dns"].spec.cluster_ip == "10.96.0.10"


def test_workloads_and_cilium_objects(api: client.ApiClient, sim: SimHandle) -> None:
    cluster = Cluster(sim.kubeconfig)
    ds = cluster.daemon_set("kube-system", "cilium")
    assert ds is not None and ds.status.desired_number_scheduled == 3 and ds.status.number_ready == 3
    op = cluster.deployment("kube-system", "cilium-operator")
    assert op is not None and op.status.ready_replicas == op.spec.replicas
    cm = cluster.config_map("kube-system", "cilium-config")
    assert cm is not None and cm["routing-mode"] == "tunnel" and cm["tunnel-protocol"] == "vxlan"
    cns = {n["metadata"]["name"]: n for n in cluster.cilium_nodes()}
    assert cns["lab-worker"]["spec"]["ipam"]["podCIDRs"] == ["10.244.1.0/24"]
    assert cluster.ping() == "v1.33.1"


def test_exec_with_kubernetes_stream_unchanged(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    pod = _agent_pods(core)[0]
    out = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, "kube-system",
                 container="cilium-agent", command=["cilium-dbg", "status", "-o", "json"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    status = json.loads(out)
    assert status["cilium"]["state"] == "Ok"
    assert status["cluster"]["self"] == pod.spec.node_name
    resp = stream(core.connect_get_namespaced_pod_exec, pod.metadata.name, "kube-system",
                  container="cilium-agent", command=["cilium-dbg", "status", "--brief"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 0
    assert resp.read_stdout() == "OK\n"


def test_cluster_exec_reports_exit_codes_and_runtime_errors(sim: SimHandle) -> None:
    cluster = Cluster(sim.kubeconfig)
    pod = cluster.pods("kube-system", "k8s-app=cilium", "spec.nodeName=lab-worker")[0].metadata.name
    ok = cluster.exec("kube-system", pod, "cilium-agent", ["cilium", "bpf", "tunnel", "list"])
    assert ok.exit_code == 0 and ok.stdout.startswith("TUNNEL")
    bad = cluster.exec("kube-system", pod, "cilium-agent", ["cilium-dbg", "frobnicate"])
    assert bad.exit_code == 1
    assert 'unknown command "frobnicate"' in bad.stderr
    assert "non-zero exit code" in bad.reason
    missing = cluster.exec("kube-system", pod, "cilium-agent", ["tcpdump", "-i", "any"])
    assert missing.exit_code == -1
    assert 'exec: "tcpdump": executable file not found in $PATH' in missing.reason


def test_exec_into_unknown_container_is_refused_like_the_api(sim: SimHandle) -> None:
    from cilium_labs.errors import ClusterError

    cluster = Cluster(sim.kubeconfig)
    pod = cluster.pods("kube-system", "k8s-app=cilium")[0].metadata.name
    with pytest.raises(ClusterError, match=f"container nope is not valid for pod {pod}"):
        cluster.exec("kube-system", pod, "nope", ["cilium", "status"])
    with pytest.raises(ClusterError, match="400"):
        cluster.exec("kube-system", pod, "nope", ["cilium", "status"])
    with pytest.raises(ClusterError, match="not found"):
        cluster.exec("kube-system", "cilium-gone", "cilium-agent", ["cilium", "status"])


def _raw(sim: SimHandle, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cadata=sim.server.pki.ca_pem.decode())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(sim.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unauthenticated_requests_get_401_status(sim: SimHandle) -> None:
    for token in (None, "wrong"):
        code, body = _raw(sim, "/api/v1/nodes", token)
        assert code == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_unknown_paths_and_objects_get_404_status(sim: SimHandle, api: client.ApiClient) -> None:
    for path in ("/api/v1/frobs", "/apis/example.com/v1/things", "/nope", "/api/v1/namespaces/default/pods/x/y/z"):
        code, body = _raw(sim, path, sim.token)
        assert code == 404, path
        assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).read_namespaced_pod("missing", "default")
    assert exc.value.status == 404
    assert json.loads(exc.value.body)["message"] == 'pods "missing" not found'


def test_discovery_for_kubectl_and_the_client(sim: SimHandle) -> None:
    code, apis = _raw(sim, "/apis", sim.token)
    assert code == 200 and {g["name"] for g in apis["groups"]} >= {"apps", "discovery.k8s.io", "cilium.io"}
    code, core = _raw(sim, "/api/v1", sim.token)
    assert {"pods", "nodes", "services", "pods/exec"} <= {r["name"] for r in core["resources"]}
    code, version = _raw(sim, "/version", sim.token)
    assert version["gitVersion"] == "v1.33.1"


def test_create_and_delete_workloads_reflected_in_reads(api: client.ApiClient, sim: SimHandle) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": "t1"}})
    labels = {"app": "echo"}
    apps.create_namespaced_deployment("t1", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "echo", "image": "echo:1", "ports": [{"containerPort": 8080,
                                                                                   "name": "http"}]}]}}}})
    svc = core.create_namespaced_service("t1", {"metadata": {"name": "echo"}, "spec": {
        "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    assert svc.spec.cluster_ip.startswith("10.96.") and svc.spec.cluster_ip not in ("10.96.0.1", "10.96.0.10")
    sim.wait_ready()
    pods = core.list_namespaced_pod("t1", label_selector="app=echo").items
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
    assert {p.spec.node_name for p in pods} == {"lab-worker", "lab-worker2"}  # spread, control plane tainted
    dep = apps.read_namespaced_deployment("echo", "t1")
    assert dep.status.ready_replicas == 2
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice("t1").items
    assert sorted(e.addresses[0] for e in slices[0].endpoints) == sorted(p.status.pod_ip for p in pods)
    assert slices[0].ports[0].port == 8080
    cluster = Cluster(sim.kubeconfig)
    agent = cluster.pods("kube-system", "k8s-app=cilium", "spec.nodeName=lab-control-plane")[0].metadata.name
    table = cluster.exec("kube-system", agent, "cilium-agent", ["cilium-dbg", "service", "list"]).stdout
    assert f"{svc.spec.cluster_ip}:80" in table
    for p in pods:
        assert f"{p.status.pod_ip}:8080 (active)" in table
    core.delete_namespaced_pod(pods[0].metadata.name, "t1")  # the ReplicaSet replaces it
    again = core.list_namespaced_pod("t1", label_selector="app=echo").items
    assert len(again) == 2 and pods[0].metadata.name not in {p.metadata.name for p in again}
    with pytest.raises(ApiException) as exc:
        core.create_namespace({"metadata": {"name": "t1"}})
    assert exc.value.status == 409
    core.delete_namespace("t1")
    assert core.list_namespaced_pod("t1").items == []
    assert all(s.metadata.namespace != "t1" for s in core.list_service_for_all_namespaces().items)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("t1", {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i"}]}})
    assert exc.value.status == 404


def test_api_flaky_answers_500_or_429_with_status(sim: SimHandle) -> None:
    cfg = client.Configuration()
    config.load_kube_config(str(sim.kubeconfig), client_configuration=cfg)
    cfg.retries = 0  # see the server's answer, not the client's retry
    api = client.ApiClient(cfg)
    sim.set_faults(["api-flaky:1.0"])
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).list_node()
    assert exc.value.status in (429, 500)
    assert json.loads(exc.value.body)["kind"] == "Status"
    sim.set_faults(["api-flaky:0"], replace=True)
    assert client.CoreV1Api(api).list_node().items


def test_agent_down_fails_exec_and_readiness(sim: SimHandle, api: client.ApiClient) -> None:
    from cilium_labs.errors import ClusterError

    sim.set_faults(["agent-down:worker2"])
    cluster = Cluster(sim.kubeconfig)
    pod = cluster.pods("kube-system", "k8s-app=cilium", "spec.nodeName=lab-worker2")[0]
    assert pod.status.container_statuses[0].ready is False
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    ds = cluster.daemon_set("kube-system", "cilium")
    assert ds.status.number_ready == 2 and ds.status.number_unavailable == 1
    with pytest.raises(ClusterError, match='container not found'):
        cluster.exec("kube-system", pod.metadata.name, "cilium-agent", ["cilium-dbg", "status"])
    other = cluster.pods("kube-system", "k8s-app=cilium", "spec.nodeName=lab-worker")[0].metadata.name
    health = json.loads(cluster.exec("kube-system", other, "cilium-agent",
                                     ["cilium-health", "status", "-o", "json"]).stdout)
    down = next(n for n in health["nodes"] if n["name"] == "lab-worker2")
    assert down["health-endpoint"]["primary-address"]["http"]["status"] != ""
    assert "status" not in down["host"]["primary-address"]["icmp"]  # the host still answers ping


def test_exec_latency_and_agent_slow_are_awaited(sim: SimHandle) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    sim.server.sleep = record
    old = sim.server.exec_latency_ms
    try:
        sim.server.exec_latency_ms = 150
        sim.set_faults(["agent-slow:worker:2.5"])
        cluster = Cluster(sim.kubeconfig)
        for node in ("lab-control-plane", "lab-worker"):
            pod = cluster.pods("kube-system", "k8s-app=cilium", f"spec.nodeName={node}")[0].metadata.name
            assert cluster.exec("kube-system", pod, "cilium-agent", ["cilium", "version"]).exit_code == 0
    finally:
        sim.server.exec_latency_ms = old
        sim.server.sleep = __import__("asyncio").sleep
    assert waits == [pytest.approx(0.15), pytest.approx(2.65)]


def test_watch_streams_added_events(api: client.ApiClient) -> None:
    from kubernetes import watch

    w = watch.Watch()
    names = [e["object"].metadata.name for e in w.stream(client.CoreV1Api(api).list_node, timeout_seconds=1)]
    assert names[:3] == ["lab-control-plane", "lab-worker", "lab-worker2"]


def test_server_side_tables_for_kubectl(sim: SimHandle) -> None:
    ctx = ssl.create_default_context(cadata=sim.server.pki.ca_pem.decode())
    req = urllib.request.Request(sim.url + "/api/v1/nodes", headers={
        "Authorization": f"Bearer {sim.token}",
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        table = json.loads(resp.read())
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Status", "Roles"]
    assert table["rows"][0]["cells"][:3] == ["lab-control-plane", "Ready", "control-plane"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "lab-control-plane"


# -- exec over SPDY/3.1, driven by a client written from client-go's remotecommand (v0.36.3 spdy.go, v2.go/v4.go):
# one SYN_STREAM per std stream (error first), each waiting for its SYN_REPLY; stdin sent then FIN'd; then read
# until the server's GOAWAY. The Go client itself runs in tests/integration/sim/test_real_clients.py.

ALL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


class _SpdyExec:
    def __init__(self, status: int, headers: dict[str, list[str]], body: bytes = b"") -> None:
        self.status, self.headers, self.body = status, headers, body
        self.data: dict[str, bytes] = {}
        self.fin: set[str] = set()
        self.frames: list[spdy.Frame] = []


def _spdy_exec(sim: SimHandle, argv: list[str], *, stdin: bytes | None = None, tty: bool = False,
               protocols: tuple[str, ...] = ALL_PROTOCOLS, upgrade: str = "SPDY/3.1") -> _SpdyExec:
    import socket
    import urllib.parse

    pod = next(p["metadata"]["name"] for p in sim.cluster._objects("pods", "kube-system")
               if p["metadata"]["name"].startswith("cilium-") and p["spec"].get("nodeName") == "lab-worker"
               and "operator" not in p["metadata"]["name"])
    query = urllib.parse.urlencode([("command", a) for a in argv] + [
        ("container", "cilium-agent"), ("stdin", str(stdin is not None).lower()), ("stdout", "true"),
        ("stderr", "true"), ("tty", str(tty).lower())])
    ctx = ssl.create_default_context(cadata=sim.server.pki.ca_pem.decode())
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", sim.server.port), timeout=10),
                           server_hostname="127.0.0.1")
    head = (f"POST /api/v1/namespaces/kube-system/pods/{pod}/exec?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {sim.token}\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\n"
            + "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols) + "Content-Length: 0\r\n\r\n")
    sock.sendall(head.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response"
        buf += chunk
    raw, buf = buf.split(b"\r\n\r\n", 1)
    lines = raw.decode().split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    result = _SpdyExec(int(lines[0].split()[1]), headers)
    if result.status != 101:
        length = int(headers.get("content-length", ["0"])[0])
        while len(buf) < length:
            buf += sock.recv(65536)
        result.body = buf
        sock.close()
        return result
    comp, reader = spdy.HeaderCompressor(), spdy.FrameReader()
    pending = list(reader.feed(buf))

    def next_frame() -> spdy.Frame | None:
        while not pending:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            pending.extend(reader.feed(chunk))
        return pending.pop(0)

    kinds = ["error"] + (["stdin"] if stdin is not None else []) + ["stdout"] + ([] if tty else ["stderr"]) + (
        ["resize"] if tty else [])
    ids = {}
    for i, kind in enumerate(kinds):
        ids[2 * i + 1] = kind
        sock.sendall(spdy.syn_stream(comp, 2 * i + 1, {"streamType": [kind]}))
        reply = next_frame()
        assert isinstance(reply, spdy.ControlFrame) and reply.type == spdy.SYN_REPLY and reply.stream_id == 2 * i + 1
    if stdin is not None:
        sid = next(k for k, v in ids.items() if v == "stdin")
        sock.sendall(spdy.data_frames(sid, stdin, fin=True))
    while (frame := next_frame()) is not None:
        result.frames.append(frame)
        if isinstance(frame, spdy.DataFrame):
            kind = ids[frame.stream_id]
            result.data[kind] = result.data.get(kind, b"") + frame.data
            if frame.fin:
                result.fin.add(kind)
        elif frame.type == spdy.GOAWAY:
            break
    sock.close()
    return result


def test_spdy_exec_negotiates_v4_and_streams_like_the_kubelet(sim: SimHandle) -> None:
    from cilium_labs.sim import formats

    res = _spdy_exec(sim, ["cilium-dbg", "version"])
    assert res.status == 101
    assert res.headers["upgrade"] == ["SPDY/3.1"] and res.headers["connection"] == ["Upgrade"]
    assert res.headers["x-stream-protocol-version"] == ["v4.channel.k8s.io"]  # client-go offers v5 first
    assert "transfer-encoding" not in res.headers and "content-length" not in res.headers  # nothing HTTP follows
    assert res.data["stdout"].decode() == formats.version_text((1, 16, 19), daemon_up=True)
    assert json.loads(res.data["error"]) == {"metadata": {}, "status": "Success"}
    assert res.fin == {"stdout", "stderr", "error"} and res.data["stderr"] == b""  # each closed, as Stream.Close
    last = res.frames[-1]
    assert isinstance(last, spdy.ControlFrame) and last.type == spdy.GOAWAY
    assert sim.server.exec_protocols["spdy/v4.channel.k8s.io"] >= 1


def test_spdy_exec_exit_code_and_stderr(sim: SimHandle) -> None:
    res = _spdy_exec(sim, ["cilium-dbg", "bogus"])
    status = json.loads(res.data["error"])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "1"}]
    assert res.data["stderr"].startswith(b'Error: unknown command "bogus"')
    assert json.loads(_spdy_exec(sim, ["false"]).data["error"])["details"]["causes"][0]["message"] == "1"


def test_spdy_exec_stdin_and_large_output(sim: SimHandle) -> None:
    payload = b"".join(b"line %d\n" % i for i in range(20000))
    assert _spdy_exec(sim, ["cat"], stdin=payload).data["stdout"] == payload
    big = _spdy_exec(sim, ["seq", "1", "200000"])
    assert big.data["stdout"] == b"".join(b"%d\n" % i for i in range(1, 200001))
    assert max(len(f.data) for f in big.frames if isinstance(f, spdy.DataFrame)) <= spdy.CHUNK


def test_spdy_exec_older_protocols_write_the_status_as_text(sim: SimHandle) -> None:
    # cri-streaming remotecommand/httpstream.go: v2 and v3 use v1WriteStatusFunc (the message, nothing on success)
    ok = _spdy_exec(sim, ["true"], protocols=("v3.channel.k8s.io", "v2.channel.k8s.io"))
    assert ok.headers["x-stream-protocol-version"] == ["v3.channel.k8s.io"]
    assert ok.data.get("error", b"") == b""
    bad = _spdy_exec(sim, ["false"], protocols=("v2.channel.k8s.io",))
    assert bad.data["error"].startswith(b"command terminated with non-zero exit code")


def test_spdy_exec_with_a_tty_opens_resize_instead_of_stderr(sim: SimHandle) -> None:
    res = _spdy_exec(sim, ["cilium-dbg", "bogus"], tty=True)
    assert "stderr" not in res.data
    assert json.loads(res.data["error"])["reason"] == "NonZeroExitCode"


def test_spdy_exec_refuses_what_the_kubelet_refuses(sim: SimHandle) -> None:
    res = _spdy_exec(sim, ["true"], protocols=("v5.channel.k8s.io",))
    assert res.status == 403
    assert res.headers["x-accepted-stream-protocol-versions"] == [
        "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
    assert b"unable to negotiate protocol" in res.body
    assert _spdy_exec(sim, ["true"], protocols=()).status == 400
    plain = _spdy_exec(sim, ["true"], upgrade="h2c")
    assert plain.status == 400 and json.loads(plain.body)["message"] == "Upgrade request required"


def test_exec_with_a_tty_prints_through_a_terminal(sim: SimHandle) -> None:
    res = _spdy_exec(sim, ["cilium-dbg", "bogus"], tty=True)
    assert res.data["stdout"].startswith(b'Error: unknown command "bogus" for "cilium-dbg"\r\n')
