"""Validation of TLS client certificate chains (tlslite-ng checks only key possession)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from cryptography import x509
from cryptography.x509.verification import (
    PolicyBuilder,
    Store,
    VerificationError,
)

from python_est.errors import LedgerError, Unavailable
from python_est.oids import ID_KP_CLIENT_AUTH, ID_KP_CMC_RA
from python_est.policy.extpolicy import CA_POLICY, EE_POLICY
from python_est.policy.identity import ClientCertificate
from python_est.policy.idevid import ManufacturerTrust


class ClientChainValidator:
    """Validates TLS client certificate chains; tlslite only checks possession of the key.

    A chain is valid when it builds to one of the trust anchors at the validation time, every
    certificate is inside its validity period, the leaf carries EKU id-kp-clientAuth explicitly
    (an absent EKU extension is not enough), and the ledger does not list the leaf as revoked.

    Args:
        trust_anchors: certificates a client chain must end in (the EST CA's root, or
            configured client trust anchors).
        is_revoked: the ledger's revocation lookup by serial number.
        intermediates: CA certificates to build paths with, without trusting them as anchors
            (the EST CA's issuing CA: many clients, libest's among them, send only their leaf).
        manufacturers: the labels' manufacturer CAs (`policy.idevid`): a chain that does not
            validate here and names one of them as an issuer is validated as a factory
            certificate instead.
    """

    def __init__(
        self,
        trust_anchors: Sequence[x509.Certificate],
        is_revoked: Callable[[int], bool],
        *,
        intermediates: Sequence[x509.Certificate] = (),
        manufacturers: ManufacturerTrust | None = None,
    ) -> None:
        if not trust_anchors:
            raise ValueError("at least one client trust anchor is required")
        self._store = Store(list(trust_anchors))
        self._is_revoked = is_revoked
        self._intermediates = list(intermediates)
        self._manufacturers = manufacturers

    def validate(
        self, chain: Sequence[x509.Certificate], *, now: datetime | None = None
    ) -> ClientCertificate:
        """Validate a chain as presented by the client (leaf first).

        Args:
            chain: the leaf followed by any intermediates the client sent.
            now: validation time; the current time when None.

        Returns:
            The chain with `valid` and, when invalid, the reason.
        """
        presented = tuple(chain)
        if not presented:
            raise ValueError("empty certificate chain")
        when = now or datetime.now(timezone.utc)
        own = self._validate_own(presented, when)
        factory = self._manufacturers
        if own.valid or factory is None or not factory.claims(presented):
            return own
        return factory.validate(presented, when)

    def _validate_own(
        self, presented: tuple[x509.Certificate, ...], now: datetime
    ) -> ClientCertificate:
        leaf = presented[0]
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=CA_POLICY, ee_policy=EE_POLICY)
            .build_client_verifier()
        )
        try:
            built = verifier.verify(leaf, [*presented[1:], *self._intermediates])
        except VerificationError as exc:
            return ClientCertificate(presented, valid=False, reason=_short(str(exc)))
        usages = _extended_key_usages(leaf)
        is_ra = ID_KP_CMC_RA in usages
        if ID_KP_CLIENT_AUTH not in usages:
            return ClientCertificate(
                presented, valid=False, reason="no EKU clientAuth", is_ra=is_ra
            )
        try:
            revoked = self._is_revoked(leaf.serial_number)
        except (LedgerError, Unavailable):
            # Fail closed: without a revocation answer the certificate authenticates nobody.
            return ClientCertificate(
                presented, valid=False, reason="revocation status unavailable", is_ra=is_ra
            )
        if revoked:
            return ClientCertificate(presented, valid=False, reason="revoked", is_ra=is_ra)
        return ClientCertificate(presented, valid=True, is_ra=is_ra, anchor=built.chain[-1])


def _extended_key_usages(cert: x509.Certificate) -> frozenset[x509.ObjectIdentifier]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(eku)


def _short(message: str) -> str:
    # cryptography appends a repr of the offending certificate; the reason alone is enough.
    return message.split(" (encountered processing", 1)[0][:200]
