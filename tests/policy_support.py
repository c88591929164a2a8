"""Client helpers for the policy attack tests (issue 13): CSRs of any shape, posted over TLS."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_harness import Reply, RunningServer, basic, build_request, https, write_credentials
from python_est.oids import ID_KP_CMC_RA

PASSWORD = "a long enough password"
EST = "/.well-known/est"
CN = NameOID.COMMON_NAME

CONFIG = """
[label:ra]
extended_key_usage = clientAuth, serverAuth, cmcRA
validity_days = 3650
[label:ra-renew]
extended_key_usage = clientAuth, cmcRA
reenroll_from = ""
[label:iot]
validity_days = 30
[label:held]
approval = manual
reenroll_from = ""
[label:corp]
subject_attributes = serialNumber
subject_fixed = O=Example Corp, C=DE
"""


def policy_server(start: Callable[[str], RunningServer]) -> RunningServer:
    """A server with the labels above and the password users device1 and straße."""
    running = start(CONFIG)
    assert running.state.users is not None
    for user in ("device1", "straße"):
        running.state.users.add(user, PASSWORD)
    return running


def der_csr(
    subject: x509.Name | Sequence[x509.RelativeDistinguishedName],
    key: ec.EllipticCurvePrivateKey | None = None,
    sans: Sequence[x509.GeneralName] = (),
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = subject if isinstance(subject, x509.Name) else x509.Name(list(subject))
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER), key


def cn(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(CN, value)])


def post(
    server: RunningServer,
    path: str,
    der: bytes,
    *,
    user: str | None = None,
    client: tuple[Path, Path] | None = None,
) -> Reply:
    headers = {"Content-Type": "application/pkcs10"}
    if user is not None:
        headers["Authorization"] = basic(user, PASSWORD)
    raw = build_request("POST", f"{EST}/{path}", base64.b64encode(der), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file, client_cert=client)


def enroll_user(server: RunningServer, user: str, subject: x509.Name, path: str = "") -> Reply:
    der, _ = der_csr(subject)
    return post(server, f"{path}simpleenroll", der, user=user)


def issued_to(
    server: RunningServer, tmp: Path, user: str, name: str, path: str = ""
) -> tuple[x509.Certificate, tuple[Path, Path]]:
    """Enroll `user` for CN=`name` with Basic; the certificate and its credential files."""
    der, key = der_csr(cn(name))
    reply = post(server, f"{path}simpleenroll", der, user=user)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert, write_credentials(tmp, f"{user}-{cert.serial_number}", cert, key)


def refused(reply: Reply, status: int, *phrases: str) -> str:
    text = reply.body.decode()
    assert reply.status == status, text
    for phrase in phrases:
        assert phrase in text, text
    return text


def held_id(reply: Reply) -> str:
    text = refused(reply, 202, "awaits approval")
    return text.split()[1]


def ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def cmc_ra_certificates(server: RunningServer) -> list[int]:
    found = []
    for entry in server.state.ledger.list_certificates(limit=1000):
        cert = x509.load_pem_x509_certificate(entry.pem.encode())
        if ID_KP_CMC_RA in ekus(cert):
            found.append(entry.serial)
    return found
