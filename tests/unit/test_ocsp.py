"""The OCSP responder without sockets: requests in, DER responses out, checked with cryptography.

Covers `python_est.ca.ocsp` (reading requests, building and signing responses, the delegated
signer) and `python_est.ops.ocsp` (choosing the CA by the CertID, the ledger lookup, GET and
POST, caching headers).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from python_est.ca import CertificateAuthority
from python_est.ca.ocsp import (
    MAX_REQUEST_BYTES,
    OcspRefusal,
    issue_responder,
    parse_request,
    responder_problem,
)
from python_est.errors import MethodNotAllowed, UnsupportedMediaType
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate, SqliteLedger
from python_est.messages import HttpRequest
from python_est.ops.ocsp import (
    OCSP_REQUEST,
    OCSP_RESPONSE,
    OcspAuthority,
    OcspEndpoint,
    OcspResponder,
)
from python_est.policy import PeerIdentity, TlsInfo
from python_est.routes import RouteTag, RoutingTable

T = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
PEER = PeerIdentity(address="127.0.0.1", tls=TlsInfo("plain", "-"))
STATUS = ocsp.OCSPResponseStatus


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048])
def ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    return CertificateAuthority.create_root(
        common_name="OCSP Test CA", key_type=request.param, validity_days=400, now=T
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def issue(ca: CertificateAuthority, ledger: SqliteLedger | None, cn: str) -> x509.Certificate:
    cert, _ = ca.issue_client_certificate(common_name=cn, now=T - timedelta(days=1))
    if ledger is not None:
        ledger.record(
            IssuedCertificate.from_certificate(
                cert, requester="admin", auth_method="admin", label="", operation="simpleenroll"
            )
        )
    return cert


def request_der(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def responder_for(
    ca: CertificateAuthority, ledger: SqliteLedger, *, delegated: bool = False
) -> OcspResponder:
    signer = issue_responder(ca, now=T - timedelta(days=1)) if delegated else None
    return OcspResponder(
        [OcspAuthority(ca, signer)], ledger, validity=timedelta(minutes=30), clock=lambda: T
    )


def verified(der: bytes, signer: x509.Certificate) -> ocsp.OCSPResponse:
    """The parsed response, after checking that `signer` signed it."""
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is STATUS.SUCCESSFUL
    key = signer.public_key()
    hash_algorithm = response.signature_hash_algorithm
    assert hash_algorithm is not None
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hash_algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(
            response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hash_algorithm
        )
    return response


# --- answers ---------------------------------------------------------------------------------


def test_an_issued_certificate_is_good_signed_by_the_ca_with_sensible_times(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "good")
    answer = responder_for(ca, ledger).answer(request_der(cert, ca.certificate))
    response = verified(answer.der, ca.certificate)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == cert.serial_number
    assert response.this_update_utc == T
    assert response.next_update_utc == T + timedelta(minutes=30)
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(ca.certificate.public_key()).digest
    )
    assert response.certificates == []
    assert answer.summary == f"good serial={cert.serial_number:X}"


def test_a_revoked_certificate_is_revoked_with_time_and_reason_at_once(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "revoked")
    responder = responder_for(ca, ledger)
    der = request_der(cert, ca.certificate)
    assert verified(responder.answer(der).der, ca.certificate).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    ledger.revoke(cert.serial_number, "keyCompromise", when=T - timedelta(hours=2))
    response = verified(responder.answer(der).der, ca.certificate)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == T - timedelta(hours=2)
    assert response.revocation_reason is x509.ReasonFlags.key_compromise


def test_an_unspecified_revocation_carries_no_reason(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "unspecified")
    ledger.revoke(cert.serial_number, "unspecified", when=T - timedelta(hours=1))
    response = verified(
        responder_for(ca, ledger).answer(request_der(cert, ca.certificate)).der, ca.certificate
    )
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_a_serial_the_ca_never_issued_is_unknown(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    never_recorded = issue(ca, None, "not in the ledger")
    response = verified(
        responder_for(ca, ledger).answer(request_der(never_recorded, ca.certificate)).der,
        ca.certificate,
    )
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_a_ledger_serial_of_an_earlier_ca_with_the_same_name_is_unknown(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    # init --force made a new CA of the same name; the old CA's certificates stay in the ledger.
    earlier = CertificateAuthority.create_root(
        common_name="OCSP Test CA", key_type=KeyType.EC_P256, validity_days=400, now=T
    )
    old_cert = issue(earlier, ledger, "old")
    # Ask the current CA about the old serial (a client holding the new CA certificate).
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(*_hashes(ca.certificate), old_cert.serial_number, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = verified(responder_for(ca, ledger).answer(der).der, ca.certificate)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def _hashes(issuer: x509.Certificate) -> tuple[bytes, bytes]:
    request = ocsp.OCSPRequestBuilder().add_certificate(issuer, issuer, hashes.SHA1()).build()
    return request.issuer_name_hash, request.issuer_key_hash


def test_a_request_for_another_issuer_is_unauthorized(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    stranger = CertificateAuthority.create_root(
        common_name="Somebody Else", key_type=KeyType.EC_P256, validity_days=30, now=T
    )
    cert = issue(stranger, ledger, "foreign")  # even when its serial is in our ledger
    answer = responder_for(ca, ledger).answer(request_der(cert, stranger.certificate))
    assert ocsp.load_der_ocsp_response(answer.der).response_status is STATUS.UNAUTHORIZED
    assert answer.summary.startswith("unauthorized")


@pytest.mark.parametrize(
    "algorithm", [hashes.SHA1(), hashes.SHA224(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]
)
def test_every_certid_hash_finds_the_ca_and_is_echoed(
    ca: CertificateAuthority, ledger: SqliteLedger, algorithm: hashes.HashAlgorithm
) -> None:
    cert = issue(ca, ledger, "hashes")
    der = request_der(cert, ca.certificate, algorithm=algorithm)
    response = verified(responder_for(ca, ledger).answer(der).der, ca.certificate)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.hash_algorithm.name == algorithm.name


def test_the_nonce_is_echoed_and_a_request_without_one_gets_none(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "nonce")
    responder = responder_for(ca, ledger)
    nonce = bytes(range(32))
    response = verified(
        responder.answer(request_der(cert, ca.certificate, nonce=nonce)).der, ca.certificate
    )
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    plain = verified(responder.answer(request_der(cert, ca.certificate)).der, ca.certificate)
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.OCSPNonce)


def test_a_delegated_signer_signs_and_travels_in_the_response(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "delegated")
    responder = responder_for(ca, ledger, delegated=True)
    response = ocsp.load_der_ocsp_response(responder.answer(request_der(cert, ca.certificate)).der)
    [signer] = response.certificates
    verified(response.public_bytes(serialization.Encoding.DER), signer)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert signer.issuer == ca.certificate.subject
    signer.verify_directly_issued_by(ca.certificate)
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert not signer.extensions.get_extension_for_class(x509.OCSPNoCheck).critical
    assert responder_problem(ca, signer) is None


def test_a_signer_that_is_not_an_ocsp_signer_of_the_ca_is_refused(
    ca: CertificateAuthority,
) -> None:
    client, _ = ca.issue_client_certificate(common_name="not a signer")
    assert responder_problem(ca, client) == "it lacks the extendedKeyUsage id-kp-OCSPSigning"
    other = CertificateAuthority.create_root(
        common_name="Other", key_type=KeyType.EC_P256, validity_days=30
    )
    assert responder_problem(ca, issue_responder(other).certificate) == (
        "it was not issued by the CA"
    )


# --- bad input -------------------------------------------------------------------------------


def refusal(der: bytes) -> OcspRefusal:
    with pytest.raises(OcspRefusal) as caught:
        parse_request(der)
    assert caught.value.status is STATUS.MALFORMED_REQUEST
    return caught.value


def test_garbage_and_truncated_requests_are_malformed(ca: CertificateAuthority) -> None:
    cert, _ = ca.issue_client_certificate(common_name="x")
    good = request_der(cert, ca.certificate)
    for der in (b"", b"\x30\x03abc", b"not der at all", good[:-1], good + b"\x00"):
        assert refusal(der).reason == "not a DER OCSPRequest"


def test_an_oversized_request_is_refused_before_parsing() -> None:
    assert refusal(b"\x30" * (MAX_REQUEST_BYTES + 1)).reason == (
        f"request over {MAX_REQUEST_BYTES} bytes"
    )


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _body(der: bytes) -> bytes:
    """The contents of the first TLV of `der` (short or long definite length)."""
    first = der[1]
    if first < 0x80:
        return der[2 : 2 + first]
    count = first & 0x7F
    size = int.from_bytes(der[2 : 2 + count], "big")
    return der[2 + count : 2 + count + size]


def with_copies(single: bytes, copies: int) -> bytes:
    """An OCSPRequest whose requestList holds `copies` of the one Request in `single`."""
    request = _body(_body(_body(single)))  # OCSPRequest > tbsRequest > requestList > Request
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, request * copies)))


def test_several_certificates_in_one_request_are_malformed(ca: CertificateAuthority) -> None:
    cert, _ = ca.issue_client_certificate(common_name="many")
    single = request_der(cert, ca.certificate)
    assert parse_request(with_copies(single, 1)).serial == cert.serial_number
    assert refusal(with_copies(single, 2)).reason == "more than one certificate in one request"
    # Thousands are refused by their size before anything is parsed: bounded work.
    assert refusal(with_copies(single, 5000)).reason == f"request over {MAX_REQUEST_BYTES} bytes"


def test_a_certid_hash_we_do_not_know_is_malformed(ca: CertificateAuthority) -> None:
    cert, _ = ca.issue_client_certificate(common_name="odd hash")
    sha1 = bytes.fromhex("06052b0e03021a")  # OID 1.3.14.3.2.26
    assert sha1 in request_der(cert, ca.certificate)
    # The same length, so no DER length changes: 1.3.14.3.2.27 is a signature, not a hash.
    odd = request_der(cert, ca.certificate).replace(sha1, bytes.fromhex("06052b0e03021b"))
    assert refusal(odd).reason == "unsupported CertID hash or extension"


def test_a_nonce_over_128_octets_is_malformed(ca: CertificateAuthority) -> None:
    cert, _ = ca.issue_client_certificate(common_name="long nonce")
    assert parse_request(request_der(cert, ca.certificate, nonce=b"n" * 128)).nonce == b"n" * 128
    assert refusal(request_der(cert, ca.certificate, nonce=b"n" * 129)).reason == (
        "nonce of 129 octets (RFC 9654: 1 to 128)"
    )


def test_the_responder_answers_bad_input_with_malformed_request(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    answer = responder_for(ca, ledger).answer(b"\xff" * 40)
    assert ocsp.load_der_ocsp_response(answer.der).response_status is STATUS.MALFORMED_REQUEST
    assert answer.summary == "malformedRequest (not a DER OCSPRequest)"


def test_a_closed_ledger_answers_try_later(ca: CertificateAuthority, tmp_path: Path) -> None:
    closed = SqliteLedger(tmp_path / "closed.sqlite3")
    closed.close()
    cert, _ = ca.issue_client_certificate(common_name="later")
    answer = responder_for(ca, closed).answer(request_der(cert, ca.certificate))
    assert ocsp.load_der_ocsp_response(answer.der).response_status is STATUS.TRY_LATER


# --- HTTP ------------------------------------------------------------------------------------


def endpoint(ca: CertificateAuthority, ledger: SqliteLedger) -> RoutingTable:
    table = RoutingTable(lambda request: pytest.fail(f"fell through: {request.target}"))
    OcspEndpoint(responder_for(ca, ledger), path="/ocsp").add_routes(table)
    return table


def get_path(der: bytes) -> str:
    return "/ocsp/" + quote(base64.b64encode(der).decode("ascii"), safe="")


def test_post_and_get_give_the_same_answer_and_only_get_is_cacheable(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "http")
    der = request_der(cert, ca.certificate)
    table = endpoint(ca, ledger)
    post = table(HttpRequest("POST", "/ocsp", (("content-type", OCSP_REQUEST),), der), PEER)
    get = table(HttpRequest("GET", get_path(der), ()), PEER)
    for response in (post, get):
        assert response.status == 200
        assert response.header("Content-Type") == OCSP_RESPONSE
        assert verified(response.body, ca.certificate).serial_number == cert.serial_number
    assert post.header("Cache-Control") == "no-store"
    assert get.header("Cache-Control") == "max-age=1800, public, no-transform, must-revalidate"
    assert get.header("Last-Modified") == "Mon, 01 Jun 2026 12:00:00 GMT"
    assert get.header("Expires") == "Mon, 01 Jun 2026 12:30:00 GMT"
    assert get.header("ETag") is not None
    assert table.resolve(HttpRequest("GET", get_path(der), ())).tag == RouteTag("ocsp")


def test_get_accepts_unescaped_slashes_and_plus_signs(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    table = endpoint(ca, ledger)
    for index in range(40):  # until the base64 holds a '/' or '+'
        cert = issue(ca, ledger, f"slash {index}")
        der = request_der(cert, ca.certificate)
        text = base64.b64encode(der).decode("ascii")
        if "/" in text or "+" in text:
            break
    else:
        pytest.fail("no request with '/' or '+' in its base64")
    response = table(HttpRequest("GET", "/ocsp/" + text, ()), PEER)
    assert verified(response.body, ca.certificate).serial_number == cert.serial_number


def test_a_get_answer_to_a_nonce_is_not_cacheable(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    cert = issue(ca, ledger, "nonce get")
    der = request_der(cert, ca.certificate, nonce=b"0123456789abcdef")
    response = endpoint(ca, ledger)(HttpRequest("GET", get_path(der), ()), PEER)
    assert response.header("Cache-Control") == "no-store"


@pytest.mark.parametrize("path", ["/ocsp", "/ocsp/", "/ocsp/!!!notbase64", "/ocsp/AAAA%ZZ"])
def test_a_get_without_a_base64_request_is_malformed(
    ca: CertificateAuthority, ledger: SqliteLedger, path: str
) -> None:
    response = endpoint(ca, ledger)(HttpRequest("GET", path, ()), PEER)
    assert response.status == 200
    parsed = ocsp.load_der_ocsp_response(response.body)
    assert parsed.response_status is STATUS.MALFORMED_REQUEST
    assert response.header("Cache-Control") == "no-store"
    assert response.note.startswith("ocsp=malformedRequest")


def test_post_needs_the_ocsp_media_type_and_other_methods_are_refused(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    table = endpoint(ca, ledger)
    with pytest.raises(UnsupportedMediaType) as media:
        table(HttpRequest("POST", "/ocsp", (("content-type", "text/plain"),), b"x"), PEER)
    assert media.value.status == 415
    with pytest.raises(MethodNotAllowed) as method:
        table(HttpRequest("PUT", "/ocsp", (), b""), PEER)
    assert method.value.status == 405
    assert ("Allow", "GET, POST") in method.value.headers()


def test_a_profile_with_an_ocsp_url_puts_it_in_authority_info_access(
    ca: CertificateAuthority,
) -> None:
    from cryptography.x509.oid import AuthorityInformationAccessOID

    from python_est.profile import IssuanceProfile

    csr_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "aia")]))
        .sign(csr_key, hashes.SHA256())
    )
    url = "http://ocsp.example.net/ocsp"
    cert = ca.issue(csr, IssuanceProfile(ocsp_urls=(url,)))
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.OCSP, url)
    ]
    plain = ca.issue(csr, IssuanceProfile())
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
