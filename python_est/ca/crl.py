"""Certificate revocation lists (RFC 5280 §5) signed by the issuing CA.

One complete CRL covers every certificate the issuing CA signed, whatever its EST label: labels
share one CA, and a CRL without an issuingDistributionPoint extension claims exactly that scope
(RFC 5280 §5.2.5), so splitting it per label would need partial-scope CRLs for no gain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from python_est.ca import signer
from python_est.ca.authority import CertificateAuthority
from python_est.errors import CaError

# The ledger's CRLReason names (RFC 5280 §5.3.1) as cryptography spells them. "unspecified" has
# no entry: §5.3.1 says the reasonCode extension SHOULD then be absent.
REASON_FLAGS: dict[str, x509.ReasonFlags] = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}
# RFC 5280 §5.2.3: cRLNumber is at most 20 octets.
MAX_CRL_NUMBER = (1 << 159) - 1


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate as a CRL lists it.

    Attributes:
        serial: the certificate's serial number.
        revoked_at: when it was revoked (timezone-aware).
        reason: an RFC 5280 CRLReason name ("unspecified", "keyCompromise", ...).
    """

    serial: int
    revoked_at: datetime
    reason: str = "unspecified"


def can_sign_crls(ca: CertificateAuthority) -> bool:
    """True unless the CA certificate's keyUsage lacks cRLSign (RFC 5280 §4.2.1.3)."""
    try:
        usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.crl_sign)


def build_crl(
    ca: CertificateAuthority,
    revoked: Iterable[Revocation],
    *,
    crl_number: int,
    next_update_hours: int,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """Build and sign a complete version 2 CRL.

    Args:
        ca: the issuing CA; its certificate names the issuer and its key signs.
        revoked: the certificates to list; an unknown reason name lists no reason.
        crl_number: the cRLNumber, which must grow with every CRL of this CA (§5.2.3).
        next_update_hours: hours from thisUpdate to nextUpdate.
        now: thisUpdate (default: the current time).

    Returns:
        The signed CRL.

    Raises:
        ValueError: `crl_number` is not positive or longer than 20 octets, or the hours are
            not positive.
        CaError: the CA cannot sign the CRL.
    """
    if not 0 < crl_number <= MAX_CRL_NUMBER:
        raise ValueError("the CRL number must be positive and at most 20 octets")
    if next_update_hours <= 0:
        raise ValueError("next_update_hours must be positive")
    this_update = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(hours=next_update_hours))
        # §5.2.1 and §5.2.3: authorityKeyIdentifier and cRLNumber MUST be present.
        .add_extension(_authority_key_identifier(ca), critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    for item in sorted(revoked, key=lambda r: r.serial):
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(item.serial)
            .revocation_date(item.revoked_at.replace(microsecond=0))
        )
        flag = REASON_FLAGS.get(item.reason)
        if flag is not None:
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    try:
        return signer.sign_crl(builder, ca.key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CaError("the CA could not sign the CRL") from exc


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """The CRL's cRLNumber, or None when it has none."""
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return None


def _authority_key_identifier(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    # The keyIdentifier must equal the CA certificate's SKI, whatever method produced it.
    try:
        ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
