"""`service.keygen_match`: what recognises a /serverkeygen retry, and what does not."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.errors import InvalidCsr
from python_est.service.keygen_match import serverkeygen_match

NAMES: list[x509.GeneralName] = [
    x509.DNSName("gw.example"),
    x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
    x509.RFC822Name("ops@example.net"),
    x509.UniformResourceIdentifier("urn:dev:7"),
    x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
    x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])),
    x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03a@b"),
]


def csr(
    cn: str = "gw", names: list[x509.GeneralName] | None = None
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def test_a_new_key_or_another_san_order_is_the_same_request() -> None:
    first = serverkeygen_match(csr(names=NAMES), "alice")
    assert len(first) == 64 and first == first.lower()
    assert serverkeygen_match(csr(names=NAMES), "alice") == first
    assert serverkeygen_match(csr(names=NAMES[::-1]), "alice") == first


@pytest.mark.parametrize(
    ("request_csr", "requester"),
    [
        (csr(names=NAMES), "bob"),
        (csr("gw2", NAMES), "alice"),
        (csr(names=NAMES[:-1]), "alice"),
        (csr(names=[*NAMES[:-1], x509.OtherName(NAMES[-1].type_id, b"\x0c\x03a@c")]), "alice"),  # type: ignore[attr-defined]
        (csr(), "alice"),
        (csr(names=[x509.DNSName('gw.example", "x')]), "alice"),  # no field can spill over
    ],
)
def test_another_requester_subject_or_san_set_is_another_request(
    request_csr: x509.CertificateSigningRequest, requester: str
) -> None:
    assert serverkeygen_match(request_csr, requester) != serverkeygen_match(
        csr(names=NAMES), "alice"
    )


def test_a_malformed_san_extension_is_an_invalid_csr() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    bad = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw")]))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.17"), b"\x30\x03\x82\x01"),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidCsr):
        serverkeygen_match(bad, "alice")
