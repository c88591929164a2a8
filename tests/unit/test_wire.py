"""Unit and property tests for python_est.wire: bytes in, values out."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from python_est import wire
from python_est.errors import EstError, InvalidCsr, MalformedBody, UnsupportedMediaType
from python_est.messages import CERTS_ONLY, PKCS8
from python_est.oids import CHALLENGE_PASSWORD
from python_est.wire import CsrAttribute
from python_est.wire.der import children, read_tlv

DATA = Path(__file__).resolve().parents[1] / "data" / "rfc7030"
PROPERTY = settings(max_examples=200, deadline=None)

# RFC 7030 §4.5.2 as corrected by RFC 8951 §4.
RFC8951_CSRATTRS = (
    "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
)
# libest's example server default: four bare OIDs.
LIBEST_CSRATTRS = "MCYGBysGAQEBARYGCSqGSIb3DQEJAQYFK4EEACIGCWCGSAFlAwQCAg=="

CP = CHALLENGE_PASSWORD.dotted_string


def _nested(depth: int) -> bytes:
    der = b""
    for _ in range(depth):
        der = _tlv(0x30, der)
    return der


def _fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _tlv(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def csr(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _certificate(key: ec.EllipticCurvePrivateKey, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return _certificate(key, "ca-one")


def _b64(der: bytes) -> bytes:
    return base64.b64encode(der)


def _csr_with_attributes(csr: x509.CertificateSigningRequest, attributes: list[bytes]) -> bytes:
    """Re-assemble `csr` with the given DER Attributes (the signature no longer matches).

    The attributes are sorted: DER orders SET OF members, and cryptography insists.
    """
    der = csr.public_bytes(serialization.Encoding.DER)
    info, algorithm, signature = children(der, read_tlv(der))
    version, subject, spki, *_ = children(der, info)
    new_info = _tlv(
        0x30,
        version.raw(der)
        + subject.raw(der)
        + spki.raw(der)
        + _tlv(0xA0, b"".join(sorted(attributes))),
    )
    return _tlv(0x30, new_info + algorithm.raw(der) + signature.raw(der))


def _attribute(oid: str, *values: bytes) -> bytes:
    return _tlv(0x30, wire.encode_csrattrs((oid,))[2:] + _tlv(0x31, b"".join(values)))


def _password_csr(csr: x509.CertificateSigningRequest, *attributes: bytes) -> str | None:
    body = _b64(_csr_with_attributes(csr, list(attributes)))
    return wire.csr_challenge_password(wire.decode_csr(body))


# --- RFC 7030 Appendix A fixtures ---------------------------------------------------------------


def test_a1_fixture_length_is_the_rfc_content_length() -> None:
    assert len(_fixture("a1-cacerts-response.b64")) == 4246


def test_a1_cacerts_holds_the_four_rollover_certificates() -> None:
    certs = wire.decode_certs_only(_fixture("a1-cacerts-response.b64"))
    found = {
        (c.subject.rfc4514_string(), c.issuer.rfc4514_string(), c.serial_number) for c in certs
    }
    assert found == {
        ("CN=estExampleCA OwO", "CN=estExampleCA OwO", 11121883874307308188),
        ("CN=estExampleCA NwO", "CN=estExampleCA OwO", 1),
        ("CN=estExampleCA OwN", "CN=estExampleCA NwN", 2),
        ("CN=estExampleCA NwN", "CN=estExampleCA NwN", 16838569520216125969),
    }


def test_a1_carries_an_empty_crls_field() -> None:
    der = wire.decode_base64_der(_fixture("a1-cacerts-response.b64"), "cacerts")
    assert der.endswith(bytes.fromhex("a1003100"))


def test_a2_csrattrs_decodes_to_the_listed_items() -> None:
    der = wire.decode_base64_der(_fixture("a2-csrattrs-response.b64"), "csrattrs")
    assert len(der) == 126
    assert wire.decode_csrattrs(der) == (
        "1.3.6.1.1.1.1.22",
        CsrAttribute("2.999.1", (b"\x13\x19Parse SET as 2.999.1 data",)),
        CP,
        CsrAttribute("2.999.2", ("2.999.3", "2.999.4", b"\x13\x19Parse SET as 2.999.2 data")),
        "1.3.36.3.3.2.8.1.1.11",
        "2.16.840.1.101.3.4.2.2",
    )
    assert wire.encode_csrattrs(wire.decode_csrattrs(der)) == der


def test_a3_request_subject_and_challenge_password() -> None:
    request = wire.decode_csr(_fixture("a3-simpleenroll-request.b64"))
    assert request.subject.rfc4514_string() == "CN=demostep4 1368141352"
    assert wire.csr_challenge_password(request) == "+rrCir/7+EYu50T4"


def test_a3_response_is_one_certificate_for_the_request_key() -> None:
    request = wire.decode_csr(_fixture("a3-simpleenroll-request.b64"))
    (issued,) = wire.decode_certs_only(_fixture("a3-simpleenroll-response.b64"))
    assert issued.serial_number == 21
    assert issued.issuer.rfc4514_string() == "CN=estExampleCA NwN"
    assert issued.public_key() == request.public_key()


# --- base64 bodies (RFC 8951 §3) ----------------------------------------------------------------


def test_base64_tolerates_cr_lf_space_and_tab(csr: x509.CertificateSigningRequest) -> None:
    der = csr.public_bytes(serialization.Encoding.DER)
    text = _b64(der)
    messy = b"\r\n ".join(text[i : i + 10] for i in range(0, len(text), 10)) + b"\t\r\n"
    assert wire.decode_base64_der(messy, "thing") == der


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty body"),
        (b" \r\n\t", "empty body"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n", "PEM is not accepted"),
        (b"\x30\x03\x02\x01\x00", "binary DER is not accepted"),
        (b"MAMCAQA", "bad padding"),
        (b"MAM!CAQA", "invalid base64"),
        (b"MAMC-_QA", "invalid base64"),
        (b"MA==MA==", "invalid base64"),
        (_b64(b"\x30\x03\x02\x01\x00\x00"), "1 trailing bytes"),
        (_b64(b"\x30\x05\x02\x01"), "not a DER object"),
        (_b64(b"\x30\x80\x00\x00"), "not a DER object"),
    ],
)
def test_base64_rejections_name_the_problem(body: bytes, detail: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        wire.decode_base64_der(body, "PKCS#10 request")
    assert caught.value.status == 400
    assert detail in caught.value.detail
    assert caught.value.detail.startswith("PKCS#10 request: ")


def test_encode_base64_wraps_at_64_columns_with_lf() -> None:
    data = bytes(range(256)) * 3
    text = wire.encode_base64(data)
    lines = text.split(b"\n")
    assert lines[-1] == b""
    assert all(len(line) == 64 for line in lines[:-2])
    assert 0 < len(lines[-2]) <= 64
    assert base64.b64decode(text) == data


# --- PKCS#10 ------------------------------------------------------------------------------------


def test_decode_csr_round_trip(csr: x509.CertificateSigningRequest) -> None:
    body = wire.encode_base64(csr.public_bytes(serialization.Encoding.DER))
    assert wire.decode_csr(body) == csr


def test_decode_csr_does_not_check_the_signature(csr: x509.CertificateSigningRequest) -> None:
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    decoded = wire.decode_csr(_b64(bytes(der)))
    assert not decoded.is_signature_valid


def test_decode_csr_names_a_certificate(cert: x509.Certificate) -> None:
    with pytest.raises(InvalidCsr) as caught:
        wire.decode_csr(_b64(cert.public_bytes(serialization.Encoding.DER)))
    assert caught.value.status == 400
    assert caught.value.detail == "body is an X.509 certificate, not a PKCS#10 request"


def test_decode_csr_names_a_cms_message(cert: x509.Certificate) -> None:
    with pytest.raises(InvalidCsr, match="CMS message"):
        wire.decode_csr(wire.encode_certs_only([cert]))


def test_decode_csr_rejects_other_der() -> None:
    with pytest.raises(InvalidCsr, match="not a valid PKCS#10 request"):
        wire.decode_csr(_b64(b"\x30\x03\x02\x01\x00"))


def test_decode_csr_rejects_garbage_as_malformed_body() -> None:
    with pytest.raises(MalformedBody):
        wire.decode_csr(b"garbage!!")


# --- challengePassword ------------------------------------------------------------------------


def test_challenge_password_absent(csr: x509.CertificateSigningRequest) -> None:
    assert wire.csr_challenge_password(csr) is None
    assert _password_csr(csr) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (_tlv(0x13, b"+rrCir/7+EYu50T4"), "+rrCir/7+EYu50T4"),  # PrintableString
        (_tlv(0x0C, "pässword".encode()), "pässword"),  # UTF8String
        (_tlv(0x16, b"ia5 text"), "ia5 text"),  # IA5String
        (_tlv(0x1E, "bmp".encode("utf-16-be")), "bmp"),  # BMPString
        (_tlv(0x14, b"teletex"), "teletex"),  # TeletexString
        (_tlv(0x1C, "univ".encode("utf-32-be")), "univ"),  # UniversalString
    ],
)
def test_challenge_password_string_types(
    csr: x509.CertificateSigningRequest, value: bytes, expected: str
) -> None:
    assert _password_csr(csr, _attribute(CP, value)) == expected


def test_challenge_password_from_cryptography_builder(key: ec.EllipticCurvePrivateKey) -> None:
    built = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_attribute(CHALLENGE_PASSWORD, b"s3cret")
        .sign(key, hashes.SHA256())
    )
    assert wire.csr_challenge_password(built) == "s3cret"


def test_challenge_password_ignores_other_attributes(csr: x509.CertificateSigningRequest) -> None:
    other = _attribute("1.2.840.113549.1.9.2", _tlv(0x13, b"unstructured"))
    assert _password_csr(csr, other, _attribute(CP, _tlv(0x13, b"pw"))) == "pw"


@pytest.mark.parametrize(
    ("attributes", "detail"),
    [
        ([_attribute(CP, _tlv(0x13, b"a"), _tlv(0x13, b"b"))], "exactly one value"),
        ([_attribute(CP)], "exactly one value"),
        ([_attribute(CP, _tlv(0x13, b"a")), _attribute(CP, _tlv(0x13, b"b"))], "more than one"),
        ([_attribute(CP, _tlv(0x13, b"x" * 256))], "longer than 255"),
        ([_attribute(CP, _tlv(0x02, b"\x01"))], "not a DirectoryString"),
        ([_attribute(CP, _tlv(0x0C, b"\xff\xfe"))], "not a DirectoryString"),
    ],
)
def test_challenge_password_rejections(
    csr: x509.CertificateSigningRequest, attributes: list[bytes], detail: str
) -> None:
    with pytest.raises(InvalidCsr) as caught:
        _password_csr(csr, *attributes)
    assert caught.value.status == 400
    assert detail in caught.value.detail


def test_challenge_password_of_255_characters_is_accepted(
    csr: x509.CertificateSigningRequest,
) -> None:
    assert _password_csr(csr, _attribute(CP, _tlv(0x13, b"x" * 255))) == "x" * 255


# --- certs-only ---------------------------------------------------------------------------------


def test_certs_only_round_trip(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    other = _certificate(key, "ca-two")
    body = wire.encode_certs_only([cert, other])
    assert set(wire.decode_certs_only(body)) == {cert, other}
    # Lines of 64 characters ending in LF, as in RFC 7030's examples: OpenSSL's base64 BIO
    # (libest) mangles one long line.
    lines = body.split(b"\n")
    assert lines[-1] == b"" and all(0 < len(line) <= 64 for line in lines[:-1])
    assert all(len(line) == 64 for line in lines[:-2])
    der = base64.b64decode(body)
    assert set(pkcs7.load_der_pkcs7_certificates(der)) == {cert, other}
    # strongSwan's layout: the same base64 without any line break.
    flat = wire.one_line_base64(body)
    assert not any(c in flat for c in b"\r\n \t") and base64.b64decode(flat, validate=True) == der


def test_certs_only_without_crls_field_is_accepted(cert: x509.Certificate) -> None:
    der = pkcs7.serialize_certificates([cert], serialization.Encoding.DER)
    assert not der.endswith(bytes.fromhex("a1003100"))
    assert wire.decode_certs_only(_b64(der)) == [cert]


def test_encode_certs_only_needs_a_certificate() -> None:
    with pytest.raises(ValueError):
        wire.encode_certs_only([])


def _signed_data(content_type: bytes, *fields: bytes) -> bytes:
    return _tlv(0x30, content_type + _tlv(0xA0, _tlv(0x30, b"".join(fields))))


SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")
DATA_OID = bytes.fromhex("06092a864886f70d010701")
EMPTY_ENCAP = _tlv(0x30, DATA_OID)


@pytest.mark.parametrize(
    "der",
    [
        _tlv(0x30, _tlv(0x02, b"\x01")),
        _signed_data(DATA_OID, b"\x02\x01\x01", b"\x31\x00", EMPTY_ENCAP, b"\x31\x00"),
        _signed_data(SIGNED_DATA_OID, b"\x02\x01\x01", b"\x31\x00", EMPTY_ENCAP),
        _signed_data(SIGNED_DATA_OID, b"\x02\x01\x01", b"\x31\x00", EMPTY_ENCAP, b"\x31\x00"),
        _signed_data(
            SIGNED_DATA_OID, b"\x02\x01\x01", b"\x31\x00", EMPTY_ENCAP, b"\xa0\x00", b"\x31\x00"
        ),
        _signed_data(
            SIGNED_DATA_OID,
            b"\x02\x01\x01",
            b"\x31\x00",
            EMPTY_ENCAP,
            _tlv(0xA0, b"\x30\x03\x02\x01\x00"),
            b"\x31\x00",
        ),
    ],
    ids=["not-content-info", "not-signed-data", "short", "no-certs", "empty-bag", "bad-cert"],
)
def test_decode_certs_only_rejections(der: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        wire.decode_certs_only(_b64(der))
    assert caught.value.detail.startswith("certs-only response: ")


def _with_serial_first_byte(cert: x509.Certificate, first: int) -> bytes:
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = children(der, read_tlv(der))[0]
    serial = children(der, tbs)[1]  # after the [0] version
    return der[: serial.content_start] + bytes([first]) + der[serial.content_start + 1 :]


@pytest.mark.parametrize("first", [0x80, 0xFF])
def test_decode_certs_only_refuses_negative_serials(cert: x509.Certificate, first: int) -> None:
    bad = _with_serial_first_byte(cert, first)
    der = _signed_data(
        SIGNED_DATA_OID, b"\x02\x01\x01", b"\x31\x00", EMPTY_ENCAP, _tlv(0xA0, bad), b"\x31\x00"
    )
    with pytest.raises(MalformedBody, match="certificate 1 is invalid"):
        wire.decode_certs_only(_b64(der))


# --- CsrAttrs -----------------------------------------------------------------------------------


def test_rfc8951_example_round_trips_byte_exact() -> None:
    der = base64.b64decode(RFC8951_CSRATTRS)
    items = wire.decode_csrattrs(der)
    assert items == (
        CP,
        CsrAttribute("1.2.840.10045.2.1", ("1.3.132.0.34",)),
        CsrAttribute("1.2.840.113549.1.9.14", ("1.3.6.1.1.1.1.22",)),
        "1.2.840.10045.4.3.3",
    )
    assert wire.encode_csrattrs(items) == der


def test_rfc8951_example_from_config_text() -> None:
    spec = "challengePassword, id-ecPublicKey:secp384r1, extensionRequest=macAddress, "
    spec += "ecdsa-with-SHA384"
    assert wire.encode_csrattrs(wire.parse_csrattrs_spec(spec)) == base64.b64decode(
        RFC8951_CSRATTRS
    )


def test_libest_flat_oid_default() -> None:
    assert wire.decode_csrattrs(base64.b64decode(LIBEST_CSRATTRS)) == (
        "1.3.6.1.1.1.1.22",
        "1.2.840.113549.1.9.1",
        "1.3.132.0.34",
        "2.16.840.1.101.3.4.2.2",
    )


def test_empty_csrattrs_is_an_empty_sequence() -> None:
    assert wire.encode_csrattrs(()) == b"\x30\x00"
    assert wire.decode_csrattrs(base64.b64decode("MAA=")) == ()


def test_encode_sorts_set_values_as_der_requires() -> None:
    der = wire.encode_csrattrs([CsrAttribute("2.999.2", (b"\x13\x01z", "2.999.4", "2.999.3"))])
    (item,) = wire.decode_csrattrs(der)
    assert isinstance(item, CsrAttribute)
    assert item.values == ("2.999.3", "2.999.4", b"\x13\x01z")


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30\x00\x00",
        b"\x31\x00",
        b"\x30\x03\x02\x01\x00",
        _tlv(0x30, _tlv(0x30, _tlv(0x06, b"\x2a\x03") + b"\x31\x00")),
        _tlv(0x30, _tlv(0x30, _tlv(0x06, b"\x2a\x03") + _tlv(0x31, b"\x06\x00"))),
        # Found by fuzzing: an 8-byte inner length made pyasn1 raise OverflowError.
        _tlv(0x30, _tlv(0x30, _tlv(0x06, b"\x88\x37\x02") + _tlv(0x31, b"\x06\x88" + b"\xff" * 8))),
        _tlv(0x30, _tlv(0x30, _tlv(0x06, b"\x2a\x03") + _tlv(0x31, _nested(40)))),
        b"\x30",
    ],
    ids=[
        "empty",
        "trailing",
        "set",
        "integer",
        "attribute-without-values",
        "empty-oid-value",
        "huge-inner-length",
        "too-deep",
        "truncated",
    ],
)
def test_decode_csrattrs_rejections(der: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        wire.decode_csrattrs(der)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("oid", "values", "error"),
    [
        ("1.2.3", (), ValueError),
        ("not-an-oid", ("1.2.3",), ValueError),
        ("1.2.3", ("9.9",), ValueError),
        ("1.2.3", (b"\x13\x01a\x00",), ValueError),
        ("1.2.3", (b"\x13",), ValueError),
        ("1.2.3", (42,), TypeError),
    ],
)
def test_csr_attribute_validates(oid: str, values: tuple[object, ...], error: type) -> None:
    with pytest.raises(error):
        CsrAttribute(oid, values)  # type: ignore[arg-type]


def test_encode_csrattrs_rejects_other_items() -> None:
    with pytest.raises(TypeError):
        wire.encode_csrattrs([b"\x06\x01\x01"])  # type: ignore[list-item]


def test_spec_names_are_case_insensitive_and_dotted_oids_pass() -> None:
    spec = " CHALLENGEPASSWORD ,1.2.3.4, extensionRequest = macaddress+1.5 "
    assert wire.parse_csrattrs_spec(spec) == (
        CP,
        "1.2.3.4",
        CsrAttribute("1.2.840.113549.1.9.14", ("1.3.6.1.1.1.1.22", "1.5")),
    )


def test_blank_spec_is_no_attributes() -> None:
    assert wire.parse_csrattrs_spec("  ") == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("challengePassword, nosuchname", "unknown OID name 'nosuchname'"),
        ("challengePassword,,macAddress", "empty entry"),
        ("macAddress, macAddress", "listed twice"),
        ("extensionRequest=macAddress, extensionRequest=emailAddress", "listed twice"),
        ("extensionRequest=", "empty value"),
        ("extensionRequest=macAddress+", "empty value"),
        ("3.1", "not a dotted OID"),
    ],
)
def test_spec_errors_are_clear(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wire.parse_csrattrs_spec(spec)


def test_with_challenge_password() -> None:
    assert wire.with_challenge_password(("1.2.3",)) == (CP, "1.2.3")
    assert wire.with_challenge_password(("1.2.3", CP)) == ("1.2.3", CP)
    listed = (CsrAttribute(CP, (b"\x13\x01x",)),)
    assert wire.with_challenge_password(listed) == listed


# --- media types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/pkcs10", ("application/pkcs10", {})),
        ("Application/PKCS10 ; Charset = UTF-8 ;", ("application/pkcs10", {"charset": "UTF-8"})),
        (CERTS_ONLY, ("application/pkcs7-mime", {"smime-type": "certs-only"})),
        ("multipart/mixed ; boundary=est", ("multipart/mixed", {"boundary": "est"})),
        ('multipart/mixed;boundary="a;b \\"c\\""', ("multipart/mixed", {"boundary": 'a;b "c"'})),
        ("text/plain; a=1; a=2", ("text/plain", {"a": "1"})),
    ],
)
def test_parse_media_type(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert wire.parse_media_type(value) == expected


@pytest.mark.parametrize(
    "value", ["", "pkcs10", "/pkcs10", "a/b/c", "a/b; c", "a/b; c=", 'a/b; c="open', "a/b; c=d e"]
)
def test_parse_media_type_rejects_garbage(value: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        wire.parse_media_type(value)
    assert caught.value.status == 415


# --- serverkeygen multipart ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keygen_response(
    key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> tuple[str, bytes, bytes]:
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    content_type, body = wire.encode_serverkeygen(
        key_der, PKCS8, wire.encode_certs_only([cert]), "est-server-boundary"
    )
    return content_type, body, key_der


def test_serverkeygen_layout(keygen_response: tuple[str, bytes, bytes]) -> None:
    content_type, body, _ = keygen_response
    assert content_type == "multipart/mixed; boundary=est-server-boundary"
    assert body.startswith(
        b"--est-server-boundary\r\nContent-Type: application/pkcs8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nMI"
    )
    assert body.endswith(b"\r\n--est-server-boundary--\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert body.count(b"--est-server-boundary\r\n") == 2


def test_serverkeygen_parts_parse_back_and_key_matches_cert(
    keygen_response: tuple[str, bytes, bytes], cert: x509.Certificate
) -> None:
    content_type, body, key_der = keygen_response
    (key_headers, key_part), (cert_headers, cert_part) = wire.parse_multipart(content_type, body)
    assert key_headers == {"content-type": PKCS8, "content-transfer-encoding": "base64"}
    assert cert_headers == {"content-type": CERTS_ONLY, "content-transfer-encoding": "base64"}
    assert wire.decode_base64_der(key_part, "key") == key_der
    (got,) = wire.decode_certs_only(cert_part)
    private = serialization.load_der_private_key(key_der, None)
    assert got == cert and got.public_key() == private.public_key()


def test_serverkeygen_parts_on_one_line(
    keygen_response: tuple[str, bytes, bytes], cert: x509.Certificate
) -> None:
    content_type, body, key_der = keygen_response
    flat = wire.one_line_parts(content_type, body)
    assert flat.startswith(
        b"--est-server-boundary\r\nContent-Type: application/pkcs8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nMI"
    )
    assert flat.endswith(b"\r\n--est-server-boundary--\r\n")
    (key_headers, key_part), (cert_headers, cert_part) = wire.parse_multipart(content_type, flat)
    assert (key_headers["content-type"], cert_headers["content-type"]) == (PKCS8, CERTS_ONLY)
    # Each part is one line: only the CRLF that ends it.
    assert b"\r" not in key_part and b"\n" not in key_part and b"\n" not in cert_part
    assert base64.b64decode(key_part, validate=True) == key_der
    assert wire.decode_certs_only(cert_part) == [cert]
    assert flat.count(b"\r\n") == 11  # 2 x (delimiter, 2 headers, blank, content) + the close
    with pytest.raises(ValueError, match="boundary"):
        wire.one_line_parts("multipart/mixed", body)


def test_multipart_tolerates_rfc_spacing_lf_preamble_and_epilogue() -> None:
    body = (
        b"preamble\n--est\nContent-Type: application/pkcs8\nContent-Transfer-Encoding:"
        b"\n base64\n\nAAAA\n--est  \ncontent-type: text/plain\n\nsecond\n--est--\nepilogue"
    )
    parts = wire.parse_multipart("multipart/mixed ; boundary=est", body)
    assert parts == [
        (
            {"content-type": "application/pkcs8", "content-transfer-encoding": "base64"},
            b"AAAA",
        ),
        ({"content-type": "text/plain"}, b"second"),
    ]


def test_multipart_quoted_boundary_and_headerless_part() -> None:
    body = b"--a b\r\n\r\nraw\r\n--a b--"
    assert wire.parse_multipart('multipart/mixed; boundary="a b"', body) == [({}, b"raw")]


@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        ("application/pkcs8", b"--est\r\n\r\nx\r\n--est--\r\n", "not multipart"),
        ("multipart/mixed", b"--est\r\n\r\nx\r\n--est--\r\n", "not multipart"),
        ("multipart/mixed; boundary=est", b"--est\r\n\r\nx\r\n", "no closing"),
        ("multipart/mixed; boundary=est", b"--est--\r\n", "no parts"),
        ("multipart/mixed; boundary=est", b"--est\r\nBroken\r\n\r\nx\r\n--est--", "part header"),
        ("multipart/mixed; boundary=est", b"--est\r\nA: b\r\nx\r\n--est--", "blank line"),
        ("multipart/mixed; boundary=", b"", "malformed Content-Type"),
    ],
)
def test_multipart_rejections(content_type: str, body: bytes, detail: str) -> None:
    with pytest.raises(MalformedBody, match=detail):
        wire.parse_multipart(content_type, body)


@pytest.mark.parametrize("boundary", ["", "x" * 71, "has space", "semi;colon", 'quote"'])
def test_serverkeygen_refuses_bad_boundaries(boundary: str) -> None:
    with pytest.raises(ValueError):
        wire.encode_serverkeygen(b"\x30\x00", PKCS8, b"MAA=\n", boundary)


# --- properties: arbitrary input raises only EstError ------------------------------------------


def _only_est_errors(call: object, *args: object) -> None:
    try:
        call(*args)  # type: ignore[operator]
    except EstError:
        pass


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    def mutate(data: tuple[int, int, bool]) -> bytes:
        position, value, truncate = data
        pos = position % len(seed)
        if truncate:
            return seed[:pos]
        return seed[:pos] + bytes([value]) + seed[pos + 1 :]

    return st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.booleans()).map(mutate)


A3_CSR_DER = wire.decode_base64_der(_fixture("a3-simpleenroll-request.b64"), "csr")
A1_DER = wire.decode_base64_der(_fixture("a1-cacerts-response.b64"), "cacerts")
A2_DER = wire.decode_base64_der(_fixture("a2-csrattrs-response.b64"), "csrattrs")


@PROPERTY
@given(st.binary(max_size=300) | st.binary(max_size=200).map(base64.b64encode))
def test_decode_base64_der_raises_only_est_errors(body: bytes) -> None:
    _only_est_errors(wire.decode_base64_der, body, "body")


@PROPERTY
@given(st.binary(max_size=300).map(base64.b64encode) | _mutations(A3_CSR_DER).map(_b64))
def test_decode_csr_raises_only_est_errors(body: bytes) -> None:
    try:
        csr = wire.decode_csr(body)
    except EstError:
        return
    _only_est_errors(wire.csr_challenge_password, csr)


@PROPERTY
@given(st.binary(max_size=300) | _mutations(A2_DER))
def test_decode_csrattrs_raises_only_est_errors(der: bytes) -> None:
    _only_est_errors(wire.decode_csrattrs, der)


@PROPERTY
@given(_mutations(A1_DER).map(_b64))
def test_decode_certs_only_raises_only_est_errors(body: bytes) -> None:
    _only_est_errors(wire.decode_certs_only, body)


@PROPERTY
@given(st.text(max_size=80), st.binary(max_size=300))
def test_parse_multipart_raises_only_est_errors(content_type: str, body: bytes) -> None:
    _only_est_errors(wire.parse_multipart, content_type, body)
    _only_est_errors(wire.parse_multipart, "multipart/mixed; boundary=b", b"--b\r\n" + body)


@PROPERTY
@given(st.text(max_size=80))
def test_parse_media_type_raises_only_est_errors(value: str) -> None:
    _only_est_errors(wire.parse_media_type, value)


@PROPERTY
@given(st.lists(st.sampled_from(["1.2.3", CP, "2.999.1"]), max_size=5))
def test_csrattrs_round_trip(oids: list[str]) -> None:
    attribute = CsrAttribute("2.999.9", tuple(oids) or ("1.2",))
    *bare, decoded = wire.decode_csrattrs(wire.encode_csrattrs((*oids, attribute)))
    assert bare == oids
    assert isinstance(decoded, CsrAttribute)
    assert sorted(decoded.values) == sorted(attribute.values)
