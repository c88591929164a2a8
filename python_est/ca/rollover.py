"""Root CA key rollover (RFC 7030 §4.1.3, RFC 4210 §4.4): a new root and the two link certificates.

During a rollover four certificates exist: OldWithOld (the old root), NewWithNew (the new root,
which now issues), NewWithOld (the new public key signed by the old key: a device that trusts
only the old root reaches certificates of the new one through it) and OldWithNew (the old public
key signed by the new key: a device that already trusts only the new root still verifies what
the old one signed). The new root keeps the old root's name, as RFC 4210 §4.4 has it: the link
certificates are then self-issued, so they do not count against a root's pathLenConstraint of 0
(RFC 5280 §6.1.4 (l)); path builders tell the two keys apart by the key identifiers. Pure:
files are `python_est.state.rollover`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509

from python_est.ca import rules
from python_est.ca.authority import CertificateAuthority
from python_est.ca.material import CaMaterial
from python_est.ca.rules import CLOCK_SKEW
from python_est.keys import KeyType, generate_private_key


@dataclass(frozen=True)
class RootRollover:
    """A rollover in progress: the old root, the new (issuing) root, and the link certificates."""

    old: CertificateAuthority
    new: CertificateAuthority
    new_with_old: x509.Certificate
    old_with_new: x509.Certificate

    @property
    def cacerts(self) -> tuple[x509.Certificate, ...]:
        """What /cacerts returns meanwhile: NewWithNew, NewWithOld, OldWithNew, OldWithOld."""
        return (self.new.certificate, self.new_with_old, self.old_with_new, self.old.certificate)

    @property
    def links(self) -> tuple[x509.Certificate, x509.Certificate]:
        return (self.new_with_old, self.old_with_new)


def start_rollover(
    old: CertificateAuthority,
    *,
    key_type: KeyType,
    validity_days: int,
    now: datetime | None = None,
) -> RootRollover:
    """Make the new root and both link certificates for `old`.

    Raises:
        ValueError: `old` is not a self-signed root that holds its own key.
    """
    if len(old.chain) != 1 or old.certificate.issuer != old.certificate.subject:
        raise ValueError("only a root CA that signs itself can be rolled over")
    moment = now or datetime.now(timezone.utc)
    key = generate_private_key(key_type)
    subject = old.certificate.subject
    not_before = moment - CLOCK_SKEW
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=validity_days))
        .serial_number(rules.random_serial())
    )
    path_length = _path_length(old.certificate)
    builder = rules.add_ca_extensions(builder, key.public_key(), path_length, key.public_key())
    new_root = builder.sign(key, rules.signature_hash(key))
    new = CertificateAuthority(CaMaterial(certificate=new_root, private_key=key, chain=(new_root,)))
    return RootRollover(
        old=old,
        new=new,
        new_with_old=link_certificate(new_root, old, not_before),
        old_with_new=link_certificate(old.certificate, new, not_before),
    )


def link_certificate(
    subject: x509.Certificate, signer: CertificateAuthority, not_before: datetime
) -> x509.Certificate:
    """`subject`'s name and public key, signed by `signer`: a link certificate (RFC 4210
    §4.4.1), valid from `not_before` until the earlier end of the two roots."""
    not_after = min(subject.not_valid_after_utc, signer.certificate.not_valid_after_utc)
    public_key = subject.public_key()
    signer_key = signer.private_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(public_key)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .serial_number(rules.random_serial())
    )
    builder = rules.add_ca_extensions(
        builder,
        public_key,  # type: ignore[arg-type]  # a CA certificate's key is an issuer key
        _path_length(subject),
        signer_key.public_key(),
    )
    return builder.sign(signer_key, rules.signature_hash(signer_key))


def _path_length(cert: x509.Certificate) -> int | None:
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
