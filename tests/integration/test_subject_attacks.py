"""Issue 13 items 2 and 3 as attacks over real TLS: chosen subject attributes, deceiving
characters, oversized names, and names that match only after folding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from est_harness import RunningServer, write_credentials
from python_est.oids import ID_KP_CMC_RA
from tests.policy_support import cn, der_csr, enroll_user, issued_to, policy_server, post, refused

pytestmark = pytest.mark.integration

CN, ORG, UID = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.USER_ID
EMAIL, SERIAL, OU = NameOID.EMAIL_ADDRESS, NameOID.SERIAL_NUMBER, NameOID.ORGANIZATIONAL_UNIT_NAME


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return policy_server(start_est_server)


def name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def rdn(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in attrs])


# --- item 2: password users choose only what they are allowed to choose ----------------------


@pytest.mark.parametrize(
    ("subject", "status", "phrase"),
    [
        (name((CN, "device1"), (ORG, "system:masters")), 403, "subject attribute O may not"),
        (name((CN, "device1"), (UID, "root")), 403, "subject attribute UID may not"),
        (name((CN, "device1"), (EMAIL, "ceo@example.com")), 403, "attribute emailAddress"),
        # A CN-less exact copy of another device's subject.
        (name((ORG, "Factory"), (SERIAL, "SN-0001")), 403, "must carry a CN"),
        (name((CN, "device1\n2026-01-01 audit ok")), 400, "control character U+000A"),
        (name((CN, "admin\x1b[2K\rdevice1")), 400, "control character U+001B"),
        (name((CN, "device1"), (OU, "lab\u202eexe.txt")), 400, "control character U+202E"),
        (name((CN, "device1\u2066")), 400, "control character U+2066"),
        (name((CN, "device1\x9b")), 400, "control character U+009B"),
        (x509.Name([rdn((CN, f"n{i}")) for i in range(17)]), 400, "17 RDNs (at most 16)"),
        (
            x509.Name([rdn(*[(OU, f"{i}.{j}") for j in range(4)]) for i in range(9)]),
            400,
            "36 attributes (at most 32)",
        ),
    ],
)
def test_password_user_cannot_choose_other_attributes(
    server: RunningServer, subject: x509.Name, status: int, phrase: str
) -> None:
    refused(enroll_user(server, "device1", subject), status, phrase)
    assert server.state.ledger.count() == 0


def test_deceiving_sans_are_refused_for_everyone(server: RunningServer, tmp_path: Path) -> None:
    hostile = [
        x509.DNSName._init_without_validation("bücher.example"),
        x509.DNSName._init_without_validation("device1\u202e.example"),
        x509.RFC822Name._init_without_validation("a\x07@example.com"),
    ]
    ra, key = server.state.ca.issue_client_certificate(
        common_name="ra-1", extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA)
    )
    ra_creds = write_credentials(tmp_path, "ra", ra, key)
    for san in hostile:
        der, _ = der_csr(cn("device1"), sans=[san])
        refused(post(server, "simpleenroll", der, user="device1"), 400, "subjectAltName")
        refused(post(server, "simpleenroll", der, client=ra_creds), 400, "subjectAltName")
    # An RA may name any device, but not with control characters either.
    der, _ = der_csr(name((CN, "sensor\x1b[31m")))
    refused(post(server, "simpleenroll", der, client=ra_creds), 400, "U+001B")
    assert server.state.ledger.count() == 0


def test_too_many_extensions_are_400(server: RunningServer) -> None:
    sans = [x509.DNSName("device1")]
    builder_der, key = der_csr(cn("device1"), sans=sans)
    csr = x509.load_der_x509_csr(builder_der)
    builder = x509.CertificateSigningRequestBuilder().subject_name(csr.subject)
    for index in range(33):
        oid = x509.ObjectIdentifier(f"1.3.6.1.4.1.55555.{index}")
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), False)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    refused(post(server, "simpleenroll", der, user="device1"), 400, "33 extensions (at most 32)")


def test_profile_chosen_and_fixed_attributes(server: RunningServer) -> None:
    # [label:corp]: serialNumber may be chosen; O and C are fixed by the server.
    reply = enroll_user(server, "device1", name((CN, "device1"), (SERIAL, "42")), "corp/")
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert cert.subject.rfc4514_string() == "2.5.4.5=42,CN=device1,O=Example Corp,C=DE"
    same = name((NameOID.COUNTRY_NAME, "DE"), (ORG, "Example Corp"), (CN, "device1"))
    assert enroll_user(server, "device1", same, "corp/").status == 200
    refused(
        enroll_user(server, "device1", name((ORG, "Other Corp"), (CN, "device1")), "corp/"),
        403,
        "subject O is fixed by this CA to 'Example Corp'",
    )
    refused(
        enroll_user(server, "device1", name((CN, "device1"), (UID, "root")), "corp/"),
        403,
        "subject attribute UID may not",
    )


# --- item 3: names compare as exactly as the identities they stand for -----------------------


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("device1", cn("Device1")),
        ("device1", cn("DEVICE1")),
        ("device1", cn(" device1  ")),
        ("straße", cn("STRASSE")),
        ("straße", cn("strasse")),
        ("device1", x509.Name([rdn((CN, "device1"), (CN, "DEVICE1"))])),
    ],
)
def test_password_user_cannot_take_a_folded_name(
    server: RunningServer, user: str, subject: x509.Name
) -> None:
    refused(enroll_user(server, user, subject), 403, "is not allowed for user")
    assert server.state.ledger.count() == 0


def test_password_user_gets_its_exact_name(server: RunningServer) -> None:
    for user in ("device1", "straße"):
        reply = enroll_user(server, user, cn(user))
        assert reply.status == 200, reply.body
        [cert] = reply.certificates()
        assert cert.subject.get_attributes_for_oid(CN)[0].value == user


@pytest.mark.parametrize(
    "subject",
    [
        cn("DEVICE1"),
        cn("Device1"),
        cn(" device1  "),
        x509.Name([rdn((CN, "device1"), (CN, "DEVICE1"))]),
    ],
)
def test_holder_cannot_renew_as_a_folded_name(
    server: RunningServer, tmp_path: Path, subject: x509.Name
) -> None:
    _, creds = issued_to(server, tmp_path, "device1", "device1")
    reply = post(server, "simplereenroll", der_csr(subject)[0], client=creds)
    refused(reply, 403, "differs from the certificate being renewed")
    # Nor enroll for it with its certificate.
    reply = post(server, "simpleenroll", der_csr(subject)[0], client=creds)
    refused(reply, 403, "differs from the client certificate's subject")
    assert server.state.ledger.count() == 1


def test_dns_names_fold_ascii_case_only(server: RunningServer, tmp_path: Path) -> None:
    # A DNS SAN may differ in ASCII case (RFC 4343) from the allowed name and on renewal.
    der, key = der_csr(cn("device1"), sans=[x509.DNSName("DEVICE1")])
    reply = post(server, "simpleenroll", der, user="device1")
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    creds = write_credentials(tmp_path, "dns", cert, key)
    renew, _ = der_csr(cn("device1"), sans=[x509.DNSName("device1")])
    assert post(server, "simplereenroll", renew, client=creds).status == 200
    kelvin = x509.DNSName._init_without_validation("\u212a")
    der, _ = der_csr(cn("device1"), sans=[kelvin])
    refused(post(server, "simpleenroll", der, user="device1"), 400, "is not ASCII")
