"""Authentication parsing and authorization decisions in python_est.policy (pure functions)."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.ca import CertificateAuthority
from python_est.config import AuthMethod
from python_est.errors import Forbidden, InvalidCsr
from python_est.keys import KeyType
from python_est.oids import ID_KP_CLIENT_AUTH, ID_KP_CMC_RA
from python_est.policy import (
    Authentication,
    BasicCredentials,
    ClientCertificate,
    TlsInfo,
    authorize_enrollment,
    check_linking,
    check_reenrollment,
    names_equal,
    parse_basic_authorization,
    satisfied_methods,
)
from python_est.profile import IssuanceProfile

CERT, SRP, BASIC = AuthMethod.CERT, AuthMethod.SRP, AuthMethod.BASIC
ANY = (frozenset({CERT}), frozenset({SRP}), frozenset({BASIC}))
TLS12 = TlsInfo(
    "TLS1.2",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    tls_unique=bytes(range(12)),
    extended_master_secret=True,
)
TLS13 = TlsInfo("TLS1.3", "TLS_AES_128_GCM_SHA256")
PROFILE = IssuanceProfile()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Policy Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


def name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def cn(value: str) -> x509.Name:
    return name((NameOID.COMMON_NAME, value))


def make_csr(
    key: ec.EllipticCurvePrivateKey, subject: x509.Name, sans: Sequence[x509.GeneralName] = ()
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def client(
    ca: CertificateAuthority, common_name: str, dns: Sequence[str] = (), *, ra: bool = False
) -> ClientCertificate:
    ekus = (ID_KP_CLIENT_AUTH, ID_KP_CMC_RA) if ra else (ID_KP_CLIENT_AUTH,)
    cert, _ = ca.issue_client_certificate(
        common_name=common_name, dns_names=dns, extended_key_usage=ekus
    )
    return ClientCertificate((cert, *ca.chain), valid=True, is_ra=ra)


def basic_header(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


# --- HTTP Basic parsing (RFC 7617, RFC 7030 §3.2.3) ---


@pytest.mark.parametrize(
    ("header", "user", "password"),
    [
        (basic_header("alice:s3cret"), "alice", "s3cret"),
        ("basic " + base64.b64encode(b"alice:pw").decode(), "alice", "pw"),
        ("BASIC  " + base64.b64encode(b"alice:pw").decode(), "alice", "pw"),
        (basic_header("alice:pa:ss:word"), "alice", "pa:ss:word"),
        (basic_header(":secret"), "", "secret"),
        ("Basic OnNlY3JldA==", "", "secret"),
        ("Basic Og==", "", ""),
        (basic_header("jürgen:pässword"), "jürgen", "pässword"),
    ],
)
def test_parse_basic(header: str, user: str, password: str) -> None:
    credentials = parse_basic_authorization(header)
    assert credentials == BasicCredentials(user, password)


def test_parse_basic_latin1_fallback() -> None:
    header = "Basic " + base64.b64encode("jörg:pw".encode("latin-1")).decode()
    assert parse_basic_authorization(header) == BasicCredentials("jörg", "pw")


@pytest.mark.parametrize("header", [None, "Bearer abc", 'Digest username="a"', ""])
def test_other_schemes_are_no_basic_credentials(header: str | None) -> None:
    assert parse_basic_authorization(header) is None


@pytest.mark.parametrize(
    "header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Basic"]
)
def test_malformed_basic_is_an_error(header: str) -> None:
    with pytest.raises(ValueError):
        parse_basic_authorization(header)


def test_empty_credentials_and_repr() -> None:
    assert BasicCredentials("", "").is_empty
    assert not BasicCredentials("", "pw").is_empty
    assert "hunter2" not in repr(BasicCredentials("u", "hunter2"))


# --- requirement arithmetic ---


def test_satisfied_methods_unions_satisfied_alternatives() -> None:
    assert satisfied_methods(ANY, frozenset({CERT, SRP})) == frozenset({CERT, SRP})
    assert satisfied_methods(ANY, frozenset({SRP})) == frozenset({SRP})
    assert satisfied_methods(ANY, frozenset()) is None
    both = (frozenset({CERT, BASIC}),)
    assert satisfied_methods(both, frozenset({CERT})) is None
    assert satisfied_methods(both, frozenset({CERT, BASIC})) == frozenset({CERT, BASIC})


def test_authentication_descriptions(ca: CertificateAuthority) -> None:
    device = client(ca, "dev1")
    auth = Authentication(frozenset({CERT, BASIC}), certificate=device, basic_user="alice")
    assert auth.method_text == "cert+basic"
    assert auth.requester == "alice + CN=dev1"
    assert auth.password_users == ("alice",)
    assert Authentication(frozenset()).requester == "anonymous"
    same = Authentication(frozenset({SRP, BASIC}), srp_user="bob", basic_user="bob")
    assert same.password_users == ("bob",)


# --- authorization of /simpleenroll requests ---


def test_password_user_gets_own_name(key: ec.EllipticCurvePrivateKey) -> None:
    auth = Authentication(frozenset({BASIC}), basic_user="alice")
    csr = make_csr(key, cn("alice"))
    authorize_enrollment(
        csr, auth, password_subjects="own", allowed_names={"alice": ("alice",)}, profile=PROFILE
    )


def test_password_user_refused_other_cn(key: ec.EllipticCurvePrivateKey) -> None:
    auth = Authentication(frozenset({BASIC}), basic_user="alice")
    csr = make_csr(key, cn("mallory"))
    with pytest.raises(Forbidden) as info:
        authorize_enrollment(
            csr, auth, password_subjects="own", allowed_names={"alice": ("alice",)}, profile=PROFILE
        )
    assert info.value.status == 403
    assert info.value.detail == "subject CN 'mallory' is not allowed for user 'alice'"


def test_password_user_sans_must_be_allowed(key: ec.EllipticCurvePrivateKey) -> None:
    auth = Authentication(frozenset({SRP}), srp_user="alice")
    allowed = {"alice": ("dev1.example", "2001:db8::1", "alice@example.com")}
    ok = make_csr(
        key,
        cn("dev1.example"),
        [
            x509.DNSName("Dev1.Example"),
            x509.IPAddress(ipaddress.ip_address("2001:0db8:0::1")),
            x509.RFC822Name("alice@example.com"),
        ],
    )
    authorize_enrollment(ok, auth, password_subjects="own", allowed_names=allowed, profile=PROFILE)
    bad = make_csr(key, cn("dev1.example"), [x509.DNSName("dev2.example")])
    with pytest.raises(Forbidden, match=r"subjectAltName DNS 'dev2\.example' .* user 'alice'"):
        authorize_enrollment(
            bad, auth, password_subjects="own", allowed_names=allowed, profile=PROFILE
        )
    other = make_csr(key, cn("dev1.example"), [x509.RegisteredID(NameOID.COMMON_NAME)])
    with pytest.raises(Forbidden, match="RegisteredID"):
        authorize_enrollment(
            other, auth, password_subjects="own", allowed_names=allowed, profile=PROFILE
        )


def test_password_subjects_any(key: ec.EllipticCurvePrivateKey) -> None:
    auth = Authentication(frozenset({BASIC}), basic_user="alice")
    csr = make_csr(key, cn("anything"), [x509.DNSName("whatever.example")])
    authorize_enrollment(
        csr, auth, password_subjects="any", allowed_names={"alice": ("alice",)}, profile=PROFILE
    )


def test_ra_may_request_any_subject(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    auth = Authentication(frozenset({CERT}), certificate=client(ca, "ra1", ra=True))
    csr = make_csr(key, cn("some device"), [x509.DNSName("device.example")])
    authorize_enrollment(csr, auth, password_subjects="own", allowed_names={}, profile=PROFILE)


def test_client_certificate_gets_its_own_identity_only(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    device = client(ca, "dev1", dns=("dev1.example", "alt.example"))
    auth = Authentication(frozenset({CERT}), certificate=device)
    authorize_enrollment(
        make_csr(key, cn("dev1"), [x509.DNSName("DEV1.example")]),
        auth,
        password_subjects="own",
        allowed_names={},
        profile=PROFILE,
    )
    with pytest.raises(Forbidden, match="differs from the client certificate's subject"):
        authorize_enrollment(
            make_csr(key, cn("dev2")),
            auth,
            password_subjects="own",
            allowed_names={},
            profile=PROFILE,
        )
    with pytest.raises(Forbidden, match=r"'other\.example' is not in the client certificate"):
        authorize_enrollment(
            make_csr(key, cn("dev1"), [x509.DNSName("other.example")]),
            auth,
            password_subjects="any",
            allowed_names={},
            profile=PROFILE,
        )


def test_one_entitled_identity_is_enough(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    device = client(ca, "dev1")
    auth = Authentication(frozenset({CERT, BASIC}), certificate=device, basic_user="alice")
    csr = make_csr(key, cn("alice"))
    authorize_enrollment(
        csr, auth, password_subjects="own", allowed_names={"alice": ("alice",)}, profile=PROFILE
    )
    with pytest.raises(Forbidden) as info:
        authorize_enrollment(
            make_csr(key, cn("bob")),
            auth,
            password_subjects="own",
            allowed_names={"alice": ("alice",)},
            profile=PROFILE,
        )
    # Both refusals are named.
    assert "user 'alice'" in info.value.detail
    assert "client certificate" in info.value.detail


def test_nobody_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(Forbidden):
        authorize_enrollment(
            make_csr(key, cn("x")),
            Authentication(frozenset()),
            password_subjects="any",
            allowed_names={},
            profile=PROFILE,
        )


# --- reenrollment Subject/SAN rules (RFC 7030 §4.2.2) ---


def test_reenroll_identical_names_pass(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    current = client(ca, "dev1", dns=("dev1.example", "b.example")).leaf
    csr = make_csr(key, cn("dev1"), [x509.DNSName("b.example"), x509.DNSName("dev1.example")])
    check_reenrollment(csr, current)


def test_reenroll_both_without_san_pass(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    check_reenrollment(make_csr(key, cn("dev1")), client(ca, "dev1").leaf)


@pytest.mark.parametrize(
    ("subject", "sans", "field"),
    [
        (cn("dev2"), ["dev1.example"], "subject"),
        (cn("dev1"), ["dev1.example", "extra.example"], "subjectAltName"),
        (cn("dev1"), [], "subjectAltName"),
        (name((NameOID.COMMON_NAME, "dev1"), (NameOID.ORGANIZATION_NAME, "X")), [], "subject"),
    ],
)
def test_reenroll_name_changes_are_refused(
    ca: CertificateAuthority,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    sans: list[str],
    field: str,
) -> None:
    current = client(ca, "dev1", dns=("dev1.example",)).leaf
    csr = make_csr(key, subject, [x509.DNSName(s) for s in sans])
    with pytest.raises(Forbidden) as info:
        check_reenrollment(csr, current)
    assert info.value.status == 403
    assert f"reenrollment {field}" in info.value.detail
    assert "RFC 7030 §4.2.2" in info.value.detail


def test_names_equal_ignores_only_the_string_type() -> None:
    printable = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Dev One", x509.name._ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
        ]
    )
    utf8 = name((NameOID.COMMON_NAME, "Dev One"), (NameOID.ORGANIZATION_NAME, "Acme"))
    assert printable.public_bytes() != utf8.public_bytes()
    assert names_equal(printable, utf8)
    # Issue 13: no case folding, no white-space collapsing.
    assert not names_equal(
        printable, name((NameOID.COMMON_NAME, " dev one "), (NameOID.ORGANIZATION_NAME, "ACME"))
    )
    swapped = name((NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "Dev One"))
    assert not names_equal(printable, swapped)
    assert not names_equal(cn("a"), name((NameOID.COMMON_NAME, "a"), (NameOID.COMMON_NAME, "b")))
    assert not names_equal(cn("dev one"), cn("dev two"))
    assert names_equal(cn("x"), cn("x"))


# --- proof-of-possession linking (RFC 7030 §3.5) ---

GOOD = base64.b64encode(bytes(range(12))).decode()
OTHER = base64.b64encode(bytes(12)).decode()


def test_linking_matches() -> None:
    check_linking(GOOD, TLS12, required=True, is_ra=False)
    check_linking(GOOD, TLS12, required=False, is_ra=False)


@pytest.mark.parametrize(
    ("value", "tls", "required", "message"),
    [
        (None, TLS12, True, "requires proof-of-possession linking"),
        (OTHER, TLS12, True, "does not match"),
        ("one-time-code", TLS12, True, "does not match"),
        (OTHER, TLS12, False, "does not match"),
        (GOOD, TLS13, True, "needs TLS 1.2"),
        (None, TLS13, True, "requires proof-of-possession linking"),
    ],
)
def test_linking_failures(value: str | None, tls: TlsInfo, required: bool, message: str) -> None:
    with pytest.raises(InvalidCsr, match=message) as info:
        check_linking(value, tls, required=required, is_ra=False)
    assert info.value.status == 400


TLS12_NO_EMS = dataclasses.replace(TLS12, extended_master_secret=False)


@pytest.mark.parametrize("value", [GOOD, OTHER, None])
def test_required_linking_needs_the_extended_master_secret(value: str | None) -> None:
    # RFC 7627: without EMS a triple-handshake attacker can synchronise tls-unique, so even
    # a matching challengePassword proves nothing; the reason says what to change.
    with pytest.raises(InvalidCsr, match="extended master secret") as info:
        check_linking(value, TLS12_NO_EMS, required=True, is_ra=False)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("value", "tls", "required", "is_ra"),
    [
        (GOOD, TLS12_NO_EMS, False, False),  # linking not required: EMS is not asked for
        (None, TLS12_NO_EMS, True, True),  # RA clients are exempt from linking
        (None, TLS12, False, False),
        ("one-time-code", TLS12, False, False),  # not shaped like a tls-unique: not ours to judge
        (OTHER, TLS13, False, False),
        (OTHER, TLS12, True, True),  # RA clients are exempt (RFC 7030 §3.7)
        (None, TLS12, True, True),
    ],
)
def test_linking_passes(value: str | None, tls: TlsInfo, required: bool, is_ra: bool) -> None:
    check_linking(value, tls, required=required, is_ra=is_ra)
