"""A server that terminates mTLS itself: the verified client certificate's SPIFFE ID is the workload."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fleetdeck.auth.policy import AccessPolicy
from fleetdeck.mtls import uvicorn_tls_options
from fleetdeck.server import FleetServer
from fleetdeck.settings import FleetdeckSettings
from fleetdeck_testkit.http import free_port, serving
from fleetdeck_testkit.identity import TestIssuer
from fleetdeck_testkit.servers import DEMO_INFO, add_whoami

PLANNER = "spiffe://example.org/ns/agents/sa/planner"


@dataclass
class Authority:
    """A throwaway CA that issues PEM files into ``folder``."""

    folder: Path
    name: str

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.certificate = self._builder(subject, self.key.public_key(), ca=True).sign(
            self.key, hashes.SHA256()
        )
        self.bundle = self._write(
            f"{self.name}-ca.pem", self.certificate.public_bytes(serialization.Encoding.PEM)
        )

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *, ca: bool
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        issuer = subject if ca else self.certificate.subject
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def issue(self, name: str, san: x509.GeneralName) -> tuple[Path, Path]:
        """A leaf certificate and key for ``san``, as (certfile, keyfile)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        leaf = (
            self._builder(subject, key.public_key(), ca=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return (
            self._write(f"{name}.pem", leaf.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{name}-key.pem", key_pem),
        )


@pytest.fixture
def mesh(tmp_path: Path) -> Authority:
    return Authority(tmp_path, "mesh")


@pytest.fixture
async def served(
    tmp_path: Path, mesh: Authority, test_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    monkeypatch.setenv("FLEETDECK_AUTH__ISSUER", test_issuer.issuer)
    monkeypatch.setenv("FLEETDECK_AUTH__JWKS_URL", test_issuer.jwks_url)
    monkeypatch.setenv("FLEETDECK_WORKLOAD__TRUST_DOMAINS", '["example.org"]')
    certfile, keyfile = mesh.issue("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    port = free_port()
    settings = FleetdeckSettings.load(
        data_dir=tmp_path,
        http={"port": port, "tls_certfile": certfile, "tls_keyfile": keyfile, "tls_client_ca": mesh.bundle},
    )
    server = FleetServer(
        DEMO_INFO, settings, access=AccessPolicy(business_groups=("*",), delegating_workloads=(PLANNER,))
    )

    add_whoami(server)

    async with serving(server.http_app(), port, **uvicorn_tls_options(settings.http)) as base:
        assert server.canonical_url() == f"{base}/mcp"
        assert base.startswith("https://")
        yield f"{base}/mcp"


def tls_client(url: str, token: str, mesh: Authority, cert: tuple[Path, Path] | None) -> httpx2.AsyncClient:
    context = ssl.create_default_context(cafile=mesh.bundle)
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx2.AsyncClient(verify=context, headers={"Authorization": f"Bearer {token}"})


async def test_the_client_certificates_spiffe_id_is_the_calling_workload(
    served: str, mesh: Authority, test_issuer: TestIssuer
) -> None:
    cert = mesh.issue("planner", x509.UniformResourceIdentifier(PLANNER))
    http = tls_client(served, test_issuer.mint("alice", ["ads"], audience=served), mesh, cert)
    async with Client(streamable_http_client(served, http_client=http)) as client:
        result = await client.call_tool("whoami", {})
    assert result.structured_content == {"result": f"{PLANNER} by mtls"}


@pytest.mark.parametrize("who", ["no certificate", "another authority"])
async def test_a_client_without_a_certificate_from_the_mesh_cannot_connect(
    served: str, mesh: Authority, test_issuer: TestIssuer, tmp_path: Path, who: str
) -> None:
    cert = None
    if who == "another authority":
        cert = Authority(tmp_path, "rogue").issue("intruder", x509.UniformResourceIdentifier(PLANNER))
    token = test_issuer.mint("alice", ["ads"], audience=served)
    async with tls_client(served, token, mesh, cert) as http:
        with pytest.raises(httpx2.TransportError):  # the TLS handshake fails: no request reaches the app
            await http.post(served, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})


def test_mtls_settings_must_be_complete(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="tls_client_ca needs tls_certfile"):
        FleetdeckSettings.load(data_dir=tmp_path, http={"tls_client_ca": tmp_path / "ca.pem"})
    with pytest.raises(Exception, match="tls_certfile and tls_keyfile go together"):
        FleetdeckSettings.load(data_dir=tmp_path, http={"tls_certfile": tmp_path / "cert.pem"})
