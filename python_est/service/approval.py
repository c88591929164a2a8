"""Manual approval (RFC 7030 §4.2.3): 202 with Retry-After until an operator decides.

A label with `approval = manual` holds every /simpleenroll and /serverkeygen request in the
ledger's pending queue; /simplereenroll is not held, because its client already holds a
certificate of this CA for the same names (§4.2.2). The client learns nothing but "202, retry
after N seconds" and retries; the server keeps what it needs to recognise the retry (§4.2.3).

A retry is recognised by label, CSR public key and subject (R52): the retry may come on a new TLS
connection with a new challengePassword, so neither the connection nor the CSR bytes can be the
key. It must come from the same requester and through the same operation (while a request is
open, the other operation is refused: it would certify another key), and every retry passes
authentication, linking, CSR-attribute and authorization checks again. Then, by the status of
the newest request for that key and subject:

- pending: 202 again, same request id.
- rejected: 403 with the operator's reason. The same key and subject stay rejected for that
  operation; a new key (or subject) starts a new request.
- approved: the certificate is issued from the CSR that was *approved* (not the retry's, whose
  other fields could differ), recorded, and the request marked issued.
- issued: /simpleenroll answers with the same certificate again from the ledger (an idempotent
  retry, e.g. after a lost response) while it is neither revoked nor expired; after that, the
  same key and subject start a new request. /serverkeygen cannot answer again, since the private
  key is never kept: 403.

Issuing once. Two retries that both see "approved" must not both issue. Within the process a lock
serialises the approved-to-issued step and the status is re-read under it. Across processes (two
servers on one ledger) `mark_pending_issued` succeeds for exactly one of them; the loser revokes
the certificate it had just recorded (reason superseded; it was never sent) and answers as for
an issued request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from python_est.config import LabelConfig
from python_est.errors import Forbidden
from python_est.ledger import (
    Ledger,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    public_key_sha256,
    serial_hex,
)
from python_est.messages import HttpResponse, Operation, text_response
from python_est.policy import Authentication
from python_est.service.issuance import AUDIT_EVENTS, audit_fields, certs_only_response

log = logging.getLogger("python_est.service")
audit = logging.getLogger("python_est.audit")

# Issues the certificate for an approved CSR (recording it) and builds the 200 response.
Fulfil = Callable[[x509.CertificateSigningRequest], tuple[x509.Certificate, HttpResponse]]


class ApprovalGate:
    """Holds requests of manual-approval labels in the ledger's pending queue.

    Args:
        ledger: the pending queue and the issued certificates.
        retry_after: seconds for the 202 answer's `Retry-After`.
        clock: the current time (whether an issued certificate is still usable).
    """

    def __init__(self, ledger: Ledger, *, retry_after: int, clock: Callable[[], datetime]) -> None:
        if retry_after < 1:
            raise ValueError("retry_after must be at least one second")
        self._ledger = ledger
        self._retry_after = retry_after
        self._clock = clock
        self._issuing = threading.Lock()

    def admit(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
        fulfil: Fulfil,
    ) -> HttpResponse:
        """Answer a checked request on a manual-approval label (see the module comment).

        Args:
            csr: the request as received (already authenticated, linked and authorized).
            label: its label.
            auth: who asked.
            operation: SIMPLEENROLL or SERVERKEYGEN.
            fulfil: issues for the approved CSR; called at most once per request.

        Returns:
            202 while pending, or the 200 response.

        Raises:
            Forbidden: rejected, another requester's request, or a server-generated key that
                was already delivered.
        """
        found = self._ledger.find_pending(
            label.name, public_key_sha256(csr.public_key()), csr.subject.rfc4514_string()
        )
        if found is not None and found.operation != operation.value:
            if found.status in (PendingStatus.PENDING, PendingStatus.APPROVED):
                # Fulfilling it through another operation would certify another key.
                raise Forbidden(
                    f"request {found.id} for this key and subject is a /{found.operation} "
                    "request; retry it with that operation"
                )
            found = None  # the other operation's request is closed: this is a new one
        if found is not None and found.requester != auth.requester:
            raise Forbidden("a request for this key and subject belongs to another requester")
        if found is None:
            return self._hold(csr, label, auth, operation)
        if found.status is PendingStatus.PENDING:
            return self._wait(found)
        if found.status is PendingStatus.REJECTED:
            raise Forbidden(
                f"request {found.id} was rejected by the CA operator: "
                f"{found.reason or 'no reason given'}"
            )
        if found.status is PendingStatus.APPROVED:
            return self._fulfil(found, operation, fulfil)
        return self._issued(found, operation) or self._hold(csr, label, auth, operation)

    def _hold(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
    ) -> HttpResponse:
        request = self._ledger.add_pending(
            csr,
            label=label.name,
            operation=operation.value,
            requester=auth.requester,
            auth_method=auth.method_text,
        )
        audit.info(
            "%s held id=%s subject=%r requester=%r auth=%s label=%r operation=%s",
            AUDIT_EVENTS.get(operation, operation.value),
            request.id,
            request.subject,
            request.requester,
            request.auth_method,
            label.name,
            operation.value,
            extra=audit_fields(
                AUDIT_EVENTS.get(operation, operation.value), "held", request, request=request.id
            ),
        )
        return self._wait(request)

    def _wait(self, request: PendingRequest) -> HttpResponse:
        # §4.2.3: 202 with Retry-After (delta-seconds); the text is for humans and logs.
        return text_response(
            202,
            f"request {request.id} awaits approval by the CA operator; "
            f"retry in {self._retry_after} seconds",
            (("Retry-After", str(self._retry_after)),),
        )

    def _fulfil(
        self, request: PendingRequest, operation: Operation, fulfil: Fulfil
    ) -> HttpResponse:
        with self._issuing:
            current = self._ledger.get_pending(request.id) or request
            if current.status is not PendingStatus.APPROVED:
                # Another thread issued it while this one waited for the lock.
                return self._issued_or_refuse(current, operation)
            approved = x509.load_pem_x509_csr(current.csr_pem.encode("ascii"))
            cert, response = fulfil(approved)
            try:
                self._ledger.mark_pending_issued(current.id, cert.serial_number)
            except PendingStateError as exc:
                # Another process issued it first; this certificate was never sent.
                self._ledger.revoke(cert.serial_number, "superseded")
                log.warning(
                    "request %s was issued elsewhere meanwhile; revoked duplicate %s",
                    current.id,
                    serial_hex(cert.serial_number),
                )
                return self._issued_or_refuse(exc.request, operation)
        audit.info(
            "%s fulfilled id=%s serial=%s label=%r operation=%s",
            AUDIT_EVENTS.get(operation, operation.value),
            current.id,
            serial_hex(cert.serial_number),
            current.label,
            operation.value,
            extra=audit_fields(
                AUDIT_EVENTS.get(operation, operation.value),
                "fulfilled",
                current,
                request=current.id,
                serial=serial_hex(cert.serial_number),
            ),
        )
        return response

    def _issued_or_refuse(self, request: PendingRequest, operation: Operation) -> HttpResponse:
        response = self._issued(request, operation)
        if response is None:
            raise Forbidden(f"request {request.id} is {request.status.value}; send it again")
        return response

    def _issued(self, request: PendingRequest, operation: Operation) -> HttpResponse | None:
        """The answer for an issued request, or None when its certificate is no longer usable."""
        if request.status is not PendingStatus.ISSUED or request.serial is None:
            return None
        entry = self._ledger.get(request.serial)
        if entry is None or entry.revoked_at is not None or entry.not_after <= self._clock():
            return None
        if operation is Operation.SERVERKEYGEN:
            raise Forbidden(
                f"request {request.id} was fulfilled already; a server-generated key is "
                "delivered only once and is not kept"
            )
        return certs_only_response(x509.load_pem_x509_certificate(entry.pem.encode("ascii")))
