"""The ledger's values and its seam: issued certificates, pending requests, `Ledger`."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from python_est.errors import LedgerError
from python_est.statedir import DEFAULT_CA

# RFC 5280 §5.3.1 CRLReason names. removeFromCRL is left out: it only appears in delta CRLs.
REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
)


class DuplicateSerial(LedgerError):
    """The serial is already in the ledger; the CA signs again with a fresh serial."""

    def __init__(self, serial: int) -> None:
        super().__init__("duplicate certificate serial number")
        self.serial = serial


class UnknownSerial(LookupError):
    """No certificate with this serial is in the ledger."""


class UnknownPendingRequest(LookupError):
    """No pending request with this id is in the ledger."""


class PendingStateError(Exception):
    """A pending request is not in the state the operation needs; `request` is its current state.

    `holder` is the claim the operation needed (`mark_pending_issued`), if any.
    """

    def __init__(
        self, request: PendingRequest, needed: PendingStatus, *, holder: str | None = None
    ) -> None:
        actual = request.status.value
        if request.status is PendingStatus.ISSUING:
            actual += f" (claimed by {request.claimed_by})"
        wanted = needed.value if holder is None else f"{needed.value} (claimed by {holder})"
        super().__init__(f"request {request.id} is {actual}, not {wanted}")
        self.request = request


def serial_hex(serial: int) -> str:
    """The serial as `openssl x509 -serial` prints it: uppercase hex, an even number of digits.

    Raises:
        ValueError: the serial is not positive (RFC 5280 §4.1.2.2: it MUST be).
    """
    if serial <= 0:
        raise ValueError("certificate serial numbers are positive integers")
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def public_key_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo; identifies a request's key."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def utc_text(moment: datetime) -> str:
    # Fixed-width ISO 8601 in UTC, so text order in SQL is time order.
    if moment.utcoffset() is None:
        raise ValueError("the ledger stores instants: datetimes must be timezone-aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def general_name_text(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}:{name.value.hex()}"
    raise ValueError(f"unsupported subjectAltName type {type(name).__name__}")


@dataclass(frozen=True)
class IssuedCertificate:
    """One issued certificate as the ledger keeps it.

    Attributes:
        serial: positive serial number (127 bits or more when our CA issued it).
        subject: RFC 4514 string of the subject.
        sans: subjectAltNames as "DNS:x", "IP:1.2.3.4", "email:a@b", "URI:...".
        not_before, not_after, issued_at: timezone-aware instants.
        requester: who asked (SRP or Basic user name, client-certificate subject, "admin").
        auth_method: how they authenticated ("srp", "basic", "cert", "cert+basic", "admin").
        label: the EST label ("" for the default profile).
        operation: "simpleenroll", "simplereenroll", "serverkeygen", "bootstrap", "init".
        pem: the certificate in PEM.
        server_generated_key: the server made the key pair (serverkeygen).
        revoked_at, revocation_reason: set together when revoked (RFC 5280 CRLReason name).
        ca: the name of the CA that issued it (`DEFAULT_CA` for `[ca]`, else its `[ca:NAME]`).
    """

    serial: int
    subject: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    requester: str
    auth_method: str
    label: str
    operation: str
    pem: str
    server_generated_key: bool = False
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    ca: str = DEFAULT_CA

    def __post_init__(self) -> None:
        serial_hex(self.serial)
        for moment in (self.not_before, self.not_after, self.issued_at, self.revoked_at):
            if moment is not None:
                utc_text(moment)
        if (self.revoked_at is None) != (self.revocation_reason is None):
            raise ValueError("revoked_at and revocation_reason are set together")
        if self.revocation_reason is not None and self.revocation_reason not in REVOCATION_REASONS:
            raise ValueError(f"unknown revocation reason {self.revocation_reason!r}")

    @classmethod
    def from_certificate(
        cls,
        cert: x509.Certificate,
        *,
        requester: str,
        auth_method: str,
        label: str,
        operation: str,
        server_generated_key: bool = False,
        issued_at: datetime | None = None,
        ca: str = DEFAULT_CA,
    ) -> IssuedCertificate:
        """Build the entry for `cert`, taking serial, subject, SANs, validity and PEM from it.

        Args:
            cert: the certificate just signed.
            requester, auth_method, label, operation, server_generated_key, ca: see the class.
            issued_at: when it was issued; now when omitted.
        """
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = tuple(general_name_text(name) for name in san)
        except x509.ExtensionNotFound:
            sans = ()
        return cls(
            serial=cert.serial_number,
            subject=cert.subject.rfc4514_string(),
            sans=sans,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issued_at=datetime.now(timezone.utc) if issued_at is None else issued_at,
            requester=requester,
            auth_method=auth_method,
            label=label,
            operation=operation,
            pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            server_generated_key=server_generated_key,
            ca=ca,
        )


class PendingStatus(enum.Enum):
    """pending -> approved | rejected; approved -> issuing (claimed) -> issued."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ISSUING = "issuing"
    ISSUED = "issued"


@dataclass(frozen=True)
class PendingRequest:
    """A request held for manual approval.

    Attributes:
        id: opaque random id.
        created_at: when it was first received.
        label, operation, requester, auth_method: as for `IssuedCertificate`.
        subject: RFC 4514 subject of the CSR.
        public_key_sha256: `public_key_sha256()` of the CSR key; with label and subject it
            recognises the client's retry. A /serverkeygen request's CSR key is ignored (RFC
            7030 §4.4.1) and may change on every retry, so it holds the `match` given to
            `add_pending` instead (requester, subject and SANs).
        csr_pem: the CSR in PEM.
        status: pending, then approved or rejected; an approved request is claimed (issuing)
            by the one process that signs it, then issued.
        reason: the operator's note on the decision.
        decided_at: when approved or rejected.
        serial: the certificate issued for it.
        claimed_by: the holder of the latest claim (`claim_pending`); kept once issued.
        claimed_at: when that claim was taken.
    """

    id: str
    created_at: datetime
    label: str
    operation: str
    requester: str
    auth_method: str
    subject: str
    public_key_sha256: str
    csr_pem: str
    status: PendingStatus = PendingStatus.PENDING
    reason: str | None = None
    decided_at: datetime | None = None
    serial: int | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None


class Ledger(Protocol):
    """What the service, the client-chain validator and the CLI need from a ledger."""

    def record(self, entry: IssuedCertificate) -> None: ...
    def get(self, serial: int) -> IssuedCertificate | None: ...
    def list_certificates(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        label: str | None = None,
        revoked: bool | None = None,
        ca: str | None = None,
    ) -> list[IssuedCertificate]: ...
    def revoke(
        self, serial: int, reason: str, *, when: datetime | None = None, ca: str | None = None
    ) -> IssuedCertificate: ...
    def get_issued_by(self, ca: str, serial: int) -> IssuedCertificate | None: ...
    def is_revoked(self, serial: int) -> bool: ...
    def current_certificates(
        self, label: str, subject: str, now: datetime
    ) -> list[IssuedCertificate]: ...
    def count(self) -> int: ...
    def add_pending(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        label: str,
        operation: str,
        requester: str,
        auth_method: str,
        match: str | None = None,
    ) -> PendingRequest: ...
    def find_pending(
        self, label: str, public_key_sha256: str, subject: str
    ) -> PendingRequest | None: ...
    def get_pending(self, request_id: str) -> PendingRequest | None: ...
    def list_pending(self, status: PendingStatus | None = None) -> list[PendingRequest]: ...
    def decide_pending(
        self, request_id: str, approve: bool, reason: str | None = None
    ) -> PendingRequest: ...
    def claim_pending(
        self, request_id: str, *, holder: str, lease_seconds: int
    ) -> PendingRequest | None: ...
    def mark_pending_issued(
        self, request_id: str, serial: int, *, holder: str
    ) -> PendingRequest: ...
    def release_pending(self, request_id: str, *, holder: str) -> bool: ...
    def poll_id(self, label: str, requester: str, fingerprint: str) -> str | None: ...
    def keep_poll(self, label: str, requester: str, fingerprint: str, poll_id: str) -> None: ...
    def forget_poll(self, label: str, requester: str, fingerprint: str) -> None: ...
