"""OCSP (RFC 6960) values: read a request, answer it for one CA, sign the answer.

Pure: bytes and objects in, bytes out. Which CA a request names and what the ledger says about
the serial are the caller's business (`python_est.ops.ocsp`); this module decides how a request
is read, what a response holds and who signs it.

Profile. Requests follow the lightweight profile of RFC 5019 §2.1.1: one certificate per
request (OpenSSL, browsers and every embedded client send one); a request naming several is a
`malformedRequest`, so no request costs more than one lookup and one signature. Requests over
`MAX_REQUEST_BYTES` are refused before they are parsed. A request signature is ignored (RFC 6960
§4.1.2 makes it optional, and the answer is public anyway).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from python_est.ca.authority import CertificateAuthority
from python_est.ca.crl import REASON_FLAGS
from python_est.ca.rules import IssuerPrivateKey
from python_est.ca.signer import CaKey, sign_ocsp_response
from python_est.errors import CaError
from python_est.keys import KeyType

# A one-certificate request with a nonce is about 120 bytes; a signed one with its signer's
# certificate a few KiB. Anything larger is not a request we would answer.
MAX_REQUEST_BYTES = 8192
# RFC 9654 §2.1 (which obsoletes RFC 8954): a nonce is 1 to 128 octets; a longer one is refused.
MAX_NONCE_BYTES = 128
# The CertID hash algorithms we answer for; SHA-1 is what OpenSSL and RFC 5019 §2.1.1 use.
CERT_ID_HASHES: tuple[hashes.HashAlgorithm, ...] = (
    hashes.SHA1(),
    hashes.SHA224(),
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
)


class OcspRefusal(Exception):
    """A request answered with an unsuccessful OCSPResponse (RFC 6960 §4.2.1).

    Attributes:
        status: the responseStatus to send.
        reason: a short text for the log line (never sent: the status is the whole answer).
    """

    def __init__(self, status: ocsp.OCSPResponseStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Status(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OcspQuery:
    """The one certificate an OCSP request asks about (its CertID) and the request's nonce."""

    hash_algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    nonce: bytes | None = None


@dataclass(frozen=True)
class CertificateStatus:
    """What the responder says about one serial (RFC 6960 §2.2)."""

    status: Status
    revoked_at: datetime | None = None
    reason: str | None = None  # an RFC 5280 CRLReason name, as the ledger keeps it


@dataclass(frozen=True)
class ResponderCertificate:
    """A delegated OCSP signer (RFC 6960 §4.2.2.2): issued by the CA, EKU id-kp-OCSPSigning."""

    certificate: x509.Certificate
    private_key: IssuerPrivateKey


def parse_request(der: bytes) -> OcspQuery:
    """Read a DER OCSPRequest.

    Raises:
        OcspRefusal: malformedRequest for an oversized, undecodable or multi-certificate request,
            an unsupported CertID hash, or a nonce of the wrong length.
    """
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    if len(der) > MAX_REQUEST_BYTES:
        raise OcspRefusal(malformed, f"request over {MAX_REQUEST_BYTES} bytes")
    try:
        request = ocsp.load_der_ocsp_request(der)
    except NotImplementedError:
        # cryptography refuses a requestList of more than one Request (RFC 5019 §2.1.1).
        raise OcspRefusal(malformed, "more than one certificate in one request") from None
    except ValueError:
        raise OcspRefusal(malformed, "not a DER OCSPRequest") from None
    try:
        algorithm = request.hash_algorithm
        extensions = request.extensions
    except (UnsupportedAlgorithm, ValueError):
        raise OcspRefusal(malformed, "unsupported CertID hash or extension") from None
    if not any(isinstance(algorithm, type(known)) for known in CERT_ID_HASHES):
        raise OcspRefusal(malformed, f"unsupported CertID hash {algorithm.name}")
    nonce = None
    try:
        nonce = extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        pass
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise OcspRefusal(malformed, f"nonce of {len(nonce)} octets (RFC 9654: 1 to 128)")
    return OcspQuery(
        hash_algorithm=algorithm,
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial=request.serial_number,
        nonce=nonce,
    )


def issuer_hashes(ca_certificate: x509.Certificate) -> dict[str, tuple[bytes, bytes]]:
    """(issuerNameHash, issuerKeyHash) of a CA for every CertID hash, by hash name.

    Computed by cryptography's own CertID code (a request for the CA's own certificate), so
    the key hash covers exactly the subjectPublicKey BIT STRING as RFC 6960 §4.1.1 says.
    """
    found = {}
    for algorithm in CERT_ID_HASHES:
        builder = ocsp.OCSPRequestBuilder().add_certificate(
            ca_certificate, ca_certificate, algorithm
        )
        request = builder.build()
        found[algorithm.name] = (request.issuer_name_hash, request.issuer_key_hash)
    return found


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned OCSPResponse carrying only `status` (RFC 6960 §2.3)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def build_response(
    ca: CertificateAuthority,
    query: OcspQuery,
    answer: CertificateStatus,
    *,
    validity: timedelta,
    responder: ResponderCertificate | None = None,
    now: datetime | None = None,
) -> ocsp.OCSPResponse:
    """A signed BasicOCSPResponse for `query` (RFC 6960 §4.2.1).

    Args:
        ca: the CA that issued (or would have issued) the serial.
        query: the request, whose CertID is repeated exactly and whose nonce is echoed.
        answer: good, revoked (with time and reason) or unknown.
        validity: nextUpdate minus thisUpdate.
        responder: a delegated signer; None signs with the CA's own key.
        now: thisUpdate (default: the current time).

    Raises:
        CaError: the key cannot sign.
    """
    this_update = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    revoked_at = None
    reason = None
    if answer.status is Status.REVOKED:
        revoked_at = (answer.revoked_at or this_update).replace(microsecond=0)
        # RFC 5280 §5.3.1: "unspecified" is better left out, as in our CRL.
        reason = REASON_FLAGS.get(answer.reason or "")
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=query.issuer_name_hash,
        issuer_key_hash=query.issuer_key_hash,
        serial_number=query.serial,
        algorithm=query.hash_algorithm,
        cert_status=_CERT_STATUS[answer.status],
        this_update=this_update,
        next_update=this_update + validity,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    if query.nonce is not None:
        # RFC 8954 §2.1 / RFC 9654: the response carries the request's nonce unchanged.
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    return sign_response(ca, builder, responder)


def sign_response(
    ca: CertificateAuthority,
    builder: ocsp.OCSPResponseBuilder,
    responder: ResponderCertificate | None,
) -> ocsp.OCSPResponse:
    """Sign `builder` as `ca` itself or as its delegated `responder`: the one signing point.

    The ResponderID is byKey (RFC 5019 §2.2.3 recommends it); a delegated responder's
    certificate travels in the response so clients can check it (RFC 6960 §4.2.2.2).

    Raises:
        CaError: the key cannot sign.
    """
    key: CaKey
    if responder is None:
        signer, key = ca.certificate, ca.key  # a file key, or one on a PKCS#11 token
    else:
        signer, key = responder.certificate, responder.private_key
        builder = builder.certificates([signer])
    try:
        return sign_ocsp_response(builder, signer, ocsp.OCSPResponderEncoding.HASH, key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CaError("the CA could not sign the OCSP response") from exc


def issue_responder(
    ca: CertificateAuthority,
    *,
    key_type: KeyType = KeyType.EC_P256,
    validity_days: int = 365,
    now: datetime | None = None,
) -> ResponderCertificate:
    """Issue a delegated OCSP signing certificate under `ca` for a fresh key.

    EKU id-kp-OCSPSigning only, keyUsage digitalSignature, and id-pkix-ocsp-nocheck
    (RFC 6960 §4.2.2.2.1): clients need not check the responder's own revocation, so keep
    its lifetime short.
    """
    cert, key = ca.issue_client_certificate(
        common_name=f"{_common_name(ca.certificate)} OCSP Responder",
        key_type=key_type,
        validity_days=validity_days,
        extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        ocsp_no_check=True,
        now=now,
    )
    return ResponderCertificate(cert, key)


def responder_problem(ca: CertificateAuthority, cert: x509.Certificate) -> str | None:
    """Why `cert` cannot sign OCSP responses for `ca`, or None when it can."""
    if cert.issuer != ca.certificate.subject:
        return "it was not issued by the CA"
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return "its signature does not verify with the CA's key"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "it lacks the extendedKeyUsage id-kp-OCSPSigning"
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return "it lacks the extendedKeyUsage id-kp-OCSPSigning"
    return None


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else "CA"
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


_CERT_STATUS = {
    Status.GOOD: ocsp.OCSPCertStatus.GOOD,
    Status.REVOKED: ocsp.OCSPCertStatus.REVOKED,
    Status.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
}
