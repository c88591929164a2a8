"""`csr_challenge_password` reads attributes without pyasn1 and answers as the pyasn1 reader did.

The reference below is the pyasn1 implementation it replaced (issue 20, item 4). Hypothesis
builds CSRs with random attributes, challengePassword and others, whose values are random DER
trees of every string type, both forms, end-of-contents markers and other types; for each CSR
that `cryptography` loads, both readers must return the same password or refuse with the same
detail.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc2986

from python_est import wire
from python_est.errors import InvalidCsr
from python_est.oids import CHALLENGE_PASSWORD
from python_est.wire.der import TAG_CONTEXT_0, check_der_tree, children, read_tlv
from python_est.wire.pkcs import _PASSWORD_SPEC
from tests.unit.test_wire import _attribute, _csr_with_attributes, _tlv

CP = CHALLENGE_PASSWORD.dotted_string
_CHALLENGE_OID = univ.ObjectIdentifier(CP)
# Primitive and constructed string tags, end-of-contents, other universal types, high tags.
TAGS = [0x13, 0x0C, 0x16, 0x1E, 0x14, 0x1C, 0x33, 0x2C, 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x1F]
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(csr: x509.CertificateSigningRequest) -> str | None:
    """The pyasn1 reader `csr_challenge_password` had before."""
    der = csr.public_bytes(Encoding.DER)
    try:
        info = children(der, read_tlv(der))[0]
        fields = children(der, info)
        if len(fields) == 3:
            return None
        if fields[3].tag != TAG_CONTEXT_0:
            raise ValueError("no attributes field")
        decoded = []
        for tlv in children(der, fields[3]):
            check_der_tree(tlv.raw(der))
            attribute, rest = der_decoder.decode(tlv.raw(der), asn1Spec=rfc2986.Attribute())
            if rest:
                raise ValueError("trailing bytes")
            decoded.append(attribute)
    except (ValueError, IndexError, PyAsn1Error):
        raise InvalidCsr("malformed CSR attributes") from None
    found = [attribute for attribute in decoded if attribute["type"] == _CHALLENGE_OID]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidCsr("more than one challengePassword attribute")
    values = found[0]["values"]
    if len(values) != 1:
        raise InvalidCsr("challengePassword must have exactly one value")
    password = _decode_password_pyasn1(bytes(values[0].asOctets()))
    if len(password) > 255:
        raise InvalidCsr("challengePassword is longer than 255 characters")
    return password


def _decode_password_pyasn1(raw: bytes) -> str:
    try:
        choice, rest = der_decoder.decode(raw, asn1Spec=_PASSWORD_SPEC)
        if rest:
            raise InvalidCsr("challengePassword: trailing bytes")
        return str(choice.getComponent())
    except (PyAsn1Error, UnicodeError):
        raise InvalidCsr("challengePassword is not a DirectoryString") from None


def outcome(read: object, csr: x509.CertificateSigningRequest) -> tuple[str, object]:
    try:
        return "value", read(csr)  # type: ignore[operator]
    except InvalidCsr as exc:
        return "refused", exc.detail


@pytest.fixture(scope="module")
def csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eq")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _element(draw: st.DrawFn, depth: int = 0) -> bytes:
    tag = draw(st.sampled_from(TAGS))
    if tag == 0x1F:
        return b"\x1f\x81\x00" + bytes([0])
    if tag & 0x20 and depth < 2:
        inner = b"".join(_element(draw, depth + 1) for _ in range(draw(st.integers(0, 2))))
        return _tlv(tag, inner)
    text = draw(st.sampled_from(["", "pw", "AAECAwQFBgcICQoL", "pässword", "x" * 256]))
    content = draw(
        st.sampled_from(
            [
                text.encode("utf-8"),
                text.encode("utf-16-be"),
                text.encode("utf-32-be"),
                text.encode("latin-1", "replace"),
                b"\xff\xfe",
                b"\x00",
            ]
        )
    )
    return _tlv(tag & ~0x20 if depth >= 2 else tag, content)


@st.composite
def attribute_lists(draw: st.DrawFn) -> list[bytes]:
    attributes = []
    for _ in range(draw(st.integers(0, 3))):
        oid = draw(st.sampled_from([CP, CP, "1.2.840.113549.1.9.2", "1.2.3.4"]))
        values = sorted(_element(draw) for _ in range(draw(st.integers(0, 2))))
        if len(set(values)) != len(values):
            values = values[:1]
        attributes.append(_attribute(oid, *values))
    return attributes


@PROPERTY
@given(attributes=attribute_lists())
def test_the_tlv_reader_answers_as_pyasn1_did(
    csr: x509.CertificateSigningRequest, attributes: list[bytes]
) -> None:
    try:
        crafted = x509.load_der_x509_csr(_csr_with_attributes(csr, attributes))
    except ValueError:
        return  # cryptography refuses it before either reader sees it
    assert outcome(wire.csr_challenge_password, crafted) == outcome(reference, crafted)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        (_attribute(CP, b"\x00\x00"), ("refused", "malformed CSR attributes")),
        (_attribute("1.2.3.4", b"\x00\x00"), ("refused", "malformed CSR attributes")),
        (_attribute(CP, _tlv(0x33, _tlv(0x13, b"ab"))), ("value", "ab")),
        (
            _attribute(CP, _tlv(0x13, b"\xff")),
            ("refused", "challengePassword is not a DirectoryString"),
        ),
    ],
)
def test_pyasn1_quirks_are_kept(
    csr: x509.CertificateSigningRequest, attribute: bytes, expected: tuple[str, object]
) -> None:
    crafted = x509.load_der_x509_csr(_csr_with_attributes(csr, [attribute]))
    assert outcome(wire.csr_challenge_password, crafted) == expected
    assert outcome(reference, crafted) == expected
