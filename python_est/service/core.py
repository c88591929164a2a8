"""`EstService`: routing, authentication and the EST operations (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from functools import partial

from cryptography import x509

from python_est import wire
from python_est.backends import Backend
from python_est.ca import CertificateAuthority
from python_est.ca.rollover import RootRollover
from python_est.config import LabelConfig
from python_est.config.model import DEFAULT_CA
from python_est.devices import DeviceRegistry, Registration
from python_est.errors import (
    CaError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    NotImplementedOperation,
)
from python_est.ledger import IssuedCertificate, Ledger
from python_est.messages import (
    CSRATTRS,
    PKCS7_MIME,
    EstPath,
    HttpRequest,
    HttpResponse,
    Operation,
    parse_est_path,
)
from python_est.policy import (
    Authentication,
    PeerIdentity,
    authorize_enrollment,
)
from python_est.ratelimit import FailureCounter
from python_est.service.approval import ApprovalGate, needs_approval
from python_est.service.auth import Authenticator, scoped
from python_est.service.devices import DeviceGate
from python_est.service.factory import authorize_factory
from python_est.service.intake import check_request_csr, read_csr
from python_est.service.issuance import (
    B64,
    Issuer,
    answer_or_defer,
    certs_only_response,
    precheck,
    serverkeygen_response,
)
from python_est.service.keyprotect import KekLookup, KeyProtector, KeySigner
from python_est.service.labelplan import plan_label
from python_est.service.layout import laid_out, wants_one_line
from python_est.service.renewal import Renewals
from python_est.service.webhook import consult
from python_est.users import UserDirectory
from python_est.webhooks import Authorizer

log = logging.getLogger("python_est.service")

REENROLL_NEEDS_CERT = "reenrollment requires the client certificate being renewed (RFC 7030 §4.2.2)"
PENDING_RETRY_AFTER = 60

# One EST operation on one label; `operation` binds the label.
_Operation = Callable[[HttpRequest, PeerIdentity, LabelConfig], HttpResponse]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class EstService:
    """Answers EST requests for every configured CA label.

    Args:
        labels: label name ("" for the unlabelled paths) to its policy.
        ca: the CA that signs, and whose chain /cacerts returns.
        ledger: where every issued certificate is committed before it is returned, and the
            queue of requests awaiting manual approval.
        users: the password store for HTTP Basic (None: Basic never succeeds).
        limiter: failure counters for password attempts.
        realm: the HTTP Basic realm of challenges.
        clock: current time (tests pass a fixed one).
        pending_retry_after: seconds in `Retry-After` of a 202 (manual approval).
        on_issued: called with each certificate once it is committed to the ledger, whichever
            path issued it (an EST operation, the bootstrap page, an approved request): the
            metrics' issuance count.
        authorizers: label name to its authorization webhook (`python_est.webhooks`).
        devices: the pre-registered devices (`python_est.devices`); None: none.
        key_signer: who signs encrypted server-generated keys (RFC 7030 §4.4.2); None makes
            requests for an encrypted key 501.
        keks: the registered key-encryption keys (`python_est.keks`) by label and identifier.
        cas: every CA by name, `ca` among them as DEFAULT_CA (None: only `ca`). A label's CA
            (`LabelConfig.ca`) answers its /cacerts, signs its certificates and alone may have
            issued the certificates it renews.
        client_anchors: label name to the trust anchors its client certificates must chain to
            (None: whatever the TLS layer accepted). A certificate that chained to another
            anchor is not valid on that label.
        backends: label name to the backend that issues for it (`python_est.backends`);
            labels not named here use their CA.
        manufacturers: label name to the manufacturer CAs whose factory (IDevID) certificates
            authenticate its /simpleenroll (`policy.idevid`); None: none.
        rollovers: CA name to what its /cacerts returns during a root rollover (the four
            certificates of RFC 7030 §4.1.3) and the old root, whose certificates still renew.

    Raises:
        ValueError: a label's `csrattrs` text does not parse, or announces a key type that
            /serverkeygen cannot generate, or a label names a CA not in `cas`.
    """

    def __init__(
        self,
        *,
        labels: Mapping[str, LabelConfig],
        ca: CertificateAuthority,
        ledger: Ledger,
        users: UserDirectory | None,
        limiter: FailureCounter,
        realm: str,
        clock: Callable[[], datetime] = utcnow,
        pending_retry_after: int = PENDING_RETRY_AFTER,
        on_issued: Callable[[IssuedCertificate], None] | None = None,
        authorizers: Mapping[str, Authorizer] | None = None,
        devices: DeviceRegistry | None = None,
        key_signer: KeySigner | None = None,
        keks: KekLookup | None = None,
        cas: Mapping[str, CertificateAuthority] | None = None,
        client_anchors: Mapping[str, Collection[x509.Certificate]] | None = None,
        rollovers: Mapping[str, RootRollover] | None = None,
        backends: Mapping[str, Backend] | None = None,
        manufacturers: Mapping[str, Collection[x509.Certificate]] | None = None,
    ) -> None:
        self._plans = {label.name: plan_label(label) for label in labels.values()}
        self._labels = {key: self._plans[label.name].label for key, label in labels.items()}
        authorities = dict(cas) if cas is not None else {DEFAULT_CA: ca}
        for label in self._labels.values():
            if label.ca not in authorities:
                raise ValueError(f"CA label {label.name!r}: no CA {label.ca!r}")
        self._anchors = (
            None
            if client_anchors is None
            else {name: frozenset(anchors) for name, anchors in client_anchors.items()}
        )
        # Both answers are fixed for the life of the service (a reload builds a new one), so
        # they are encoded once here instead of on every request.
        rolling = dict(rollovers or {})
        self._cacerts_bodies = {
            name: wire.encode_certs_only(
                rolling[name].cacerts if name in rolling else authority.chain
            )
            for name, authority in authorities.items()
            if authority.chain
        }
        self._csrattrs_bodies = {
            name: wire.encode_base64(wire.encode_csrattrs(plan.attrs))
            for name, plan in self._plans.items()
            if plan.attrs
        }
        self._ledger = ledger
        self._users = users
        self._devices = DeviceGate(devices, users, limiter, realm, clock)
        self._auth = Authenticator(users, limiter, realm)
        self._issuers = {
            name: Issuer(authority, ledger, clock, on_issued, ca_name=name, backends=backends)
            for name, authority in authorities.items()
        }
        self._gate = ApprovalGate(ledger, retry_after=pending_retry_after, clock=clock)
        self._renewals = {
            name: Renewals(
                authority.certificate,
                ledger,
                clock,
                ca_name=name,
                previous=(rolling[name].old.certificate,) if name in rolling else (),
            )
            for name, authority in authorities.items()
        }
        self._authorizers = dict(authorizers or {})
        self._registry = devices
        self._manufacturers = {name: frozenset(c) for name, c in (manufacturers or {}).items()}
        self._clock = clock
        self._protector = KeyProtector(key_signer, keks, self._held_certificates)
        self._operations: dict[Operation, _Operation] = {
            Operation.CACERTS: self._cacerts,
            Operation.SIMPLEENROLL: self._simpleenroll,
            Operation.SIMPLEREENROLL: self._simplereenroll,
            Operation.SERVERKEYGEN: self._serverkeygen,
            Operation.CSRATTRS: self._csrattrs,
            Operation.FULLCMC: self._fullcmc,
        }

    def handle(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        """Answer one EST request (for callers outside the routing table: the bootstrap page).

        Returns:
            The success response: 200, or 202 while a request awaits manual approval.

        Raises:
            EstError: every refusal, carrying its status, detail and required headers.
        """
        return self.operation(parse_est_path(request.target))(request, peer)

    def operation(self, path: EstPath) -> Callable[[HttpRequest, PeerIdentity], HttpResponse]:
        """The handler of `path`'s operation on its label (the routing table's EST routes).

        Raises:
            NotFound: the label is not configured.
        """
        label = self._labels.get(path.label)
        if label is None:
            raise NotFound(f"unknown CA label {path.label!r}")
        return partial(self._answer, path.operation, label)

    def _answer(
        self, operation: Operation, label: LabelConfig, request: HttpRequest, peer: PeerIdentity
    ) -> HttpResponse:
        method = operation.method
        if request.method != method:
            raise MethodNotAllowed(
                f"/{operation.value} takes {method}, not {request.method[:16]!r}",
                allowed=(method,),
            )
        seen = scoped(peer, label, self._anchors, operation, self._manufacturers)
        response = self._operations[operation](request, seen, label)
        one_line = wants_one_line(request.header("user-agent"), label.base64_lines)
        return laid_out(response, one_line)

    # --- operations ----------------------------------------------------------------------------

    def _cacerts(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        # §4.1.3: the current root and every certificate needed to chain to it; no CA means 5xx,
        # never an empty 200 (R42). Another backend's chain is its own (RA mode passes the
        # upstream's through).
        body = self._cacerts_bodies.get(label.ca)
        backend = self._issuers[label.ca].backend(label)
        if backend.kind != "embedded":
            chain = tuple(backend.ca_certs())
            body = wire.encode_certs_only(chain) if chain else None
        if body is None:
            raise CaError("no CA certificate is configured")
        return HttpResponse(200, (("Content-Type", PKCS7_MIME), B64), body)

    def _simpleenroll(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        auth, device = self._devices.authenticate(
            request, peer, label, label.enroll_auth, self._auth
        )
        csr = read_csr(request)
        check_request_csr(csr, peer, label, self._plans[label.name], client_key=True)
        device = self._authorize(csr, auth, label, device)
        return self._certify(csr, label, auth, Operation.SIMPLEENROLL, None, peer, device)

    def _simplereenroll(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        client = peer.client_cert
        if client is None:
            raise Forbidden(REENROLL_NEEDS_CERT)
        if not client.valid:
            raise Forbidden(f"{REENROLL_NEEDS_CERT}; the certificate presented: {client.reason}")
        auth = self._auth.authenticate(request, peer, label.reenroll_auth)
        csr = read_csr(request)
        check_request_csr(csr, peer, label, self._plans[label.name], client_key=True)
        renewed = self._renewals[label.ca].renewed(csr, client.leaf, auth, label)
        return self._certify(csr, label, auth, Operation.SIMPLEREENROLL, renewed.label, peer, None)

    def _certify(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
        source_label: str | None,
        peer: PeerIdentity,
        device: Registration | None,
    ) -> HttpResponse:
        # /simpleenroll and /simplereenroll: issue now, or hold for the operator (`approval`).
        def fulfil(
            approved: x509.CertificateSigningRequest,
        ) -> tuple[x509.Certificate, HttpResponse]:
            cert = self._issuers[label.ca].issue(approved, label, auth, operation)
            return cert, certs_only_response(cert)

        hook = self._authorizers.get(label.name)
        held = consult(hook, csr, label, auth, operation, peer, None) or needs_approval(
            label, operation, source_label
        )
        if held:
            precheck(csr, label, client_key=True)
        once = self._devices.once(device, fulfil)
        return answer_or_defer(
            lambda: self._gate.admit(csr, label, auth, operation, once) if held else once(csr)[1]
        )

    def _csrattrs(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        # §4.5: anonymous. 204 when nothing is requested (RFC 8951 §4 allows 204/404/empty 200).
        body = self._csrattrs_bodies.get(label.name)
        if body is None:
            return HttpResponse(204)
        return HttpResponse(200, (("Content-Type", CSRATTRS), B64), body)

    def _serverkeygen(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        if not label.serverkeygen:
            raise NotImplementedOperation(
                "server-side key generation (/serverkeygen) is disabled for this CA"
            )
        auth, device = self._devices.authenticate(
            request, peer, label, label.serverkeygen_auth, self._auth
        )
        csr = read_csr(request)
        # §4.4.1: the CSR's key and signature are ignored; everything else is checked as for
        # /simpleenroll, linking included (libest does the same).
        check_request_csr(csr, peer, label, self._plans[label.name], client_key=False)
        device = self._authorize(csr, auth, label, device)
        # §4.4.1.1/§4.4.1.2: an encrypted key that cannot be delivered is refused here, before
        # anything is issued; a plaintext key never answers an encryption request.
        sealer = self._protector.resolve(csr, peer, label.name, auth.requester)
        key_type = self._plans[label.name].keygen_type

        def fulfil(
            approved: x509.CertificateSigningRequest,
        ) -> tuple[x509.Certificate, HttpResponse]:
            key, cert = self._issuers[label.ca].serverkeygen(approved, label, auth, key_type)
            return cert, serverkeygen_response(key, cert, sealer)

        hook = self._authorizers.get(label.name)
        held = consult(hook, csr, label, auth, Operation.SERVERKEYGEN, peer, key_type.value) or (
            needs_approval(label, Operation.SERVERKEYGEN, None)
        )
        if held:
            precheck(csr, label, client_key=False)
        once = self._devices.once(device, fulfil)
        return answer_or_defer(
            lambda: (
                self._gate.admit(csr, label, auth, Operation.SERVERKEYGEN, once)
                if held
                else once(csr)[1]
            )
        )

    def _fullcmc(
        self, request: HttpRequest, peer: PeerIdentity, label: LabelConfig
    ) -> HttpResponse:
        raise NotImplementedOperation(
            "Full CMC (RFC 7030 §4.3) is not supported; use /simpleenroll"
        )

    def _held_certificates(
        self, label: str, subject: str, requester: str
    ) -> list[x509.Certificate]:
        # §4.4.1.2 recipients besides the TLS client certificate (see `keyprotect`).
        return [
            x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
            for entry in self._ledger.current_certificates(label, subject, self._clock())
            if entry.requester == requester
        ]

    def _authorize(
        self,
        csr: x509.CertificateSigningRequest,
        auth: Authentication,
        label: LabelConfig,
        device: Registration | None,
    ) -> Registration | None:
        # A device's code: the registration is its allow-list (`service.devices`).
        if auth.device is not None:
            return self._devices.bind(csr, label, device)
        if auth.certificate is not None and auth.certificate.factory:
            factory = auth.certificate.leaf
            device = authorize_factory(csr, factory, label, self._registry, self._clock())
            return self._devices.bind(csr, label, device)
        if auth.certificate is not None and not auth.is_ra:
            self._renewals[label.ca].check_holder(auth.certificate.leaf, label)
        names = {
            user: (self._users.allowed_names(user) if self._users is not None else ())
            for user in auth.password_users
        }
        authorize_enrollment(
            csr,
            auth,
            password_subjects=label.password_subjects,
            allowed_names=names,
            profile=label.profile,
        )
        return self._devices.bind(csr, label, device)
