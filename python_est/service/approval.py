"""Manual approval (RFC 7030 §4.2.3): 202 with Retry-After until an operator decides.

A label with `approval = manual` holds every /simpleenroll and /serverkeygen request in the
ledger's pending queue; /simplereenroll is held only when the certificate renewed comes from
another label (`reenroll_from`), since otherwise its client already holds a certificate of this
label for the same names (§4.2.2). A label whose profile grants id-kp-cmcRA holds every request,
renewals included, whatever its `approval` says: an RA certificate may request any name, so no
identity obtains one without an operator's decision (`needs_approval`). The client learns
nothing but "202, retry after N seconds" and retries; the server keeps what it needs to recognise
the retry (§4.2.3).

A /serverkeygen retry is recognised by label, requester, subject and SANs instead of the CSR key,
which the server ignores (§4.4.1) and some clients renew on every attempt (`keygen_match`).

A retry is recognised by label, CSR public key and subject (R52): the retry may come on a new TLS
connection with a new challengePassword, so neither the connection nor the CSR bytes can be the
key. It must come from the same requester and through the same operation (while a request is
open, the other operation is refused: it would certify another key), and every retry passes
authentication, linking, CSR-attribute and authorization checks again. Then, by the status of
the newest request for that key and subject:

- pending: 202 again, same request id.
- rejected: 403 with the operator's reason. The same key and subject stay rejected for that
  operation; a new key (or subject) starts a new request.
- approved: the one process that claims it issues the certificate from the CSR that was
  *approved* (not the retry's, whose other fields could differ), records it, and marks the
  request issued.
- issuing: another process holds the claim and is signing: 202 again; the retry finds it issued.
- issued: /simpleenroll answers with the same certificate again from the ledger (an idempotent
  retry, e.g. after a lost response) while it is neither revoked nor expired; after that, the
  same key and subject start a new request. /serverkeygen cannot answer again, since the private
  key is never kept: 403.

Issuing once. Two retries that both see "approved", in one process or in several sharing the
ledger, must not both sign. Before signing, a retry claims the request (`Ledger.claim_pending`: one
conditional UPDATE, approved -> issuing, so exactly one claimer wins); a retry that finds it
claimed by another process gets 202 with Retry-After. Only the claimer signs, and it marks the
request issued under its own claim. Within one process a lock also serialises the claim-to-mark
step, so a concurrent retry there waits a moment and gets the certificate instead of a 202. A claim
is a lease of `CLAIM_LEASE_S` seconds, so a process killed between claim and mark does not block
the request for ever: once the lease has run out another retry may claim it again. The lease is
long against signing and recording; if a holder still outlives it and another process has claimed
the request meanwhile, the late holder's mark fails, and it revokes the certificate it had just
recorded (reason superseded; it was never sent) and answers as the request now stands.

A claimer that issued nothing (the backend deferred with its own 202, as an upstream EST server
or a CA handler may, or it failed) gives the claim back at once (`Ledger.release_pending`): the
request is approved again, and the client's next retry asks the backend again (the upstream
correlates it, §4.2.3) instead of waiting out the lease.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import threading
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from python_est import oids
from python_est.audit import audit
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
from python_est.service.issuance import AUDIT_EVENTS, audit_facts, certs_only_response
from python_est.service.keygen_match import serverkeygen_match

log = logging.getLogger("python_est.service")

# Issues the certificate for an approved CSR (recording it) and builds the 200 response.
Fulfil = Callable[[x509.CertificateSigningRequest], tuple[x509.Certificate, HttpResponse]]

# How long a claim on an approved request keeps other processes from issuing it. Far above the
# worst honest time from claim to mark (key generation, then recording: SQLite waits up to 10 s
# for its lock and PostgreSQL 15 s for a statement, and a serial collision signs again), and
# short enough that a request whose claimer was killed is issued on a retry a few minutes later.
CLAIM_LEASE_S = 120

# Statuses in which a request is still open (not rejected, not issued).
_OPEN = (PendingStatus.PENDING, PendingStatus.APPROVED, PendingStatus.ISSUING)


def needs_approval(label: LabelConfig, operation: Operation, source_label: str | None) -> bool:
    """Whether a request waits for an operator (see the module comment).

    Args:
        label: the label of the request.
        operation: the EST operation.
        source_label: for /simplereenroll, the label of the certificate renewed.
    """
    if oids.ID_KP_CMC_RA in label.profile.extended_key_usage:
        return True
    if label.approval != "manual":
        return False
    return operation is not Operation.SIMPLEREENROLL or source_label != label.name


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
        # Within one process, concurrent retries wait for the claimer instead of getting a 202:
        # after it, their own claim fails and they find the request issued (a 200 at once).
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
            operation: SIMPLEENROLL, SIMPLEREENROLL or SERVERKEYGEN.
            fulfil: issues for the approved CSR; called only once this retry holds the claim.

        Returns:
            202 while pending or while another retry issues it, or the 200 response.

        Raises:
            Forbidden: rejected, another requester's request, or a server-generated key that
                was already delivered.
        """
        match = _match(csr, auth, operation)
        found = self._ledger.find_pending(label.name, match, csr.subject.rfc4514_string())
        if found is not None and found.operation != operation.value:
            if found.status in _OPEN:
                # Fulfilling it through another operation would certify another key.
                raise Forbidden(
                    f"request {found.id} for this key and subject is a /{found.operation} "
                    "request; retry it with that operation"
                )
            found = None  # the other operation's request is closed: this is a new one
        if found is not None and found.requester != auth.requester:
            raise Forbidden("a request for this key and subject belongs to another requester")
        if found is None:
            return self._hold(csr, label, auth, operation, match)
        if found.status is PendingStatus.PENDING:
            return self._wait(found)
        if found.status is PendingStatus.REJECTED:
            raise Forbidden(
                f"request {found.id} was rejected by the CA operator: "
                f"{found.reason or 'no reason given'}"
            )
        if found.status in (PendingStatus.APPROVED, PendingStatus.ISSUING):
            # Issuing: the claim may have outlived its holder; claim_pending decides.
            return self._fulfil(found, operation, fulfil)
        return self._issued(found, operation) or self._hold(csr, label, auth, operation, match)

    def _hold(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        auth: Authentication,
        operation: Operation,
        match: str,
    ) -> HttpResponse:
        request = self._ledger.add_pending(
            csr,
            label=label.name,
            operation=operation.value,
            requester=auth.requester,
            auth_method=auth.method_text,
            match=match,
        )
        audit(
            AUDIT_EVENTS.get(operation, operation.value),
            "held",
            "id=%s subject=%r requester=%r auth=%s label=%r operation=%s",
            request.id,
            request.subject,
            request.requester,
            request.auth_method,
            label.name,
            operation.value,
            **audit_facts(request, request=request.id),
        )
        return self._wait(request)

    def _wait(self, request: PendingRequest) -> HttpResponse:
        # §4.2.3: 202 with Retry-After (delta-seconds); the text is for humans and logs.
        if request.status is PendingStatus.ISSUING:
            state = "is being issued"
        else:
            state = "awaits approval by the CA operator"
        return text_response(
            202,
            f"request {request.id} {state}; retry in {self._retry_after} seconds",
            (("Retry-After", str(self._retry_after)),),
        )

    def _fulfil(
        self, request: PendingRequest, operation: Operation, fulfil: Fulfil
    ) -> HttpResponse:
        holder = _claim_holder()
        with self._issuing:
            claimed = self._ledger.claim_pending(
                request.id, holder=holder, lease_seconds=CLAIM_LEASE_S
            )
            if claimed is None:
                # Issued meanwhile, or another process holds a live claim.
                return self._as_it_stands(request, operation)
            approved = x509.load_pem_x509_csr(claimed.csr_pem.encode("ascii"))
            try:
                cert, response = fulfil(approved)
            except Exception:
                # Nothing was issued: the backend deferred (an upstream's or a CA handler's
                # 202) or failed. The claim goes back at once, so the client's next retry
                # asks the backend again instead of hearing "being issued" for a lease.
                self._ledger.release_pending(claimed.id, holder=holder)
                raise
            try:
                self._ledger.mark_pending_issued(claimed.id, cert.serial_number, holder=holder)
            except PendingStateError as exc:
                # This claim's lease ran out while signing and another process claimed the
                # request; the certificate just recorded was never sent.
                self._ledger.revoke(cert.serial_number, "superseded")
                log.warning(
                    "request %s was claimed elsewhere after this claim expired; "
                    "revoked duplicate %s",
                    claimed.id,
                    serial_hex(cert.serial_number),
                )
                return self._as_it_stands(exc.request, operation)
        audit(
            AUDIT_EVENTS.get(operation, operation.value),
            "fulfilled",
            "id=%s serial=%s label=%r operation=%s",
            claimed.id,
            serial_hex(cert.serial_number),
            claimed.label,
            operation.value,
            **audit_facts(claimed, request=claimed.id, serial=serial_hex(cert.serial_number)),
        )
        return response

    def _as_it_stands(self, request: PendingRequest, operation: Operation) -> HttpResponse:
        current = self._ledger.get_pending(request.id) or request
        if current.status is PendingStatus.ISSUING:
            return self._wait(current)
        return self._issued_or_refuse(current, operation)

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


def _match(csr: x509.CertificateSigningRequest, auth: Authentication, operation: Operation) -> str:
    # §4.4.1: /serverkeygen ignores the CSR key, which GlobalSign's client renews on every try.
    if operation is Operation.SERVERKEYGEN:
        return serverkeygen_match(csr, auth.requester)
    return public_key_sha256(csr.public_key())


def _claim_holder() -> str:
    # Unique per attempt (so a mark can only succeed under its own claim); the host and process
    # tell an operator who held a claim (`python-est requests show`).
    return f"{platform.node() or 'host'}/{os.getpid()}/{secrets.token_hex(4)}"
