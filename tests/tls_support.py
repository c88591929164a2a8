"""Shared pieces for the TLS server tests: a test PKI, an echo application and a running server.

The echo application is a real handler: it answers with what the server told it about the peer
(one `key=value` per line), so tests observe exactly what `EstService` would see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from python_est.ca import CertificateAuthority, certificate_pem, private_key_pem
from python_est.config import TlsConfig
from python_est.keys import KeyType
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.oids import ID_KP_CMC_RA
from python_est.policy import ClientChainValidator, PeerIdentity
from python_est.server import EstServer
from python_est.tls import TlsEndpoint
from python_est.users import UserStore

SRP_USER = "alice"
SRP_PASSWORD = "correct horse battery"


@dataclasses.dataclass(frozen=True)
class Credential:
    """A client certificate and key, also written as PEM files for command-line clients."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path


@dataclasses.dataclass(frozen=True)
class Pki:
    """The test CA, the server credentials and one client credential of each kind."""

    ca: CertificateAuthority
    ca_path: Path
    server_chain: tuple[x509.Certificate, ...]
    server_key: PrivateKeyTypes
    clients: dict[str, Credential]
    revoked: frozenset[int]

    def validator(self) -> ClientChainValidator:
        return ClientChainValidator(
            [self.ca.root],
            lambda serial: serial in self.revoked,
            intermediates=[self.ca.certificate],
        )


def _write(directory: Path, name: str, cert: x509.Certificate, key: object) -> Credential:
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(certificate_pem(cert))
    key_path.write_bytes(private_key_pem(key))  # type: ignore[arg-type]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Credential(cert, key, cert_path, key_path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _self_signed(
    common_name: str, not_before: datetime, days: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _expired(ca: CertificateAuthority) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    # The CA refuses to back-date past its own start, so sign an expired one by hand.
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.now(timezone.utc) - timedelta(days=10)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("expired-device"))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    return cert, key


def make_pki(directory: Path) -> Pki:
    """A CA (root and issuing CA), an RSA server certificate for 127.0.0.1, and client certs:
    valid, ra, revoked, expired, rogue (self-signed) and foreign (another CA)."""
    ca = CertificateAuthority.create(
        common_name="TLS Test CA", key_type=KeyType.EC_P256, validity_days=30, issuing_ca=True
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(certificate_pem(ca.root))
    server_cert, server_key = ca.issue_server_certificate(
        common_name="127.0.0.1",
        dns_names=["localhost"],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=KeyType.RSA_2048,
        validity_days=30,
    )
    foreign = CertificateAuthority.create(
        common_name="Foreign CA", key_type=KeyType.EC_P256, validity_days=30
    )
    made = {
        "valid": ca.issue_client_certificate(common_name="device-1"),
        "ra": ca.issue_client_certificate(
            common_name="ra-1",
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA),
        ),
        "revoked": ca.issue_client_certificate(common_name="revoked-device"),
        "expired": _expired(ca),
        "rogue": _self_signed("device-1", datetime.now(timezone.utc) - timedelta(hours=1), 30),
        "foreign": foreign.issue_client_certificate(common_name="device-1"),
    }
    # Leaf only in each file, as libest's client sends it: the server knows its issuing CA.
    clients = {name: _write(directory, name, *pair) for name, pair in made.items()}
    return Pki(
        ca=ca,
        ca_path=ca_path,
        server_chain=(server_cert, ca.certificate),
        server_key=server_key,
        clients=clients,
        revoked=frozenset({clients["revoked"].cert.serial_number}),
    )


def make_users(directory: Path) -> UserStore:
    users = UserStore.create(directory / "users.srp", reload_interval=None)
    users.add(SRP_USER, SRP_PASSWORD)
    return users


def echo(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
    """The test application: reports the request and the peer as `key=value` lines."""
    cert = peer.client_cert
    lines = {
        "method": request.method,
        "target": request.target,
        "body_length": str(len(request.body)),
        "body_sha256": hashlib.sha256(request.body).hexdigest(),
        "auth": peer.tls_auth.value,
        "srp_user": peer.srp_user or "",
        "version": peer.tls.version,
        "suite": peer.tls.cipher_suite,
        "resumed": str(peer.tls.resumed),
        "tls_unique": (peer.tls.tls_unique or b"").hex(),
        "cert_subject": cert.leaf.subject.rfc4514_string() if cert else "",
        "cert_valid": str(cert.valid) if cert else "",
        "cert_reason": cert.reason if cert else "",
        "cert_is_ra": str(cert.is_ra) if cert else "",
    }
    return text_response(200, "\n".join(f"{k}={v}" for k, v in lines.items()))


def parse_echo(body: bytes) -> dict[str, str]:
    text = body.decode("utf-8")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@contextlib.contextmanager
def running_server(
    pki: Pki,
    users: UserStore | None,
    *,
    params: TlsConfig | None = None,
    handler: Callable[[HttpRequest, PeerIdentity], HttpResponse] = echo,
    max_connections: int = 8,
    handshake_timeout: float = 5.0,
    request_timeout: float = 5.0,
    max_body_bytes: int = 65536,
) -> Iterator[EstServer]:
    """An `EstServer` on 127.0.0.1 with an ephemeral port, serving in a thread."""
    endpoint = TlsEndpoint(
        cert_chain=pki.server_chain,
        private_key=pki.server_key,
        verifier_db=None if users is None else users.srp_verifiers(),
        chain_validator=pki.validator(),
        params=params or TlsConfig(),
        client_ca_names=[pki.ca.root.subject],
    )
    server = EstServer(
        address="127.0.0.1",
        port=0,
        handshaker=endpoint,
        handler=handler,
        max_connections=max_connections,
        backlog=128,
        handshake_timeout=handshake_timeout,
        request_timeout=request_timeout,
        max_body_bytes=max_body_bytes,
    )
    thread = server.start_in_thread()
    try:
        yield server
    finally:
        server.shutdown(grace=2.0)
        thread.join(timeout=5)
