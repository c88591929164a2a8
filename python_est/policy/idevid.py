"""Factory (IDevID, IEEE 802.1AR) certificate chains as TLS client credentials (issue 18 item 3).

A label may trust manufacturer CAs (`[label:X] manufacturer_cas`). Their certificates are
validated here, apart from the EST CA's own: the same path building, validity and signature
rules (`chain`), with one relaxation for these anchors only, and with the manufacturer's CRLs in
place of our ledger:

- The extendedKeyUsage extension may be absent. IEEE 802.1AR leaves it optional and many
  IDevIDs omit it; RFC 5280 §4.2.1.12 reads an absent extension as no restriction. Our own
  device certificates must still carry clientAuth explicitly. When present it must list
  id-kp-clientAuth (the path builder's client policy checks that, as for any client).

What the default policy already accepts and 802.1AR certificates use: the 99991231235959Z
GeneralizedTime notAfter (RFC 5280 §4.1.2.5), a subjectAltName holding only a
hardwareModuleName otherName (RFC 4108 §5), critical or not, with or without a subject, a
non-critical keyUsage, a serialNumber subject attribute, no authorityKeyIdentifier.

A factory certificate is never an RA (an id-kp-cmcRA it might carry is ignored: a manufacturer
does not speak for our PKI), and `service.auth.scoped` lets it authenticate /simpleenroll on the
labels trusting its manufacturer, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    VerificationError,
)

from python_est.policy.extpolicy import CA_POLICY, EE_POLICY
from python_est.policy.identity import ClientCertificate


@dataclass(frozen=True)
class _Revoked:
    """A CRL as checked on every connection: its serials in a set, read once per reload (a
    lookup in the CRL itself walks its entries, about 70 us per 1,000 of them)."""

    serials: frozenset[int]
    next_update: datetime | None

    @classmethod
    def of(cls, crl: x509.CertificateRevocationList) -> _Revoked:
        return cls(frozenset(entry.serial_number for entry in crl), crl.next_update_utc)


class ManufacturerTrust:
    """The manufacturer anchors of every label, and their CRLs.

    Args:
        anchors: every certificate of every label's `manufacturer_cas`.
        crls: CRLs, each with the certificate (one of `anchors`) that signed it; the caller
            checked the signature when loading them.
    """

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        crls: Sequence[tuple[x509.Certificate, x509.CertificateRevocationList]],
    ) -> None:
        if not anchors:
            raise ValueError("at least one manufacturer CA is required")
        self._store = Store(list(anchors))
        self._names = frozenset(cert.subject.public_bytes() for cert in anchors)
        self._crls: dict[x509.Certificate, list[_Revoked]] = {}
        for signer, crl in crls:
            # Two labels may list CRLs of one CA: each is consulted.
            self._crls.setdefault(signer, []).append(_Revoked.of(crl))

    def claims(self, chain: Sequence[x509.Certificate]) -> bool:
        """Whether `chain` names a manufacturer CA as an issuer (its failures are ours to tell)."""
        return any(cert.issuer.public_bytes() in self._names for cert in chain)

    def validate(self, chain: Sequence[x509.Certificate], now: datetime) -> ClientCertificate:
        """The factory chain `chain` (leaf first) validated at `now` (see the module docstring)."""
        presented = tuple(chain)
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=CA_POLICY, ee_policy=EE_POLICY)
            .build_client_verifier()
        )
        try:
            built = verifier.verify(presented[0], list(presented[1:]))
        except VerificationError as exc:
            reason = str(exc).split(" (encountered processing", 1)[0][:160]
            return _refused(presented, f"factory certificate: {reason}")
        path = built.chain
        # Each certificate's issuer is the next one on the path (its signature verified);
        # the anchor's is any other manufacturer certificate that signed it: a label listing a
        # root and its intermediate builds paths ending at the intermediate, whose revocation
        # only the root's CRL can tell.
        anchor = path[-1]
        pairs = [*itertools.pairwise(path)]
        pairs += [(anchor, s) for s in self._crls if s != anchor and _issued(anchor, s)]
        for cert, issuer in pairs:
            refusal = self._revocation(cert, issuer, now)
            if refusal is not None:
                return _refused(presented, refusal)
        return ClientCertificate(presented, valid=True, anchor=anchor, factory=True)

    def _revocation(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> str | None:
        for crl in self._crls.get(issuer, ()):
            if crl.next_update is not None and crl.next_update < now:
                # Fail closed: a stale CRL cannot say the certificate is still good.
                return (
                    f"the CRL of manufacturer CA {_cn(issuer)} expired at "
                    f"{crl.next_update.isoformat(timespec='seconds')}"
                )
            if cert.serial_number in crl.serials:
                return "factory certificate revoked by its manufacturer"
        return None


def _issued(cert: x509.Certificate, signer: x509.Certificate) -> bool:
    if signer.subject != cert.issuer:
        return False  # the common case, without a signature check
    try:
        cert.verify_directly_issued_by(signer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _refused(chain: tuple[x509.Certificate, ...], reason: str) -> ClientCertificate:
    return ClientCertificate(chain, valid=False, reason=reason, factory=True)


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return repr(str(names[0].value)[:64]) if names else repr(cert.subject.rfc4514_string()[:64])
