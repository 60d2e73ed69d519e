"""terraform/gcp read with python-hcl2: the firewall rules, their ports and tags, labels, outputs, versions.

The google provider cannot be downloaded where tests run, so ``terraform validate`` cannot check this module;
its structure is asserted here instead (``terraform fmt -check`` and the variable rules run with the real
binary in tests/integration/test_terraform_real.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is a test dependency (pip install python-hcl2)")

REPO = Path(__file__).resolve().parents[3]
MODULE = REPO / "terraform" / "gcp"
STANDIN = REPO / "tests" / "data" / "terraform" / "gcp-standin"


def _load(path: Path) -> dict[str, Any]:
    opts = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    return dict(hcl2.loads(path.read_text(), serialization_options=opts))


def _module(directory: Path) -> dict[str, Any]:
    """All .tf files of a module merged: resources by (type, name), variables, outputs, locals."""
    out: dict[str, Any] = {"resource": {}, "variable": {}, "output": {}, "locals": {}, "terraform": [], "provider": []}
    for tf in sorted(directory.glob("*.tf")):
        data = _load(tf)
        for item in data.get("resource", []):
            for rtype, named in item.items():
                for rname, body in named.items():
                    out["resource"][(rtype, rname)] = body
        for key in ("variable", "output"):
            for item in data.get(key, []):
                out[key].update(item)
        for item in data.get("locals", []):
            out["locals"].update(item)
        out["terraform"] += data.get("terraform", [])
        out["provider"] += data.get("provider", [])
    return out


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return _module(MODULE)


def _firewalls(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for (rtype, name), body in module["resource"].items() if rtype == "google_compute_firewall"}


def _ports(rule: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["protocol"], p) for a in rule["allow"] for p in a.get("ports", ["*"])}


def test_between_node_rules_are_scoped_by_tags(module: dict[str, Any]) -> None:
    fw = _firewalls(module)
    node, cp = "${local.tag_node}", "${local.tag_control_plane}"
    assert _ports(fw["cilium"]) == {("udp", "8472"), ("udp", "6081"), ("tcp", "4240"), ("tcp", "4244"), ("icmp", "*")}
    assert _ports(fw["kubelet"]) == {("tcp", "10250")}
    assert _ports(fw["apiserver_internal"]) == {("tcp", "6443")}
    assert _ports(fw["etcd"]) == {("tcp", "2379-2380")}
    for name in ("cilium", "kubelet", "apiserver_internal", "etcd"):
        rule = fw[name]
        assert rule["source_tags"] == [node], name
        assert "source_ranges" not in rule, f"{name} must be scoped by tags, not addresses"
        assert rule["direction"] == "INGRESS"
    assert fw["cilium"]["target_tags"] == [node] and fw["kubelet"]["target_tags"] == [node]
    assert fw["apiserver_internal"]["target_tags"] == [cp] and fw["etcd"]["target_tags"] == [cp]


def test_etcd_ports_only_with_external_etcd(module: dict[str, Any]) -> None:
    assert _firewalls(module)["etcd"]["count"] == "${var.external_etcd ? 1 : 0}"
    assert module["variable"]["external_etcd"]["default"] is False


def test_admin_rules_open_only_ssh_and_api_to_the_admin_ranges(module: dict[str, Any]) -> None:
    fw = _firewalls(module)
    admin = {n: r for n, r in fw.items() if "source_ranges" in r}
    assert set(admin) == {"admin_ssh", "admin_api"}
    assert _ports(admin["admin_ssh"]) == {("tcp", "22")}
    assert _ports(admin["admin_api"]) == {("tcp", "6443")}
    assert admin["admin_api"]["target_tags"] == ["${local.tag_control_plane}"]
    for rule in admin.values():
        assert rule["source_ranges"] == "${var.admin_source_ranges}"
        pre = rule["lifecycle"][0]["precondition"][0]
        assert "var.allow_world" in pre["condition"] and 'endswith(c, "/0")' in pre["condition"]
    assert "default" not in module["variable"]["admin_source_ranges"], "no default: never open by accident"
    assert module["variable"]["allow_world"]["default"] is False


def _values(node: Any, skip: frozenset[str] = frozenset({"description", "error_message"})) -> list[str]:
    """Every string that is configuration (not a description, message or comment)."""
    if isinstance(node, dict):
        return [v for k, val in node.items() if k not in skip and not k.startswith("__") for v in _values(val)]
    if isinstance(node, list):
        return [v for item in node for v in _values(item)]
    return [str(node)]


def test_no_world_open_range_anywhere() -> None:
    for tf in MODULE.glob("*.tf"):
        for value in _values(_load(tf)):
            assert "0.0.0.0/0" not in value and "::/0" not in value, (tf.name, value)


def test_instances_carry_the_lab_labels_and_the_bootstrap(module: dict[str, Any]) -> None:
    inst = module["resource"][("google_compute_instance", "node")]
    assert inst["labels"] == "${local.labels}"
    labels = module["locals"]["labels"]
    assert '"cilium-labs" = var.lab_name' in labels and '"expires" = tostring(var.expires_at)' in labels
    assert labels.startswith("${merge(var.labels,"), "module labels must win over user labels"
    assert inst["boot_disk"][0]["initialize_params"][0]["labels"] == "${local.labels}"
    assert "${local.tag_node}" in inst["tags"]
    meta = inst["metadata"]
    assert '"startup-script" = templatefile(' in meta and "file(local.bootstrap_path)" in meta
    assert '"block-project-ssh-keys" = "true"' in meta
    assert "service_account" not in inst
    assert inst["network_interface"][0]["network_ip"] == "${each.value.ip}"
    assert module["variable"]["expires_at"].get("default") is None


def test_network_and_node_defaults(module: dict[str, Any]) -> None:
    from cilium_labs.backends.gcp import GcpBackend
    from cilium_labs.spec import GcpOptions, LabSpec

    var = module["variable"]
    assert var["node_cidr"]["default"] == "172.16.0.0/24"
    assert var["network_mtu"]["default"] == GcpBackend.recommended_mtu() == 1460
    net = module["resource"][("google_compute_network", "lab")]
    assert net["auto_create_subnetworks"] is False and net["mtu"] == "${var.network_mtu}"
    assert net["description"].startswith("cilium-labs lab ")  # gc's proof that a network is ours
    assert module["resource"][("google_compute_address", "api")]["description"].startswith("cilium-labs lab ")
    # defaults agree with the spec's, so a hand-applied module builds what cilium-labs would
    spec, opts = LabSpec(), GcpOptions()
    assert var["machine_type"]["default"] == opts.machine_type
    assert var["image"]["default"] == opts.image
    assert var["region"]["default"] == opts.region and var["zone"]["default"] == opts.zone
    assert var["k8s_version"]["default"] == spec.k8s_version
    assert var["pod_cidrs"]["default"] == list(spec.pod_cidrs)
    assert var["service_cidrs"]["default"] == list(spec.service_cidrs)
    assert var["control_planes"]["default"] == spec.control_planes and var["workers"]["default"] == spec.workers
    image = var["image"]["default"]
    assert re.match(r"^(debian-cloud/debian-(1[2-9])|ubuntu-os-cloud/ubuntu-(2[2-9]|[3-9]\d)\d\d)", image)


def test_outputs(module: dict[str, Any]) -> None:
    assert set(module["output"]) == {"nodes", "ssh_user", "control_plane_address", "api_server_external_ip"}
    nodes = module["output"]["nodes"]["value"]
    for key in ("name = n.name", "role = n.role", "internal_ip =", "external_ip ="):
        assert key in nodes


def test_provider_pinned_and_no_credentials(module: dict[str, Any]) -> None:
    tf = module["terraform"][0]
    assert tf["required_version"] == ">= 1.5"
    google = tf["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", google["version"]), "a pessimistic major pin the lock file can satisfy"
    provider = module["provider"][0]["google"]
    assert "credentials" not in provider and "access_token" not in provider
    for tf_file in MODULE.iterdir():
        text = tf_file.read_text()
        assert "BEGIN PRIVATE KEY" not in text and '"private_key"' not in text


def test_standin_has_the_same_variables_and_outputs(module: dict[str, Any]) -> None:
    standin = _module(STANDIN)
    real_vars = module["variable"]
    extra = set(standin["variable"]) - set(real_vars)
    assert set(real_vars) <= set(standin["variable"])
    assert all(name.startswith("standin_") for name in extra), extra
    for name, body in real_vars.items():
        other = standin["variable"][name]
        assert other.get("type") == body.get("type"), name
        assert other.get("default") == body.get("default"), name
        assert other.get("validation") == body.get("validation"), name
    assert set(standin["output"]) == set(module["output"])
    # the stand-in names and numbers nodes exactly as the real module does
    for key in ("cp_names", "worker_names", "node_list", "control_plane_address", "labels"):
        assert standin["locals"][key] == module["locals"][key], key


def test_startup_template_runs_the_bootstrap_from_metadata() -> None:
    text = (MODULE / "startup.sh.tftpl").read_text()
    assert "computeMetadata/v1/instance/attributes/cilium-labs-bootstrap" in text
    assert "Metadata-Flavor: Google" in text
    assert text.rstrip().endswith("exec /opt/cilium-labs/kubeadm-node.sh ${args}")
    # the only template interpolation is the quoted argument list
    assert re.findall(r"(?<!\$)\$\{[^}]*\}", text) == ["${args}"]
