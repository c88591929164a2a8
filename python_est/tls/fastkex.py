"""ECDHE key agreement (X25519, P-256, P-384, P-521) through `cryptography` (OpenSSL).

tlslite does this maths in pure Python (`tlslite.utils.x25519`, python-ecdsa): two scalar
multiplications per handshake, about half of a full handshake's CPU. Its own abstraction for
it is `RawDHKeyExchange` (get a private key, compute the public value, compute the shared
secret); `FastEcdh` implements that API with OpenSSL and is handed to tlslite at its seams:

* TLS 1.3: `TLSConnection._getKEX` (overridden in `python_est.tls.stream`);
* TLS 1.2: the key-exchange object passed to `TLSConnection._serverCertKeyExchange`, replaced
  by `FastEcdheKeyExchange`, whose ECDH half uses `FastEcdh`. tlslite's `AECDHKeyExchange`
  constructs its `ECDHKeyExchange` by module-global name, so that half is restated here; the
  signing half is tlslite's own (`AuthenticatedKeyExchange`).

Groups without an OpenSSL path here (x448, brainpool) keep tlslite's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tlslite.constants import ECCurveType, ECPointFormat, ExtensionType, GroupName
from tlslite.errors import (
    TLSDecodeError,
    TLSIllegalParameterException,
    TLSInsufficientSecurity,
    TLSInternalError,
)
from tlslite.keyexchange import (
    AECDHKeyExchange,
    AuthenticatedKeyExchange,
    ECDHE_RSAKeyExchange,
    RawDHKeyExchange,
)
from tlslite.messages import ServerKeyExchange
from tlslite.utils.lists import getFirstMatching

from python_est.tls.tlslite_seams import COUNTS

_NIST_CURVES: dict[int, type[ec.EllipticCurve]] = {
    GroupName.secp256r1: ec.SECP256R1,
    GroupName.secp384r1: ec.SECP384R1,
    GroupName.secp521r1: ec.SECP521R1,
}
FAST_GROUPS = frozenset({GroupName.x25519, *_NIST_CURVES})
_X25519_SIZE = 32
_ENCODINGS = {0x04: "uncompressed", 0x02: "compressed", 0x03: "compressed"}  # SEC 1 §2.3.3

PrivateValue = X25519PrivateKey | ec.EllipticCurvePrivateKey


class FastEcdh(RawDHKeyExchange):  # type: ignore[misc]
    """tlslite's ECDH key-exchange API for X25519 and the NIST curves, run by OpenSSL.

    Args:
        group: a TLS group id from `FAST_GROUPS`.
        version: the negotiated protocol version (kept for tlslite's API).
    """

    def __init__(self, group: int, version: tuple[int, int]) -> None:
        if group not in FAST_GROUPS:
            raise ValueError(f"no OpenSSL path for group {group}")
        super().__init__(group, version)

    def get_random_private_key(self) -> PrivateValue:
        """A fresh ephemeral private key."""
        if self.group == GroupName.x25519:
            return X25519PrivateKey.generate()
        return ec.generate_private_key(_NIST_CURVES[self.group]())

    def calc_public_value(
        self, private: PrivateValue, point_format: str | None = "uncompressed"
    ) -> bytearray:
        """The key share to send: 32 bytes for X25519, an X9.62 point otherwise."""
        if isinstance(private, X25519PrivateKey):
            return bytearray(private.public_key().public_bytes_raw())
        form = PublicFormat.CompressedPoint
        if point_format != "compressed":
            form = PublicFormat.UncompressedPoint
        return bytearray(private.public_key().public_bytes(Encoding.X962, form))

    def calc_shared_key(
        self,
        private: PrivateValue,
        peer_share: bytes | bytearray,
        valid_point_formats: Iterable[str] = ("uncompressed",),
    ) -> bytearray:
        """The shared secret (the x coordinate for NIST curves), as tlslite computes it.

        Raises:
            TLSIllegalParameterException: the peer's share is not a valid public value, or
                X25519 gives the all-zero secret (RFC 8422 §5.11, RFC 7748 §6.1).
            TLSDecodeError: no point format is acceptable.
        """
        if isinstance(private, X25519PrivateKey):
            if len(peer_share) != _X25519_SIZE:
                raise TLSIllegalParameterException("Invalid key share")
            try:
                peer = X25519PublicKey.from_public_bytes(bytes(peer_share))
                shared = private.exchange(peer)
            except ValueError:  # OpenSSL refuses a low-order point (all-zero result)
                raise TLSIllegalParameterException("Invalid key share") from None
            COUNTS.key_exchange += 1
            return bytearray(shared)
        formats = set(valid_point_formats)
        if not formats:
            raise TLSDecodeError("Empty point formats extension")
        if not peer_share or _ENCODINGS.get(peer_share[0]) not in formats:
            raise TLSIllegalParameterException("Invalid ECC point")
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, bytes(peer_share))
        except ValueError:  # wrong length, or not on the curve
            raise TLSIllegalParameterException("Invalid ECC point") from None
        shared = private.exchange(ec.ECDH(), point)
        COUNTS.key_exchange += 1
        return bytearray(shared)


def _point_format_names(formats: Iterable[int]) -> list[str]:
    return ["uncompressed" if f == ECPointFormat.uncompressed else "compressed" for f in formats]


class _FastAecdh(AECDHKeyExchange):  # type: ignore[misc]
    """The ECDH half of tlslite's `AECDHKeyExchange`, with `FastEcdh` for the maths."""

    ecdhXs: Any  # noqa: N815 - tlslite's: our private key, or tlslite's for other groups

    def _common_point_formats(self) -> list[int]:
        # RFC 8422 §5.1.2: without both extensions, only the uncompressed form is used.
        ext_c = self.clientHello.getExtension(ExtensionType.ec_point_formats)
        ext_s = self.serverHello.getExtension(ExtensionType.ec_point_formats)
        if not (ext_c and ext_s):
            return [ECPointFormat.uncompressed]
        common = [f for f in ext_c.formats if f in ext_s.formats]
        if not common:
            raise TLSIllegalParameterException("No common EC point format")
        return common

    def makeServerKeyExchange(self, sigHash: str | None = None) -> Any:  # noqa: N802, N803
        """The unsigned ServerKeyExchange; `AuthenticatedKeyExchange` signs it."""
        ext = self.clientHello.getExtension(ExtensionType.supported_groups)
        if ext is None:
            client_groups = [self.defaultCurve]
        elif not ext.groups:
            raise TLSInternalError("Can't do ECDHE with no client curves")
        else:
            client_groups = ext.groups
        # The client's order of preference, as tlslite does.
        group = getFirstMatching(client_groups, self.acceptedCurves)
        if group is None:
            raise TLSInsufficientSecurity("No mutual groups")
        if group not in FAST_GROUPS:
            return super().makeServerKeyExchange(sigHash)
        kex = FastEcdh(group, self.serverHello.server_version)
        self.group_id = group
        self.ecdhXs = kex.get_random_private_key()
        point_format = _point_format_names(self._common_point_formats()[:1])[0]
        public = kex.calc_public_value(self.ecdhXs, point_format)
        ske = ServerKeyExchange(self.cipherSuite, self.serverHello.server_version)
        ske.createECDH(ECCurveType.named_curve, named_curve=group, point=public)
        return ske

    def processClientKeyExchange(self, clientKeyExchange: Any) -> bytearray:  # noqa: N802, N803
        """The premaster secret from the client's public value."""
        if not isinstance(self.ecdhXs, PrivateValue):
            return super().processClientKeyExchange(clientKeyExchange)  # type: ignore[no-any-return]
        peer = clientKeyExchange.ecdh_Yc
        if not peer:
            raise TLSDecodeError("No key share")
        kex = FastEcdh(self.group_id, self.serverHello.server_version)
        formats = _point_format_names(self._common_point_formats())
        return kex.calc_shared_key(self.ecdhXs, peer, formats)


class FastEcdheKeyExchange(AuthenticatedKeyExchange, _FastAecdh):  # type: ignore[misc]
    """tlslite's `ECDHE_RSAKeyExchange` (used for ECDHE_RSA and ECDHE_ECDSA suites).

    The method order puts `AuthenticatedKeyExchange` (tlslite's signing of the
    ServerKeyExchange) around `_FastAecdh` (the ECDH maths).
    """

    def __init__(
        self,
        cipherSuite: int,  # noqa: N803 - tlslite's keyword names
        clientHello: Any,  # noqa: N803
        serverHello: Any,  # noqa: N803
        privateKey: Any,  # noqa: N803
        acceptedCurves: list[int],  # noqa: N803
        defaultCurve: int = GroupName.secp256r1,  # noqa: N803
    ) -> None:
        super().__init__(cipherSuite, clientHello, serverHello, acceptedCurves, defaultCurve)
        self.privateKey = privateKey


def faster_key_exchange(key_exchange: Any) -> Any:
    """The OpenSSL-backed equivalent of a tlslite server key exchange, if there is one."""
    if type(key_exchange) is not ECDHE_RSAKeyExchange:
        return key_exchange
    return FastEcdheKeyExchange(
        key_exchange.cipherSuite,
        key_exchange.clientHello,
        key_exchange.serverHello,
        key_exchange.privateKey,
        key_exchange.acceptedCurves,
        key_exchange.defaultCurve,
    )


def fast_kex(group: int, version: tuple[int, int]) -> FastEcdh | None:
    """`FastEcdh` for a TLS 1.3 key share group, or None to use tlslite's."""
    return FastEcdh(group, version) if group in FAST_GROUPS else None
