"""`requests show`: the CSR decoded for the operator, with every hostile value escaped."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from python_est.cli.csrview import describe_csr
from python_est.oids import CHALLENGE_PASSWORD, ID_KP_CMC_RA


def build(
    subject: x509.Name, *extensions: tuple[x509.ExtensionType, bool], key: object = None
) -> x509.CertificateSigningRequest:
    signer = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


def cn(*values: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, v) for v in values])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # An escape sequence that would redraw the line as CN=device1.
        ("admin\x1b[2K\x1b[1GCN=device1", '"admin\\x1b[2K\\x1b[1GCN=device1"'),
        ("\u202e1ecived", '"\\u202e1ecived"'),
        ("admin\nCN=device1", '"admin\\nCN=device1"'),
        ("x\x9b2J\x7f", '"x\\x9b2J\\x7f"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ],
)
def test_hostile_subject_values_are_escaped(value: str, shown: str) -> None:
    lines = describe_csr(build(cn(value)))
    assert all(line.isprintable() for line in lines)
    assert f"  RDN 1: commonName (2.5.4.3) = {shown}" in lines


def test_look_alike_letters_are_shown_as_code_points() -> None:
    lines = describe_csr(build(cn("\u0430dmin")))  # Cyrillic a
    assert '  RDN 1: commonName (2.5.4.3) = "\u0430dmin" (as ASCII: "\\u0430dmin")' in lines


def test_multi_valued_rdn_shows_every_attribute() -> None:
    rdn = x509.RelativeDistinguishedName(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "device1"),
            x509.NameAttribute(NameOID.USER_ID, "root"),
        ]
    )
    subject = x509.Name(
        [rdn, x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex")])]
    )
    lines = describe_csr(build(subject))
    text = "\n".join(lines)
    assert "RDN 1: " in text and 'RDN 2: organizationName (2.5.4.10) = "Ex"' in text
    assert "        + " in text  # the second attribute of the multi-valued RDN
    assert 'userID (0.9.2342.19200300.100.1.1) = "root"' in text
    assert 'commonName (2.5.4.3) = "device1"' in text


def test_sans_key_signature_and_extensions_are_listed() -> None:
    sans = x509.SubjectAlternativeName(
        [
            x509.DNSName("evil\x1b[8m.example"),
            x509.RFC822Name("a@b.example"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
            x509.UniformResourceIdentifier("https://x.example/\x1b[8m"),
        ]
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA])
    ca = x509.BasicConstraints(ca=True, path_length=None)
    key = rsa.generate_private_key(65537, 2048)
    csr = build(cn("device1"), (sans, False), (eku, False), (ca, True), key=key)
    lines = describe_csr(csr)
    assert all(line.isprintable() for line in lines)
    assert "  subjectAltName: 4 name(s)" in lines
    assert '    DNS: "evil\\x1b[8m.example"' in lines
    assert '    email: "a@b.example"' in lines
    assert "    IP: 192.0.2.1" in lines
    assert '    URI: "https://x.example/\\x1b[8m"' in lines
    assert "  public key: RSA 2048 bits" in lines
    assert "  signature: sha256WithRSAEncryption (1.2.840.113549.1.1.11), valid" in lines
    assert "  extensions requested: 3" in lines
    assert (
        "    extendedKeyUsage (2.5.29.37): clientAuth (1.3.6.1.5.5.7.3.2), 1.3.6.1.5.5.7.3.28"
        in lines
    )
    assert "    basicConstraints (2.5.29.19), critical: CA=True, pathlen=None" in lines


def test_challenge_password_is_not_shown_and_unknown_attributes_are() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(cn("device1"))
        .add_attribute(CHALLENGE_PASSWORD, b"s3cret-value")
        .add_attribute(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x01\x02")
        .sign(key, hashes.SHA256())
    )
    lines = describe_csr(csr)
    assert not any("s3cret" in line for line in lines)
    assert "    challengePassword (1.2.840.113549.1.9.7): present (12 bytes)" in lines
    assert "    1.3.6.1.4.1.99999.1: 2 bytes: 0102" in lines
    assert "  public key: EC secp256r1 (256 bits)" in lines


def test_empty_subject() -> None:
    sans = x509.SubjectAlternativeName([x509.DNSName("d.example")])
    assert "  subject: (empty)" in describe_csr(build(x509.Name([]), (sans, False)))
