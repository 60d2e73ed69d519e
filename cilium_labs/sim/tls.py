"""Throw-away PKI for the simulated API server: a CA, a server certificate for 127.0.0.1, a bearer token.

The kubeconfig carries the CA and the token, so the real ``kubernetes`` client verifies TLS and authenticates
exactly as it does against a real cluster; nothing is ever written unencrypted-and-unauthenticated.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
import ssl
import tempfile
from pathlib import Path

import attrs
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..state import atomic_write


@attrs.frozen
class Pki:
    """PEM bytes of the CA certificate, the server certificate and its key, and the bearer token."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    token: str

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving the certificate (the stdlib wants files, so a private temp dir is used).

        Like kube-apiserver with kubeadm's ``apiserver.crt``, it serves the leaf certificate alone: clients
        trust the cluster CA from their kubeconfig. One session ticket per handshake is enough for clients that
        resume (each exec is a new connection)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.num_tickets = 1
        with tempfile.TemporaryDirectory(prefix="cilium-labs-sim-") as tmp:
            cert = Path(tmp) / "tls.crt"
            key = Path(tmp) / "tls.key"
            cert.write_bytes(self.cert_pem)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key_pem)
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """A fresh CA and a server certificate valid for ``hosts`` (IPs or DNS names), plus a random token.

    EC P-256 keys: generating RSA keys would cost most of a 200-node cluster's start-up time.
    """
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("cilium-labs-sim-ca"))
        .issuer_name(_name("cilium-labs-sim-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        token=secrets.token_urlsafe(32),
    )


def kubeconfig_text(pki: Pki, server: str, cluster_name: str) -> str:
    """A kubeconfig in the shape ``kind get kubeconfig`` writes (context ``kind-<name>``), with a token user."""
    ctx = f"kind-{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": ctx,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(pki.ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": ctx, "user": {"token": pki.token}}],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
        "current-context": ctx,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (atomically replaced)."""
    atomic_write(Path(path), text)
    return Path(path)
