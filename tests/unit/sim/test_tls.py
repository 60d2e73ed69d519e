"""The throw-away PKI: a CA the kubeconfig carries, a server certificate for loopback, private files."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import yaml
from cryptography import x509

from cilium_labs.sim.tls import kubeconfig_text, make_pki, write_private


def test_server_certificate_is_signed_by_the_ca_for_loopback() -> None:
    pki = make_pki(("127.0.0.1", "localhost"))
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    cert = x509.load_pem_x509_certificate(pki.cert_pem)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert len(pki.token) >= 32 and pki.token != make_pki().token
    assert pki.server_context() is not None


def test_kubeconfig_in_kind_shape(tmp_path: Path) -> None:
    pki = make_pki()
    doc = yaml.safe_load(kubeconfig_text(pki, "https://127.0.0.1:1234", "lab"))
    assert doc["current-context"] == "kind-lab"
    assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == pki.ca_pem
    assert doc["users"][0]["user"] == {"token": pki.token}


def test_write_private_is_0600_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "kubeconfig"
    write_private(path, "one")
    path.chmod(0o644)
    write_private(path, "two")
    assert path.read_text() == "two" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["kubeconfig"]
