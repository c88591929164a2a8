"""python_est.policy.subject: the subject policy, tested like a parser with hostile inputs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.errors import InvalidCsr
from python_est.policy.subject import (
    ascii_lower,
    check_csr_names,
    fixed_refusal,
    names_equal,
    password_refusal,
    same_names,
    san_key,
    unsafe_character,
)
from python_est.profile import IssuanceProfile

CN, ORG, OU = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME
SERIAL, UID, EMAIL = NameOID.SERIAL_NUMBER, NameOID.USER_ID, NameOID.EMAIL_ADDRESS
C = NameOID.COUNTRY_NAME
PROFILE = IssuanceProfile()
KEY = ec.generate_private_key(ec.SECP256R1())
PRINTABLE = x509.name._ASN1Type.PrintableString


def rdn(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, v) for oid, v in attrs])


def name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def csr(
    subject: x509.Name,
    sans: Sequence[x509.GeneralName] = (),
    extensions: int = 0,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    for index in range(extensions):
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(f"1.3.6.1.4.1.55555.{index}"), b"")
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(KEY, hashes.SHA256())


def dns(value: str) -> x509.DNSName:
    # Hostile values need the unvalidated constructor; a CSR on the wire carries them anyway.
    return x509.DNSName._init_without_validation(value)


# --- control and bidi characters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("device1\n", "U+000A"),
        ("\x00", "U+0000"),
        ("a\x1b[2Jb", "U+001B"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("c1\x9b31m", "U+009B"),
        ("evil\u202etxt.exe", "U+202E"),
        ("\u202aembed", "U+202A"),
        ("iso\u2066late", "U+2066"),
        ("iso\u2069", "U+2069"),
        ("mark\u200e", "U+200E"),
        ("mark\u200f", "U+200F"),
        ("arabic\u061c", "U+061C"),
    ],
)
def test_unsafe_characters_are_found(text: str, found: str) -> None:
    assert unsafe_character(text) == found


@pytest.mark.parametrize("text", ["device1", "Straße", "日本語", "a b", "x~y", "\u00a0nbsp"])
def test_ordinary_text_is_safe(text: str) -> None:
    assert unsafe_character(text) is None


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (csr(name((CN, "admin\x1b[1A\rdevice1"))), "subject CN contains the control character"),
        (csr(name((CN, "ok"), (ORG, "evil\u202e"))), "subject O contains the control character"),
        (csr(name((CN, "ok")), [dns("a\u202e.example")]), "subjectAltName DNS contains"),
        (
            csr(name((CN, "ok")), [x509.RFC822Name._init_without_validation("a\x00@x.example")]),
            "subjectAltName email contains",
        ),
        (
            csr(name((CN, "ok")), [x509.DirectoryName(name((CN, "x\n")))]),
            "subjectAltName directoryName CN contains",
        ),
        (csr(name((CN, "ok")), [dns("bücher.example")]), "is not ASCII: send IDNA A-labels"),
        (csr(x509.Name([rdn((CN, str(i))) for i in range(17)])), "17 RDNs (at most 16)"),
        (
            csr(x509.Name([rdn(*[(OU, f"{i}-{j}") for j in range(3)]) for i in range(11)])),
            "33 attributes (at most 32)",
        ),
        (csr(name((CN, "ok")), extensions=33), "requests 33 extensions (at most 32)"),
    ],
)
def test_hostile_csr_names_are_400(request_: x509.CertificateSigningRequest, message: str) -> None:
    with pytest.raises(InvalidCsr) as info:
        check_csr_names(request_, PROFILE)
    assert info.value.status == 400
    assert message in info.value.detail


def test_a_repeated_attribute_in_one_rdn_is_400() -> None:
    # CN=device1+CN=device1: cryptography builds no such name, so the DER is edited.
    pair = x509.Name([rdn((CN, "DEVICE1"), (CN, "device1"))])
    der = csr(pair).public_bytes(serialization.Encoding.DER).replace(b"DEVICE1", b"device1")
    with pytest.raises(InvalidCsr, match="repeated attribute"):
        check_csr_names(x509.load_der_x509_csr(der), PROFILE)


def test_caps_follow_the_profile() -> None:
    small = IssuanceProfile(max_rdns=2, max_attributes=2, max_extensions=1)
    check_csr_names(csr(name((CN, "a"), (ORG, "b")), [dns("a.example")]), small)
    with pytest.raises(InvalidCsr, match="3 RDNs"):
        check_csr_names(csr(name((CN, "a"), (ORG, "b"), (OU, "c"))), small)
    with pytest.raises(InvalidCsr, match="3 attributes"):
        check_csr_names(csr(x509.Name([rdn((CN, "a"), (CN, "b"), (CN, "c"))])), small)
    with pytest.raises(InvalidCsr, match="2 extensions"):
        check_csr_names(csr(name((CN, "a")), [dns("a.example")], extensions=1), small)


def test_at_the_caps_passes() -> None:
    check_csr_names(csr(x509.Name([rdn((CN, str(i))) for i in range(16)])), PROFILE)
    check_csr_names(csr(name((CN, "a")), extensions=32), PROFILE)


# --- exact comparison (issue 13 item 3) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (name((CN, "device1")), name((CN, "device1")), True),
        (name((CN, "device1")), name((CN, "Device1")), False),
        (name((CN, "device1")), name((CN, "DEVICE1")), False),
        (name((CN, "device1")), name((CN, " device1  ")), False),
        (name((CN, "dev one")), name((CN, "dev  one")), False),
        (name((CN, "straße")), name((CN, "STRASSE")), False),
        (name((CN, "straße")), name((CN, "strasse")), False),
        (name((CN, "kiosk")), name((CN, "\u212aiosk")), False),  # KELVIN SIGN
        (name((CN, "ﬁle")), name((CN, "file")), False),  # NFKC would merge them; NFC does not
        (name((CN, "é")), name((CN, "e\u0301")), True),  # NFC: the same text
        (x509.Name([rdn((CN, "device1"), (CN, "DEVICE1"))]), name((CN, "device1")), False),
        (
            x509.Name([rdn((CN, "a"), (ORG, "b"))]),
            x509.Name([rdn((ORG, "b"), (CN, "a"))]),
            True,  # a multi-valued RDN has no order
        ),
        (name((ORG, "x"), (CN, "a")), name((CN, "a"), (ORG, "x")), False),  # RDN order matters
        (
            x509.Name([x509.NameAttribute(CN, "Dev1", PRINTABLE)]),
            name((CN, "Dev1")),
            True,  # PrintableString re-encoded as UTF8String by a CA
        ),
        (name(), name(), True),
    ],
)
def test_names_compare_exactly(a: x509.Name, b: x509.Name, equal: bool) -> None:
    assert names_equal(a, b) is equal
    assert names_equal(b, a) is equal


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (x509.DNSName("Dev1.Example.COM"), x509.DNSName("dev1.example.com"), True),
        (x509.DNSName("xn--bcher-kva.example"), x509.DNSName("XN--BCHER-KVA.example"), True),
        (dns("\u212a.example"), x509.DNSName("k.example"), False),  # only ASCII folds
        (x509.RFC822Name("Alice@EXAMPLE.com"), x509.RFC822Name("Alice@example.com"), True),
        (x509.RFC822Name("Alice@example.com"), x509.RFC822Name("alice@example.com"), False),
        (
            x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
            x509.IPAddress(ipaddress.ip_address("2001:0db8:0::1")),
            True,
        ),
        (
            x509.UniformResourceIdentifier("https://a.example/X"),
            x509.UniformResourceIdentifier("https://a.example/x"),
            False,
        ),
        (x509.DNSName("a.example"), x509.RFC822Name("a.example"), False),
    ],
)
def test_san_keys(a: x509.GeneralName, b: x509.GeneralName, equal: bool) -> None:
    assert (san_key(a) == san_key(b)) is equal


def test_ascii_lower_leaves_non_ascii_alone() -> None:
    assert ascii_lower("ABC.Example") == "abc.example"
    assert ascii_lower("\u212a\u0130") == "\u212a\u0130"


def test_same_names_needs_equal_subject_and_sans() -> None:
    a = csr(name((CN, "d")), [x509.DNSName("d.example"), x509.DNSName("e.example")])
    assert same_names(a, csr(name((CN, "d")), [x509.DNSName("E.example"), dns("D.example")]))
    assert not same_names(a, csr(name((CN, "d")), [x509.DNSName("d.example")]))
    assert not same_names(a, csr(name((CN, "D")), [dns("d.example"), dns("e.example")]))
    assert same_names(csr(name((CN, "d"))), csr(name((CN, "d"))))


# --- what a password user may choose (issue 13 item 2) ------------------------------------------

ALLOWED = ("device1", "device1.example", "192.0.2.7", "ops@example.com")


@pytest.mark.parametrize(
    ("request_", "profile", "refusal"),
    [
        (csr(name((CN, "device1"))), PROFILE, None),
        (csr(name((CN, "device1"), (ORG, "system:masters"))), PROFILE, "subject attribute O"),
        (csr(name((CN, "device1"), (UID, "root"))), PROFILE, "subject attribute UID"),
        (csr(name((CN, "device1"), (EMAIL, "ceo@x.example"))), PROFILE, "emailAddress"),
        (csr(name((ORG, "Factory"), (SERIAL, "SN-0001"))), PROFILE, "must carry a CN"),
        (csr(name()), PROFILE, "must carry a CN"),
        (csr(name((CN, "Device1"))), PROFILE, "subject CN 'Device1' is not allowed"),
        (csr(name((CN, " device1  "))), PROFILE, "subject CN ' device1  ' is not allowed"),
        (csr(x509.Name([rdn((CN, "device1"), (CN, "DEVICE1"))])), PROFILE, "'DEVICE1'"),
        (csr(name((CN, "device1"), (CN, "admin"))), PROFILE, "subject CN 'admin'"),
        (
            csr(name((CN, "device1"), (SERIAL, "42"), (OU, "lab"))),
            IssuanceProfile(subject_attributes=frozenset({SERIAL, OU})),
            None,
        ),
        (
            csr(name((CN, "device1"), (SERIAL, "42"), (ORG, "x"))),
            IssuanceProfile(subject_attributes=frozenset({SERIAL})),
            "subject attribute O",
        ),
        (
            csr(name((ORG, "Example Corp"), (CN, "device1"))),
            IssuanceProfile(subject_fixed=((ORG, "Example Corp"),)),
            None,
        ),
        (
            csr(name((CN, "device1")), [x509.DNSName("DEVICE1.example")]),
            PROFILE,
            None,
        ),
        (
            csr(name((CN, "device1")), [x509.RFC822Name("ops@EXAMPLE.com")]),
            PROFILE,
            None,
        ),
        (
            csr(name((CN, "device1")), [x509.RFC822Name("OPS@example.com")]),
            PROFILE,
            "subjectAltName email 'OPS@example.com'",
        ),
        (
            csr(name((CN, "device1")), [x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]),
            PROFILE,
            None,
        ),
        (
            csr(name((CN, "device1")), [x509.DNSName("other.example")]),
            PROFILE,
            "subjectAltName DNS 'other.example'",
        ),
        (
            csr(name((CN, "device1")), [x509.UniformResourceIdentifier("device1")]),
            PROFILE,
            None,
        ),
        (
            csr(name((CN, "device1")), [x509.RegisteredID(CN)]),
            PROFILE,
            "RegisteredID is not allowed",
        ),
    ],
)
def test_password_user_choices(
    request_: x509.CertificateSigningRequest, profile: IssuanceProfile, refusal: str | None
) -> None:
    found = password_refusal(request_, "device1", ALLOWED, profile)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found


def test_allowed_names_compare_exactly() -> None:
    # straße may not obtain STRASSE, nor device1 Device1: NFC is the only normalisation.
    assert password_refusal(csr(name((CN, "STRASSE"))), "straße", ("straße",), PROFILE)
    assert password_refusal(csr(name((CN, "straße"))), "straße", ("straße",), PROFILE) is None
    assert password_refusal(csr(name((CN, "e\u0301"))), "u", ("é",), PROFILE) is None


@pytest.mark.parametrize(
    ("subject", "refused"),
    [
        (name((CN, "d")), False),
        (name((ORG, "Example Corp"), (CN, "d")), False),
        (name((ORG, "Other Corp"), (CN, "d")), True),
        (name((ORG, "example corp"), (CN, "d")), True),
        (name((C, "DE"), (CN, "d")), False),
        (name((C, "FR"), (CN, "d")), True),
    ],
)
def test_fixed_values_must_match(subject: x509.Name, refused: bool) -> None:
    profile = IssuanceProfile(subject_fixed=((C, "DE"), (ORG, "Example Corp")))
    refusal = fixed_refusal(subject, profile)
    assert (refusal is not None) is refused
    if refused:
        assert refusal is not None and "is fixed by this CA" in refusal
