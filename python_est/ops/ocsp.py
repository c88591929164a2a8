"""The OCSP responder (RFC 6960): answers from the ledger, over HTTP GET and POST.

Which CA. A request's CertID names its issuer by hashes (issuerNameHash, issuerKeyHash). The
responder keeps those hashes for every CA it answers for, under every CertID hash algorithm,
and picks the CA first; only then does it look the serial up. A request for any other issuer
gets `unauthorized` (RFC 6960 §2.3): we are not its responder. Today that is the one CA of the
state directory; CAs per label join by being passed in `authorities`.

What it says. A serial the ledger holds, issued by that CA (issuer name and authority key
identifier), is `good`, or `revoked` with the ledger's time and reason from the moment the
revocation commits (no restart, no CRL regeneration). Anything else is `unknown`: not issued by
this CA (RFC 6960 §2.2). The answer is signed fresh for each request, so it is never staler
than the ledger; thisUpdate is the signing time and nextUpdate `validity` later.

Transport (RFC 6960 appendix A.1). POST carries the DER request as `application/ocsp-request`;
GET carries it base64- and URL-encoded in the path below the responder's path. Responses are
`application/ocsp-response` with status 200, also for unsuccessful OCSP statuses (the client
reads those from the body). GET answers without a nonce carry the caching headers of RFC 5019
§6.2, so HTTP caches can serve them until nextUpdate; answers to a nonce are unique and are
never cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Protocol
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from python_est.ca import CertificateAuthority
from python_est.ca.ocsp import (
    MAX_REQUEST_BYTES,
    CertificateStatus,
    OcspQuery,
    OcspRefusal,
    ResponderCertificate,
    Status,
    build_response,
    issuer_hashes,
    parse_request,
    unsuccessful,
)
from python_est.errors import CaError, EstError, MethodNotAllowed, UnsupportedMediaType
from python_est.ledger import IssuedCertificate
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import PeerIdentity
from python_est.routes import RoutingTable

log = logging.getLogger("python_est.ocsp")

# RFC 6960 appendix A.1 (and RFC 2560 before it): the media types.
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
_STATUS = x509_ocsp.OCSPResponseStatus
_NO_STORE = ("Cache-Control", "no-store")
# The base64 of the largest request we read, every character percent-encoded.
_MAX_GET_CHARS = 3 * 4 * (MAX_REQUEST_BYTES // 3 + 1)


class StatusSource(Protocol):
    """What the responder needs from the ledger (`python_est.ledger.Ledger`)."""

    def get(self, serial: int) -> IssuedCertificate | None: ...


@dataclass(frozen=True)
class OcspAuthority:
    """A CA the responder answers for, and who signs its responses.

    Attributes:
        ca: the issuing CA.
        responder: its delegated OCSP signer; None: the CA signs.
    """

    ca: CertificateAuthority
    responder: ResponderCertificate | None = None


@dataclass(frozen=True)
class OcspAnswer:
    """One answer: the DER OCSPResponse and what the log line and the headers need."""

    der: bytes
    summary: str
    this_update: datetime | None = None
    next_update: datetime | None = None
    nonce: bool = False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class OcspResponder:
    """Answers DER OCSP requests for `authorities` from `ledger`. Thread-safe (no state).

    Args:
        authorities: the CAs to answer for; a request naming another issuer is `unauthorized`.
        ledger: the issued certificates and their revocations.
        validity: nextUpdate minus thisUpdate.
        clock: the current time (tests pass a fixed one).
    """

    def __init__(
        self,
        authorities: Sequence[OcspAuthority],
        ledger: StatusSource,
        *,
        validity: timedelta,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if validity <= timedelta(0):
            raise ValueError("validity must be positive")
        self._ledger = ledger
        self._validity = validity
        self._clock = clock
        self._by_hash: dict[tuple[str, bytes, bytes], OcspAuthority] = {}
        for authority in authorities:
            for name, (name_hash, key_hash) in issuer_hashes(authority.ca.certificate).items():
                self._by_hash.setdefault((name, name_hash, key_hash), authority)

    def answer(self, der: bytes) -> OcspAnswer:
        """The DER OCSPResponse to the DER OCSPRequest `der`; never raises for bad input."""
        try:
            query = parse_request(der)
        except OcspRefusal as refusal:
            return OcspAnswer(unsuccessful(refusal.status), f"malformedRequest ({refusal.reason})")
        authority = self._by_hash.get(
            (query.hash_algorithm.name, query.issuer_name_hash, query.issuer_key_hash)
        )
        if authority is None:
            return OcspAnswer(unsuccessful(_STATUS.UNAUTHORIZED), "unauthorized (unknown issuer)")
        serial = f"serial={query.serial:X}"
        try:
            status = self._status(authority.ca, query)
        except EstError as exc:
            # RFC 6960 §2.3: tryLater when the responder cannot answer for now.
            log.warning("OCSP: cannot read the ledger: %s", exc.detail)
            return OcspAnswer(unsuccessful(_STATUS.TRY_LATER), f"tryLater {serial}")
        now = self._clock()
        try:
            response = build_response(
                authority.ca,
                query,
                status,
                validity=self._validity,
                responder=authority.responder,
                now=now,
            )
        except CaError as exc:
            log.error("OCSP: %s", exc.detail)
            return OcspAnswer(unsuccessful(_STATUS.INTERNAL_ERROR), f"internalError {serial}")
        return OcspAnswer(
            response.public_bytes(serialization.Encoding.DER),
            f"{status.status.value} {serial}",
            this_update=response.this_update_utc,
            next_update=response.next_update_utc,
            nonce=query.nonce is not None,
        )

    def _status(self, ca: CertificateAuthority, query: OcspQuery) -> CertificateStatus:
        entry = self._ledger.get(query.serial)
        if entry is None:
            return CertificateStatus(Status.UNKNOWN)
        cert = x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
        if not _issued_by(cert, ca):
            return CertificateStatus(Status.UNKNOWN)  # an earlier CA's serial
        if entry.revoked_at is not None:
            return CertificateStatus(Status.REVOKED, entry.revoked_at, entry.revocation_reason)
        return CertificateStatus(Status.GOOD)


def _issued_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    if cert.issuer != ca.certificate.subject:
        return False
    # The same name may belong to a CA this state directory had before (init --force): the
    # authority key identifier tells them apart without a signature check.
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return _signed_by(cert, ca)
    if aki.key_identifier is None:
        return _signed_by(cert, ca)
    return aki.key_identifier == ski.digest


def _signed_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class OcspEndpoint:
    """The responder on HTTP: POST to `path`, GET below it (RFC 6960 appendix A.1).

    Anonymous: OCSP answers are public, signed statements.
    """

    def __init__(self, responder: OcspResponder, *, path: str = "/ocsp") -> None:
        self.responder = responder
        self.path = path.rstrip("/") or "/"

    def add_routes(self, table: RoutingTable) -> None:
        """Answer `path` and everything below it, tagged "ocsp"."""
        table.add_tree(self.path, "ocsp", self.handle)

    def handle(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        """Answer one HTTP request for the responder."""
        if request.method == "POST":
            media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
            if media != OCSP_REQUEST:
                raise UnsupportedMediaType(f"send the OCSP request as {OCSP_REQUEST}")
            answer = self.responder.answer(request.body)
            return self._response(answer, cacheable=False)
        if request.method == "GET":
            encoded = request.path[len(self.path) :].lstrip("/")
            der = _decode_get(encoded)
            if der is None:
                answer = OcspAnswer(
                    unsuccessful(_STATUS.MALFORMED_REQUEST),
                    "malformedRequest (GET path is not URL-encoded base64)",
                )
            else:
                answer = self.responder.answer(der)
            return self._response(answer, cacheable=True)
        raise MethodNotAllowed(f"{request.method} is not allowed here", allowed=("GET", "POST"))

    @staticmethod
    def _response(answer: OcspAnswer, *, cacheable: bool) -> HttpResponse:
        headers: list[tuple[str, str]] = [("Content-Type", OCSP_RESPONSE)]
        if cacheable and not answer.nonce and answer.this_update and answer.next_update:
            headers += _cache_headers(answer.der, answer.this_update, answer.next_update)
        else:
            headers.append(_NO_STORE)
        return HttpResponse(200, tuple(headers), answer.der, note=f"ocsp={answer.summary}")


def _decode_get(encoded: str) -> bytes | None:
    # RFC 6960 appendix A.1: url-encoding of the base64 of the DER. Clients differ in what they
    # escape ('/' and '+' may arrive raw or as %2F, %2B), so decode percent-escapes first.
    if not encoded or len(encoded) > _MAX_GET_CHARS:
        return None
    text = unquote_to_bytes(encoded)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _cache_headers(
    der: bytes, this_update: datetime, next_update: datetime
) -> list[tuple[str, str]]:
    # RFC 5019 §6.2: max-age no later than nextUpdate, Last-Modified thisUpdate, Expires
    # nextUpdate, and an ETag; must-revalidate so no cache serves it past nextUpdate.
    max_age = max(0, int((next_update - this_update).total_seconds()))
    return [
        ("Cache-Control", f"max-age={max_age}, public, no-transform, must-revalidate"),
        ("Last-Modified", format_datetime(this_update, usegmt=True)),
        ("Expires", format_datetime(next_update, usegmt=True)),
        ("ETag", '"' + hashlib.sha256(der).hexdigest()[:32] + '"'),
    ]
