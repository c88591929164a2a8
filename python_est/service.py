"""The EST operations of RFC 7030 (as clarified by RFC 8951): `EstService.handle(request, peer)`.

No sockets, threads or files: an `HttpRequest` and the `PeerIdentity` the TLS layer established
go in, an `HttpResponse` comes out, and every refusal is raised as an `EstError` (the server, or
`error_response`, turns it into a short text/plain answer).

Routing. `/.well-known/est[/<label>]/<operation>`; an unknown label is 404, a wrong method 405
with `Allow`. `/cacerts` and `/csrattrs` are anonymous GETs (§4.1.1, §4.5); the POST operations
authenticate first (§4.2, R43), then read the body.

Authentication (§3.2.3, §3.3). Each label names, per operation, alternatives of methods that must
all hold ("cert", "srp", "basic", "cert+basic"). TLS credentials (a validated client certificate,
a TLS-SRP user) are weighed first; HTTP Basic is consulted only when they do not already satisfy
an alternative, so an empty `Authorization: Basic Og==` that libest's estclient sends on its
retry never spoils a certificate-authenticated request. A missing credential is 401 with
`WWW-Authenticate: Basic realm=...` whenever Basic could complete an alternative; a wrong password
is 401 with the challenge again, counted by the `FailureLimiter` per user and per client address;
a locked user or address gets 429 with `Retry-After` before its password is even checked.

Authorization: see the section comment in `python_est.policy` (RA certificates may request any
subject the profile allows; password users their allowed names; a plain client certificate only
its own Subject and subjectAltNames).

Reenrollment (§4.2.2, §3.3.2). The certificate being renewed is the validated TLS client
certificate; without one the answer is 403. It must be signed by this EST CA and not revoked in
the ledger. The CSR Subject must equal the certificate's: compared as DER bytes first, falling back
to RFC 5280 §7.1-style comparison (same attribute types in the same RDN order, values compared
case-insensitively with white space folded). subjectAltName is compared as a set of GeneralNames;
both absent is a match. Rekey (new key) and renewal (same key) are both allowed. The rule holds
for RA certificates too: an RA requests other subjects through /simpleenroll.

Issuance. Every certificate is committed to the ledger before the response is built (a serial
collision signs again, up to three times), then one audit line is logged on "python_est.audit".
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from python_est import oids, wire
from python_est.ca import CertificateAuthority
from python_est.config import AuthMethod, AuthRequirement, LabelConfig
from python_est.errors import (
    AuthenticationRequired,
    CaError,
    EstError,
    Forbidden,
    InvalidCsr,
    LedgerError,
    MethodNotAllowed,
    NotFound,
    NotImplementedOperation,
    UnsupportedMediaType,
)
from python_est.keys import generate_private_key
from python_est.ledger import DuplicateSerial, IssuedCertificate, Ledger, serial_hex
from python_est.messages import (
    CERTS_ONLY,
    CSRATTRS,
    PKCS7_MIME,
    PKCS8,
    PKCS10,
    HttpRequest,
    HttpResponse,
    Operation,
    parse_est_path,
    text_response,
)
from python_est.policy import (
    Authentication,
    BasicCredentials,
    PeerIdentity,
    authorize_enrollment,
    check_linking,
    check_reenrollment,
    parse_basic_authorization,
    satisfied_methods,
)
from python_est.ratelimit import FailureLimiter, address_key, user_key
from python_est.users import UserStore

log = logging.getLogger(__name__)
audit = logging.getLogger("python_est.audit")

MAX_SERIAL_ATTEMPTS = 3
B64 = ("Content-Transfer-Encoding", "base64")
CHALLENGE_PASSWORD = oids.CHALLENGE_PASSWORD.dotted_string
REENROLL_NEEDS_CERT = "reenrollment requires the client certificate being renewed (RFC 7030 §4.2.2)"

Handler = Callable[[HttpRequest, PeerIdentity, LabelConfig], HttpResponse]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def error_response(err: EstError) -> HttpResponse:
    """The text/plain response for `err`: one line, its status and the headers it requires."""
    detail = " ".join(err.detail.split())
    text = err.title if detail in ("", err.title) else f"{err.title}: {detail}"
    return text_response(err.status, text, err.headers())


class EstService:
    """Answers EST requests for every configured CA label.

    Args:
        labels: label name ("" for the unlabelled paths) to its policy.
        ca: the CA that signs, and whose chain /cacerts returns.
        ledger: where every issued certificate is committed before it is returned.
        users: the password store for HTTP Basic (None: Basic never succeeds).
        limiter: failure counters for password attempts.
        realm: the HTTP Basic realm of challenges.
        clock: current time (tests pass a fixed one).

    Raises:
        ValueError: a label's `csrattrs` text does not parse.
    """

    def __init__(
        self,
        *,
        labels: Mapping[str, LabelConfig],
        ca: CertificateAuthority,
        ledger: Ledger,
        users: UserStore | None,
        limiter: FailureLimiter,
        realm: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._labels = dict(labels)
        self._attrs = {label.name: _csrattrs_of(label) for label in self._labels.values()}
        self._ca = ca
        self._ledger = ledger
        self._users = users
        self._limiter = limiter
        self._realm = realm
        self._clock = clock
        self._routes: dict[Operation, Handler] = {
            Operation.CACERTS: self._cacerts,
            Operation.SIMPLEENROLL: self._simpleenroll,
            Operation.SIMPLEREENROLL: self._simplereenroll,
            Operation.SERVERKEYGEN: self._serverkeygen,
            Operation.CSRATTRS: self._csrattrs,
            Operation.FULLCMC: self._fullcmc,
        }

    def handle(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        """Answer one EST request.

        Returns:
            The success response.

        Raises:
            EstError: every refusal, carrying its status, detail and required headers.
        """
        path = parse_est_path(request.target)
        label = self._labels.get(path.label)
        if label is None:
            raise NotFound(f"unknown CA label {path.label!r}")
        method = path.operation.method
        if request.method != method:
            raise MethodNotAllowed(
                f"/{path.operation.value} takes {method}, not {request.method[:16]!r}",
                allowed=(method,),
            )
        return self._routes[path.operation](request, peer, label)

    # --- operations ----------------------------------------------------------------------------

    def _cacerts(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        # §4.1.3: the current root and every certificate needed to chain to it; no CA means 5xx,
        # never an empty 200 (R42).
        chain = self._ca.chain
        if not chain:
            raise CaError("no CA certificate is configured")
        body = wire.encode_certs_only(chain)
        return HttpResponse(200, (("Content-Type", PKCS7_MIME), B64), body)

    def _simpleenroll(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        auth = self._authenticate(request, peer, label.enroll_auth)
        csr = self._read_csr(request)
        self._check_linking(csr, peer, label)
        self._authorize(csr, auth, label)
        cert = self._issue(csr, label, auth, Operation.SIMPLEENROLL)
        return _certs_only_response(cert)

    def _simplereenroll(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        client = peer.client_cert
        if client is None:
            raise Forbidden(REENROLL_NEEDS_CERT)
        if not client.valid:
            raise Forbidden(f"{REENROLL_NEEDS_CERT}; the certificate presented: {client.reason}")
        auth = self._authenticate(request, peer, label.reenroll_auth)
        current = client.leaf
        self._check_ours(current)
        csr = self._read_csr(request)
        self._check_linking(csr, peer, label)
        check_reenrollment(csr, current)
        cert = self._issue(csr, label, auth, Operation.SIMPLEREENROLL)
        return _certs_only_response(cert)

    def _csrattrs(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        # §4.5: anonymous. 204 when nothing is requested (RFC 8951 §4 allows 204/404/empty 200).
        attrs = self._attrs[label.name]
        if not attrs:
            return HttpResponse(204)
        body = wire.encode_base64(wire.encode_csrattrs(attrs))
        return HttpResponse(200, (("Content-Type", CSRATTRS), B64), body)

    def _serverkeygen(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        if not label.serverkeygen:
            raise NotImplementedOperation(
                "server-side key generation (/serverkeygen) is disabled for this CA"
            )
        auth = self._authenticate(request, peer, label.serverkeygen_auth)
        csr = self._read_csr(request)
        if _requests_encrypted_key(csr):
            # §4.4.1.1/§4.4.1.2: the client asked for an encrypted key; answering with a
            # plaintext key instead would defeat the request.
            raise NotImplementedOperation("encrypted key return is not supported")
        self._check_linking(csr, peer, label)
        self._authorize(csr, auth, label)
        # §4.4.1: the CSR's key and signature are ignored; the certificate holds the new key.
        key = generate_private_key(label.serverkeygen_key_type)
        cert = self._issue(csr, label, auth, Operation.SERVERKEYGEN, key.public_key())
        key_der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        content_type, body = wire.encode_serverkeygen(
            key_der, PKCS8, wire.encode_certs_only((cert,)), f"est-{secrets.token_hex(12)}"
        )
        return HttpResponse(200, (("Content-Type", content_type),), body)

    def _fullcmc(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        raise NotImplementedOperation(
            "Full CMC (RFC 7030 §4.3) is not supported; use /simpleenroll"
        )

    # --- authentication -----------------------------------------------------------------------

    def _authenticate(
        self, request: HttpRequest, peer: PeerIdentity, requirement: AuthRequirement
    ) -> Authentication:
        client = (
            peer.client_cert if peer.client_cert is not None and peer.client_cert.valid else None
        )
        present = set[AuthMethod]()
        if client is not None:
            present.add(AuthMethod.CERT)
        if peer.srp_user is not None:
            present.add(AuthMethod.SRP)
        basic_user = None
        satisfied = satisfied_methods(requirement, frozenset(present))
        if satisfied is None:
            # Basic is consulted only when TLS credentials fall short, and only when it could
            # complete an alternative: then a missing or wrong password gets the challenge.
            satisfied = satisfied_methods(requirement, frozenset(present | {AuthMethod.BASIC}))
            if satisfied is None:
                raise AuthenticationRequired(_missing(requirement, peer))
            credentials = self._basic_credentials(request, _missing(requirement, peer))
            self._check_password(credentials, peer)
            basic_user = credentials.user
        return Authentication(
            methods=satisfied,
            certificate=client if AuthMethod.CERT in satisfied else None,
            srp_user=peer.srp_user if AuthMethod.SRP in satisfied else None,
            basic_user=basic_user if AuthMethod.BASIC in satisfied else None,
        )

    def _basic_credentials(self, request: HttpRequest, missing: str) -> BasicCredentials:
        try:
            credentials = parse_basic_authorization(request.header("authorization"))
        except ValueError as exc:
            raise AuthenticationRequired(str(exc), basic_realm=self._realm) from None
        if credentials is None or credentials.is_empty:
            raise AuthenticationRequired(missing, basic_realm=self._realm)
        return credentials

    def _check_password(self, credentials: BasicCredentials, peer: PeerIdentity) -> None:
        keys = (user_key(credentials.user), address_key(peer.address))
        self._limiter.check(keys)
        users = self._users
        if users is None or not users.check_password(credentials.user, credentials.password):
            self._limiter.record_failure(keys)
            log.info("HTTP Basic authentication failed for user %r", credentials.user[:128])
            raise AuthenticationRequired("invalid user name or password", basic_realm=self._realm)
        self._limiter.record_success(keys[:1])

    # --- checks ---------------------------------------------------------------------------------

    def _read_csr(self, request: HttpRequest) -> x509.CertificateSigningRequest:
        # §4.2.1: the body is a base64 PKCS#10 labelled application/pkcs10 (R08). Parameters,
        # case and spacing are accepted; any Content-Transfer-Encoding is ignored (RFC 8951 §3).
        value = request.header("content-type")
        if value is None:
            raise UnsupportedMediaType(f"missing Content-Type: send {PKCS10}")
        media_type, _ = wire.parse_media_type(value)
        if media_type != PKCS10:
            raise UnsupportedMediaType(f"Content-Type must be {PKCS10}")
        return wire.decode_csr(request.body)

    def _check_linking(
        self, csr: x509.CertificateSigningRequest, peer: PeerIdentity, label: LabelConfig
    ) -> None:
        is_ra = peer.client_cert is not None and peer.client_cert.valid and peer.client_cert.is_ra
        check_linking(
            wire.csr_challenge_password(csr), peer.tls, required=label.require_pop, is_ra=is_ra
        )

    def _authorize(
        self, csr: x509.CertificateSigningRequest, auth: Authentication, label: LabelConfig
    ) -> None:
        names = {
            user: (self._users.allowed_names(user) if self._users is not None else ())
            for user in auth.password_users
        }
        authorize_enrollment(
            csr, auth, password_subjects=label.password_subjects, allowed_names=names
        )

    def _check_ours(self, cert: x509.Certificate) -> None:
        # R57: the certificate being renewed must come from this EST CA, whatever other client
        # trust anchors are configured; and it must not be revoked.
        try:
            cert.verify_directly_issued_by(self._ca.certificate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise Forbidden(
                "the client certificate was not issued by this EST CA and cannot be renewed here"
            ) from None
        if self._ledger.is_revoked(cert.serial_number):
            raise Forbidden("the certificate being renewed is revoked")

    # --- issuance -------------------------------------------------------------------------------

    def _issue(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
        public_key: CertificatePublicKeyTypes | None = None,
    ) -> x509.Certificate:
        for _ in range(MAX_SERIAL_ATTEMPTS):
            now = self._clock()
            cert = self._ca.issue(csr, label.profile, public_key=public_key, now=now)
            entry = IssuedCertificate.from_certificate(
                cert,
                requester=auth.requester,
                auth_method=auth.method_text,
                label=label.name,
                operation=operation.value,
                server_generated_key=public_key is not None,
                issued_at=now,
            )
            try:
                # DESIGN.md decision 8: committed before the response exists.
                self._ledger.record(entry)
            except DuplicateSerial:
                log.warning(
                    "serial %s already in the ledger; signing again", serial_hex(cert.serial_number)
                )
                continue
            audit.info(
                "issued serial=%s subject=%r requester=%r auth=%s label=%r operation=%s",
                serial_hex(cert.serial_number),
                entry.subject,
                entry.requester,
                entry.auth_method,
                label.name,
                operation.value,
            )
            return cert
        raise LedgerError("could not record the certificate under a unique serial number")


def _certs_only_response(cert: x509.Certificate) -> HttpResponse:
    # §4.2.3: certs-only with exactly the issued certificate; the exact Content-Type spelling
    # matters to libest's estclient, which prefix-compares it byte for byte.
    body = wire.encode_certs_only((cert,))
    return HttpResponse(200, (("Content-Type", CERTS_ONLY), B64), body)


def _missing(requirement: AuthRequirement, peer: PeerIdentity) -> str:
    accepted = " or ".join(
        "+".join(m.value for m in (AuthMethod.CERT, AuthMethod.SRP, AuthMethod.BASIC) if m in alt)
        for alt in requirement
    )
    text = f"authentication required (accepted: {accepted})"
    if peer.client_cert is not None and not peer.client_cert.valid:
        text += f"; client certificate not accepted: {peer.client_cert.reason}"
    return text


def _csrattrs_of(label: LabelConfig) -> wire.CsrAttrs:
    # Parsed once at start-up, so a bad spec stops the server instead of failing requests.
    try:
        attrs = wire.parse_csrattrs_spec(label.csrattrs)
    except ValueError as exc:
        raise ValueError(f"CA label {label.name!r}: csrattrs: {exc}") from None
    if label.require_pop and not any(_oid_of(item) == CHALLENGE_PASSWORD for item in attrs):
        # §3.5: a server that requires linking MUST list challengePassword (R48).
        attrs = (CHALLENGE_PASSWORD, *attrs)
    return attrs


def _oid_of(item: wire.CsrAttrItem) -> str:
    return item if isinstance(item, str) else item.oid


def _requests_encrypted_key(csr: x509.CertificateSigningRequest) -> bool:
    try:
        present = {attribute.oid for attribute in csr.attributes}
    except ValueError:
        raise InvalidCsr("malformed CSR attributes") from None
    return bool(present & {oids.DECRYPT_KEY_IDENTIFIER, oids.ASYMMETRIC_DECRYPT_KEY_IDENTIFIER})
