"""RFC 9908 prescribed values over real TLS: a password user (the low-privilege requester) who
deviates from a prescribed value is refused with the reason, and one who leaves the values out
cannot widen its certificate: with enforcement it is refused, without it the CA fills them in."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from est_harness import Reply, RunningServer, basic, build_request, csr_body, https
from python_est import oids, wire
from python_est.cli import main
from python_est.client import load_certificates, load_private_key

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password 1"
TEMPLATE = (
    "csrattrs = id-ecPublicKey=secp256r1\n"
    "csrattrs_subject = CN=*, OU=myDept, OU=myGroup\n"
    "csrattrs_extensions = subjectAltName = dns:www.myServer.com, ip:*; "
    "keyUsage = critical, digitalSignature, keyAgreement; extKeyUsage = *\n"
)
PRESCRIBED = TEMPLATE + "password_subjects = any\n"
CONFIG = (
    f"[label:tpl]\nenforce_csrattrs = yes\n{PRESCRIBED}\n"
    f"[label:fill]\nenforce_csrattrs = no\n{PRESCRIBED}\n"
    f"[label:own]\nenforce_csrattrs = yes\npassword_subjects = own\n{TEMPLATE}"
)
KEY_USAGE_DER = bytes.fromhex("03020388")  # digitalSignature, keyAgreement
OU = NameOID.ORGANIZATIONAL_UNIT_NAME


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD, group_bits=2048, allowed_names=[USER, "192.0.2.7"])
    return running


def enroll(server: RunningServer, label: str, csr: x509.CertificateSigningRequest) -> Reply:
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    path = f"/.well-known/est/{label}/simpleenroll"
    raw = build_request("POST", path, csr_body(csr), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file)


def csr(
    *,
    subject: tuple[tuple[x509.ObjectIdentifier, str], ...] = (
        (NameOID.COMMON_NAME, "device-1"),
        (OU, "myDept"),
        (OU, "myGroup"),
    ),
    names: tuple[x509.GeneralName, ...] = (
        x509.DNSName("www.myServer.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
    ),
    usage: bool | None = True,
    eku: bool = True,
) -> x509.CertificateSigningRequest:
    """A CSR that follows the template, unless told to deviate."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in subject])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    if usage is not None:
        bits = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=not usage,
            data_encipherment=False,
            key_agreement=usage,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(bits, critical=True)
    if eku:
        clients = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(clients, critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def test_template_is_served_over_tls(server: RunningServer) -> None:
    raw = build_request("GET", "/.well-known/est/tpl/csrattrs", port=server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200
    items = wire.decode_csrattrs(wire.decode_base64_der(reply.body, "csrattrs"))
    template = items[-1]
    assert isinstance(template, wire.CsrAttribute)
    assert template.oid == oids.CERTIFICATION_REQUEST_INFO_TEMPLATE.dotted_string


def test_following_the_template_is_issued(server: RunningServer) -> None:
    reply = enroll(server, "tpl", csr())
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.public_bytes() == KEY_USAGE_DER


@pytest.mark.parametrize(
    ("deviation", "reason"),
    [
        ({"usage": None}, b"missing extension keyUsage"),
        ({"usage": False}, b"keyUsage must carry exactly the value"),
        ({"eku": False}, b"missing extension extKeyUsage"),
        ({"names": (x509.DNSName("www.myServer.com"),)}, b"needs a ip name filled in"),
        ({"names": (x509.DNSName("admin.example"),)}, b"lacks 1 name"),
        (
            {"subject": ((NameOID.COMMON_NAME, "d"), (OU, "myDept"), (OU, "admins"))},
            b"must be 'myGroup'",
        ),
        (
            {"subject": ((NameOID.COMMON_NAME, "d"), (OU, "myDept"))},
            b"subject needs 2",
        ),
        (
            {
                "subject": (
                    (NameOID.COMMON_NAME, "d"),
                    (OU, "myDept"),
                    (OU, "myGroup"),
                    (NameOID.ORGANIZATION_NAME, "Admins"),
                )
            },
            b"the template 0",
        ),
    ],
)
def test_each_deviation_is_refused_with_its_reason(
    server: RunningServer, deviation: dict[str, object], reason: bytes
) -> None:
    reply = enroll(server, "tpl", csr(**deviation))  # type: ignore[arg-type]
    assert reply.status == 400
    assert reason in reply.body


def test_omitting_prescribed_values_does_not_widen_the_certificate(server: RunningServer) -> None:
    bare = csr(subject=((NameOID.COMMON_NAME, "device-2"),), names=(), usage=None, eku=False)
    # Enforced: refused, naming what is missing.
    refused = enroll(server, "tpl", bare)
    assert refused.status == 400 and b"missing extension keyUsage" in refused.body
    # Not enforced: issued, but with every prescribed value filled in by the CA.
    reply = enroll(server, "fill", bare)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert [a.value for a in cert.subject.get_attributes_for_oid(OU)] == ["myDept", "myGroup"]
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.public_bytes() == KEY_USAGE_DER
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.myServer.com"]


def test_a_password_user_gets_the_prescribed_names_and_no_others(server: RunningServer) -> None:
    # password_subjects = own: the prescribed DNS name is the label's, for every requester; the
    # name the user fills in must still be on its allow-list.
    own = ((NameOID.COMMON_NAME, USER), (OU, "myDept"), (OU, "myGroup"))
    reply = enroll(server, "own", csr(subject=own))
    assert reply.status == 200, reply.body
    foreign = (x509.DNSName("www.myServer.com"), x509.IPAddress(ipaddress.ip_address("192.0.2.99")))
    refused = enroll(server, "own", csr(subject=own, names=foreign))
    assert refused.status == 403 and b"192.0.2.99" in refused.body


def test_a_conflicting_value_is_refused_even_without_enforcement(server: RunningServer) -> None:
    # The prescribed OUs are fixed subject values: another OU is not silently replaced.
    other = csr(subject=((NameOID.COMMON_NAME, "d"), (OU, "admins")))
    reply = enroll(server, "fill", other)
    assert reply.status == 403 and b"fixed by this CA" in reply.body


# --- our client follows the template ---------------------------------------------------------


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    # main() sets up the python_est logger for a command-line run; undo it for the next tests.
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def client_enroll(server: RunningServer, tmp_path: Path, *extra: str) -> tuple[int, Path, Path]:
    key_out, cert_out = tmp_path / "device.key", tmp_path / "device.pem"
    status = main(
        [
            "client", "enroll", "--server", "127.0.0.1", "--port", str(server.port),
            "--label", "tpl", "--cacert", str(server.ca_file), "--user", USER,
            "--password", PASSWORD, "--common-name", "device-9",
            "--key-out", str(key_out), "--cert-out", str(cert_out), *extra,
        ]
    )  # fmt: skip
    return status, key_out, cert_out


def test_our_client_follows_the_template(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, key_out, cert_out = client_enroll(server, tmp_path, "--ip", "192.0.2.9")
    assert status == 0, capsys.readouterr().err
    [cert] = load_certificates(cert_out)
    assert cert.subject.rfc4514_string() == "CN=device-9,OU=myGroup,OU=myDept"
    key = load_private_key(key_out)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.myServer.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.9")]


def test_our_client_names_what_the_template_still_needs(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The template asks for an IP address to fill in: refused before anything is enrolled.
    status, key_out, cert_out = client_enroll(server, tmp_path)
    assert status == 1
    assert "asks for a ip subjectAltName" in capsys.readouterr().err
    assert not key_out.exists() and not cert_out.exists()
    # Without the template the server refuses the CSR, naming the prescribed values it lacks.
    status, _, _ = client_enroll(server, tmp_path, "--ignore-csrattrs")
    assert status == 1
    assert "missing extension keyUsage" in capsys.readouterr().err


def test_our_client_renews_within_the_template(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, key_out, cert_out = client_enroll(server, tmp_path, "--ip", "192.0.2.9")
    assert status == 0, capsys.readouterr().err
    [first] = load_certificates(cert_out)
    reenroll = [
        "client", "reenroll", "--server", "127.0.0.1", "--port", str(server.port),
        "--label", "tpl", "--cacert", str(server.ca_file), "--cert", str(cert_out),
        "--key", str(key_out),
    ]  # fmt: skip
    # A bare renewal CSR (Subject and subjectAltName only) misses the prescribed keyUsage.
    assert main([*reenroll, "--ignore-csrattrs"]) == 1
    assert "missing extension keyUsage" in capsys.readouterr().err
    assert main(reenroll) == 0, capsys.readouterr().err
    [renewed] = load_certificates(cert_out)
    assert renewed.serial_number != first.serial_number
    assert renewed.subject == first.subject
