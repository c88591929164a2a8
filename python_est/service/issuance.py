"""Signing, committing to the ledger, and the success bodies of the enrollment operations."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from python_est import wire
from python_est.audit import audit
from python_est.backends import (
    Backend,
    Deferred,
    EmbeddedBackend,
    Order,
    PrivateKey,
    recorded_ca,
)
from python_est.ca import CertificateAuthority
from python_est.ca.rules import permitted_san, verified_csr_key
from python_est.config import LabelConfig
from python_est.config.model import DEFAULT_CA
from python_est.errors import InvalidCsr, LedgerError
from python_est.keys import KeyType, weak_key_reason
from python_est.ledger import (
    DuplicateSerial,
    IssuedCertificate,
    Ledger,
    PendingRequest,
    serial_hex,
)
from python_est.messages import CERTS_ONLY, PKCS8, HttpResponse, Operation, text_response
from python_est.policy import Authentication
from python_est.service.keyprotect import Sealer

log = logging.getLogger("python_est.service")

MAX_SERIAL_ATTEMPTS = 3
# Audit event names (`python_est.audit`).
AUDIT_EVENTS = {
    Operation.SIMPLEENROLL: "enroll",
    Operation.SIMPLEREENROLL: "reenroll",
    Operation.SERVERKEYGEN: "serverkeygen",
}
B64 = ("Content-Transfer-Encoding", "base64")
_T = TypeVar("_T")


class Issuer:
    """Has a label's backend issue, and commits each certificate to the ledger before anyone
    sees it (certificates from an upstream CA or a CA handler included).

    Args:
        ca: the embedded CA (the backend of every label `backends` does not name).
        ledger: where every certificate is recorded.
        clock: the issuance time source.
        on_issued: called with each entry once committed (see `EstService`).
        ca_name: the CA's name, recorded with each certificate it signs.
        backends: label name to its issuing backend (`python_est.backends`); a certificate
            one of them issued is recorded under the CA name "KIND:LABEL" (`est:corp`), so
            this server's CRL and OCSP never vouch for it.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        ledger: Ledger,
        clock: Callable[[], datetime],
        on_issued: Callable[[IssuedCertificate], None] | None = None,
        ca_name: str = DEFAULT_CA,
        backends: Mapping[str, Backend] | None = None,
    ) -> None:
        self._embedded = EmbeddedBackend(ca)
        self._backends = dict(backends or {})
        self._ca_name = ca_name
        self._ledger = ledger
        self._clock = clock
        self._on_issued = on_issued

    def backend(self, label: LabelConfig) -> Backend:
        """The backend that issues for `label`."""
        return self._backends.get(label.name, self._embedded)

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
    ) -> x509.Certificate:
        """Have the label's backend certify `csr`'s key and record the certificate (a serial
        collision signs again).

        Args:
            csr: the request.
            label: the label (its backend; the embedded CA applies its profile).
            auth: who asked (the ledger's requester and method).
            operation: the EST operation, for the ledger.

        Raises:
            InvalidCsr: the CA refuses the request.
            Deferred: the backend has not issued yet (202).
            EstError: the backend failed (502, 503, or its refusal).
            LedgerError: the certificate could not be recorded under a unique serial.
        """
        backend = self.backend(label)
        return self._record(csr, label, auth, operation, lambda o: (backend.enroll(o), None))[0]

    def serverkeygen(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        key_type: KeyType,
    ) -> tuple[PrivateKey, x509.Certificate]:
        """A new key and its certificate, recorded (RFC 7030 §4.4); as `issue`."""
        backend = self.backend(label)

        def sign(order: Order) -> tuple[x509.Certificate, PrivateKey]:
            key, cert = backend.serverkeygen(order, key_type)
            return cert, key

        cert, key = self._record(csr, label, auth, Operation.SERVERKEYGEN, sign, server_key=True)
        return key, cert

    def _record(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
        sign: Callable[[Order], tuple[x509.Certificate, _T]],
        *,
        server_key: bool = False,
    ) -> tuple[x509.Certificate, _T]:
        # `sign` asks the backend; what it returns besides the certificate (a generated key)
        # is handed back untouched.
        backend = self.backend(label)
        embedded = backend.kind == "embedded"
        for _ in range(MAX_SERIAL_ATTEMPTS):
            now = self._clock()
            cert, extra = sign(Order(csr, label, operation, now, auth.requester))
            entry = IssuedCertificate.from_certificate(
                cert,
                requester=auth.requester,
                auth_method=auth.method_text,
                label=label.name,
                operation=operation.value,
                server_generated_key=server_key,
                issued_at=now,
                ca=self._ca_name if embedded else recorded_ca(label),
            )
            try:
                # DESIGN.md decision 8: committed before the response exists.
                self._ledger.record(entry)
            except DuplicateSerial:
                known = self._ledger.get(cert.serial_number)
                if not embedded and known is not None and known.pem == entry.pem:
                    # An upstream answering a retry with the certificate it issued before.
                    return cert, extra
                log.warning(
                    "serial %s already in the ledger; signing again", serial_hex(cert.serial_number)
                )
                continue
            if self._on_issued is not None:
                self._on_issued(entry)
            audit(
                AUDIT_EVENTS.get(operation, operation.value),
                "issued",
                "serial=%s subject=%r requester=%r auth=%s label=%r operation=%s",
                serial_hex(cert.serial_number),
                entry.subject,
                entry.requester,
                entry.auth_method,
                label.name,
                operation.value,
                **audit_facts(entry, **_backend_fact(backend)),
            )
            return cert, extra
        raise LedgerError("could not record the certificate under a unique serial number")


def _backend_fact(backend: Backend) -> dict[str, object]:
    # Which backend issued, named only when it is not the embedded CA (whose lines stay as
    # they were): the certificate came from an upstream EST server or a CA handler.
    return {} if backend.kind == "embedded" else {"backend": backend.kind}


def audit_facts(entry: IssuedCertificate | PendingRequest, **more: object) -> dict[str, object]:
    """The facts of an audit event about a certificate or a pending request (`more` may
    replace one)."""
    serial = getattr(entry, "serial", None)
    return {
        "serial": None if serial is None else serial_hex(serial),
        "subject": entry.subject,
        "requester": entry.requester,
        "auth": entry.auth_method,
        "label": entry.label,
        **more,
    }


def precheck(csr: x509.CertificateSigningRequest, label: LabelConfig, *, client_key: bool) -> None:
    """Refuse now what the CA would refuse at issuance, so no doomed request waits for approval.

    Args:
        csr: the request.
        label: its label (the profile's subjectAltName rules).
        client_key: the CSR key is certified, so its signature and strength matter.

    Raises:
        InvalidCsr: as `CertificateAuthority.issue` would.
    """
    if client_key:
        reason = weak_key_reason(verified_csr_key(csr))
        if reason is not None:
            raise InvalidCsr(reason)
    else:
        try:
            csr.public_key()  # the pending queue identifies the request by this key
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidCsr("CSR key algorithm is not supported") from None
    san = permitted_san(csr, label.profile)
    if len(csr.subject) == 0 and san is None:
        raise InvalidCsr("CSR has neither a subject nor a subjectAltName")


def certs_only_response(cert: x509.Certificate) -> HttpResponse:
    """The 200 answer of /simpleenroll and /simplereenroll (RFC 7030 §4.2.3)."""
    # Exactly the issued certificate; the exact Content-Type spelling matters to libest's
    # estclient, which prefix-compares it byte for byte.
    body = wire.encode_certs_only((cert,))
    return HttpResponse(200, (("Content-Type", CERTS_ONLY), B64), body)


def serverkeygen_response(
    key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate, sealer: Sealer | None = None
) -> HttpResponse:
    """The 200 multipart answer of /serverkeygen (RFC 7030 §4.4.2): the key, then the cert.

    The key part is PKCS#8, or the EnvelopedData `sealer` makes when the client asked for an
    encrypted key. The key exists only in this response: never recorded, written or logged.
    """
    key_der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    key_type = PKCS8
    if sealer is not None:
        key_der, key_type = sealer.seal(key_der)
    content_type, body = wire.encode_serverkeygen(
        key_der, key_type, wire.encode_certs_only((cert,)), f"est-{secrets.token_hex(12)}"
    )
    # The body holds a private key: no cache may keep it (RFC 9111 §5.2.2.5).
    return HttpResponse(200, (("Content-Type", content_type), ("Cache-Control", "no-store")), body)


def answer_or_defer(answer: Callable[[], HttpResponse]) -> HttpResponse:
    """`answer()`, or 202 when the backend has not issued yet."""
    # A backend that has not issued yet (an upstream's 202, a handler's poll identifier):
    # 202 with its Retry-After (RFC 7030 §4.2.3); the client's retry is correlated there.
    try:
        return answer()
    except Deferred as deferred:
        return text_response(202, deferred.detail, (("Retry-After", str(deferred.retry_after)),))
