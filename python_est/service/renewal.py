"""Which certificate a /simplereenroll renews (RFC 7030 §4.2.2), and on which labels it may.

A certificate renews itself: the CSR's Subject and subjectAltNames equal the client
certificate's (`policy.check_reenrollment`), the certificate was signed by the label's CA, is
not revoked, and the ledger records it as issued by that CA under this label or under a label
the label lists in `reenroll_from` (a listed label of another CA renews nothing here: issue 16,
each label accepts only its own CA's certificates). A certificate the ledger does not know
renews nowhere. Without this rule a certificate of one label would obtain another label's
profile (cmcRA, serverAuth, a longer validity) and skip that label's manual approval.

An RA (EKU id-kp-cmcRA, RFC 7030 §3.7) may renew on behalf of a device: the CSR's Subject and
subjectAltNames must equal those of an unrevoked, unexpired certificate the ledger records under
the same labels. The ledger records the RA as the requester.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from python_est.backends import recorded_ca
from python_est.config import LabelConfig
from python_est.config.model import DEFAULT_CA
from python_est.errors import Forbidden
from python_est.ledger import IssuedCertificate, Ledger
from python_est.policy import Authentication, check_reenrollment, same_names

ON_BEHALF_REFUSED = (
    "an RA renews on behalf of a device only with the Subject and subjectAltNames of an "
    "unrevoked, unexpired certificate issued under this label"
)


def label_text(name: str) -> str:
    """A label name for a refusal: quoted, or "the default label" for ""."""
    return f"label {name!r}" if name else "the default label"


class Renewals:
    """Finds the ledger entry a reenrollment renews, refusing what may not be renewed here.

    Args:
        issuer: the EST CA certificate that signs (self-renewal needs a certificate it signed).
        ledger: the issued certificates.
        clock: the current time (an RA renews only unexpired certificates).
        ca_name: the name of the CA `issuer` belongs to, as the ledger records it.
        previous: the CA's old root while it is rolled over, whose certificates renew too.
    """

    def __init__(
        self,
        issuer: x509.Certificate,
        ledger: Ledger,
        clock: Callable[[], datetime],
        ca_name: str = DEFAULT_CA,
        previous: Sequence[x509.Certificate] = (),
    ) -> None:
        self._issuers = (issuer, *previous)
        self._ca_name = ca_name
        self._ledger = ledger
        self._clock = clock

    def renewed(
        self,
        csr: x509.CertificateSigningRequest,
        current: x509.Certificate,
        auth: Authentication,
        label: LabelConfig,
    ) -> IssuedCertificate:
        """The ledger entry of the certificate `csr` renews on `label`.

        Args:
            csr: the request.
            current: the validated TLS client certificate.
            auth: who asked (an RA may renew on behalf of a device).
            label: the label of the request.

        Raises:
            Forbidden: names differ, the certificate is foreign, revoked, unknown to the
                ledger or from a label this one does not accept; or an RA's CSR matches no
                current certificate of this label.
        """
        if auth.is_ra and not same_names(csr, current):
            return self._on_behalf(csr, label)
        check_reenrollment(csr, current)
        if not self._issued_here(current, label):
            raise Forbidden(
                "the client certificate was not issued by this EST CA and cannot be renewed here"
            )
        return self._entry_on_label(current, label, "the certificate being renewed")

    def check_holder(self, holder: x509.Certificate, label: LabelConfig) -> None:
        """Refuse a certificate of this CA as an identity on a label it was not issued for.

        A device certificate authenticates /simpleenroll and /serverkeygen for its own names;
        on another label that would be the label climb `renewed` refuses, by another door.
        Certificates of other trust anchors (`[tls] client_trust_anchors`) are the operator's
        explicit choice and are not bound to a label. RA certificates are not checked here:
        an RA acts for other identities on any label (RFC 7030 §3.7).

        Raises:
            Forbidden: revoked, unknown to the ledger, or issued under a label this one does
                not accept.
        """
        if self._issued_here(holder, label):
            self._entry_on_label(holder, label, "the client certificate")

    def _entry_on_label(
        self, cert: x509.Certificate, label: LabelConfig, what: str
    ) -> IssuedCertificate:
        if self._ledger.is_revoked(cert.serial_number):
            raise Forbidden(f"{what} is revoked")
        entry = self._ledger.get(cert.serial_number)
        if entry is None:
            raise Forbidden(f"{what} is not in this CA's ledger and is not accepted")
        if entry.ca != self._expected_ca(label):
            raise Forbidden(
                f"{what} was issued by CA {entry.ca!r}; {label_text(label.name)} accepts only "
                f"certificates of its CA {self._expected_ca(label)!r}"
            )
        if entry.label != label.name and entry.label not in label.reenroll_from:
            raise Forbidden(
                f"{what} was issued under {label_text(entry.label)}; "
                f"{label_text(label.name)} accepts only its own certificates (see reenroll_from)"
            )
        return entry

    def _on_behalf(
        self, csr: x509.CertificateSigningRequest, label: LabelConfig
    ) -> IssuedCertificate:
        subject = csr.subject.rfc4514_string()
        now = self._clock()
        for source in (label.name, *label.reenroll_from):
            for entry in self._ledger.current_certificates(source, subject, now):
                if entry.ca == self._expected_ca(label) and same_names(
                    csr, x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
                ):
                    return entry
        raise Forbidden(ON_BEHALF_REFUSED)

    def _expected_ca(self, label: LabelConfig) -> str:
        # A label whose certificates come from an upstream or a CA handler renews only those.
        return self._ca_name if label.backend == "embedded" else recorded_ca(label)

    def _issued_here(self, cert: x509.Certificate, label: LabelConfig) -> bool:
        # R57: only a certificate this EST CA signed is renewed here, whatever other client
        # trust anchors are configured; on a label with another backend (RA mode, a CA
        # handler), one this server obtained from it, whose exact bytes the ledger recorded.
        for issuer in self._issuers:
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return True
        if label.backend == "embedded":
            return False
        entry = self._ledger.get(cert.serial_number)
        return entry is not None and entry.pem.encode("ascii") == cert.public_bytes(Encoding.PEM)
