"""Who the peer is: what the TLS layer learned about one connection."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509


class AuthKind(enum.Enum):
    NONE = "none"
    CERT = "cert"
    SRP = "srp"
    BASIC = "basic"


@dataclass(frozen=True)
class TlsInfo:
    """Facts about the negotiated TLS session.

    Attributes:
        version: "TLS1.2", "TLS1.3", ...
        cipher_suite: IANA-style suite name.
        tls_unique: RFC 5929 tls-unique (12 bytes), None on TLS 1.3 or when unknown.
        resumed: the handshake was abbreviated (session resumption).
        extended_master_secret: the session's master secret is bound to its handshake
            (RFC 7627; always so in TLS 1.3). Without it tls-unique can be made equal on two
            connections (the triple-handshake attack), so it proves no linking. False unless
            the TLS layer saw it negotiated.
    """

    version: str
    cipher_suite: str
    tls_unique: bytes | None = None
    resumed: bool = False
    extended_master_secret: bool = False


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate chain as presented, and what validation concluded.

    `valid` is True only when the chain verified against the client trust anchors, has EKU
    clientAuth, is inside its validity period and is not revoked in the ledger.
    """

    chain: tuple[x509.Certificate, ...]
    valid: bool
    reason: str = ""
    is_ra: bool = False
    # The trust anchor the chain was built to (set when valid): each label accepts only its own.
    anchor: x509.Certificate | None = None
    # Validated against a manufacturer CA (`policy.idevid`), not the EST CA's anchors.
    factory: bool = False

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


@dataclass(frozen=True)
class PeerIdentity:
    """Everything the TLS layer learned about the peer of one connection."""

    address: str
    tls: TlsInfo
    client_cert: ClientCertificate | None = None
    srp_user: str | None = None

    @property
    def tls_auth(self) -> AuthKind:
        if self.srp_user is not None:
            return AuthKind.SRP
        if self.client_cert is not None and self.client_cert.valid:
            return AuthKind.CERT
        return AuthKind.NONE
