"""Who made a request (RFC 7030 §3.2.3, §3.3): TLS credentials first, then HTTP Basic."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from cryptography import x509

from python_est.config import AuthMethod, AuthRequirement, LabelConfig
from python_est.errors import AuthenticationRequired
from python_est.messages import HttpRequest, Operation
from python_est.policy import (
    Authentication,
    BasicCredentials,
    PeerIdentity,
    parse_basic_authorization,
    satisfied_methods,
)
from python_est.ratelimit import FailureCounter
from python_est.users import UserDirectory

log = logging.getLogger("python_est.service")


class Authenticator:
    """Decides which identities authenticated a request (see the package docstring).

    Args:
        users: the password store for HTTP Basic (None: Basic never succeeds).
        limiter: failure counters for password attempts.
        realm: the HTTP Basic realm of challenges.
    """

    def __init__(self, users: UserDirectory | None, limiter: FailureCounter, realm: str) -> None:
        self._users = users
        self._limiter = limiter
        self._realm = realm

    def authenticate(
        self, request: HttpRequest, peer: PeerIdentity, requirement: AuthRequirement
    ) -> Authentication:
        """The identities that satisfy `requirement`.

        Raises:
            AuthenticationRequired: 401, with the Basic challenge when Basic could complete an
                alternative.
            TooManyRequests: 429, the user or address is locked out.
        """
        client = (
            peer.client_cert if peer.client_cert is not None and peer.client_cert.valid else None
        )
        present = set[AuthMethod]()
        if client is not None:
            present.add(AuthMethod.CERT)
        if peer.srp_user is not None and self._is_user(peer.srp_user):
            present.add(AuthMethod.SRP)
        basic_user = None
        satisfied = satisfied_methods(requirement, frozenset(present))
        if satisfied is None:
            # Basic is consulted only when TLS credentials fall short, and only when it could
            # complete an alternative: then a missing or wrong password gets the challenge.
            satisfied = satisfied_methods(requirement, frozenset(present | {AuthMethod.BASIC}))
            if satisfied is None:
                raise AuthenticationRequired(_missing(requirement, peer))
            credentials = self._basic_credentials(request, requirement, peer)
            self._check_password(credentials, peer)
            basic_user = credentials.user
        return Authentication(
            methods=satisfied,
            certificate=client if AuthMethod.CERT in satisfied else None,
            srp_user=peer.srp_user if AuthMethod.SRP in satisfied else None,
            basic_user=basic_user if AuthMethod.BASIC in satisfied else None,
        )

    def _is_user(self, srp_user: str) -> bool:
        # The handshake also accepts one-time device codes (`state.device_srp`), and a user
        # removed since the handshake is no user either: only a name of the store counts.
        return self._users is not None and self._users.exists(srp_user)

    def _basic_credentials(
        self, request: HttpRequest, requirement: AuthRequirement, peer: PeerIdentity
    ) -> BasicCredentials:
        try:
            credentials = parse_basic_authorization(request.header("authorization"))
        except ValueError as exc:
            raise AuthenticationRequired(str(exc), basic_realm=self._realm) from None
        if credentials is None or credentials.is_empty:
            # Worded only for a refusal, not on every login.
            raise AuthenticationRequired(_missing(requirement, peer), basic_realm=self._realm)
        return credentials

    def check_password(self, user: str, password: str, address: str) -> bool:
        """Check a password login from `address` against the lockouts and the user store.

        For every password login (HTTP Basic here, the bootstrap page's form): a locked user
        or address is refused before the password is looked at; a wrong password or an unknown
        user is counted and logged (the name escaped and bounded); a right one marks the
        (user, address) pair known-good. The user name must be the exact stored name.

        Returns:
            True when the password is right; False when it is wrong or the user is unknown.

        Raises:
            TooManyRequests: 429 with `retry_after` and a detail saying how long the lock lasts.
        """
        self._limiter.check(user, address)
        users = self._users
        if users is None or not users.check_password(user, password):
            self._limiter.record_failure(user, address)
            log.info("password authentication failed for user %r", user[:128])
            return False
        self._limiter.record_success(user, address)
        return True

    def _check_password(self, credentials: BasicCredentials, peer: PeerIdentity) -> None:
        if not self.check_password(credentials.user, credentials.password, peer.address):
            raise AuthenticationRequired("invalid user name or password", basic_realm=self._realm)


def _missing(requirement: AuthRequirement, peer: PeerIdentity) -> str:
    accepted = " or ".join(
        "+".join(m.value for m in (AuthMethod.CERT, AuthMethod.SRP, AuthMethod.BASIC) if m in alt)
        for alt in requirement
    )
    text = f"authentication required (accepted: {accepted})"
    if peer.client_cert is not None and not peer.client_cert.valid:
        text += f"; client certificate not accepted: {peer.client_cert.reason}"
    return text


def scoped(
    peer: PeerIdentity,
    label: LabelConfig,
    anchors: Mapping[str, frozenset[x509.Certificate]] | None,
    operation: Operation,
    manufacturers: Mapping[str, frozenset[x509.Certificate]] | None = None,
) -> PeerIdentity:
    """`peer` as `label` sees it for `operation`: a client certificate that chained to an anchor
    the label does not trust (another label's CA) authenticates nobody here (issue 16: a label's
    client trust anchors default to its own CA). A factory certificate (`policy.idevid`)
    authenticates only /simpleenroll, and only on a label trusting its manufacturer (issue 18)."""
    cert = peer.client_cert
    if cert is None or not cert.valid:
        return peer
    if cert.factory:
        trusted = (manufacturers or {}).get(label.name, frozenset())
        if cert.anchor not in trusted:
            reason = "factory certificate of a manufacturer this label does not trust"
        elif operation is not Operation.SIMPLEENROLL:
            reason = "a factory (IDevID) certificate authenticates only /simpleenroll"
        else:
            return peer
        return replace(peer, client_cert=replace(cert, valid=False, reason=reason))
    if anchors is None or cert.anchor in anchors.get(label.name, frozenset()):
        return peer
    refused = replace(cert, valid=False, reason="not issued under this label's CA")
    return replace(peer, client_cert=refused)
