"""Encrypted return of server-generated keys (RFC 7030 §4.4.1.1, §4.4.1.2, §4.4.2).

`KeyProtector.resolve` reads what the CSR asks for and decides, before anything is issued,
whether the server can honour it; a request it cannot honour is refused with 400 and a reason,
never answered with a plaintext key. The returned `Sealer` then wraps the generated key:
AsymmetricKeyPackage (RFC 5958) → SignedData by the EST server (the key generator) →
EnvelopedData to the recipient.

Who may receive the key (asymmetric case), named by subjectKeyIdentifier:
- the validated TLS client certificate of the same connection (possession proven in the
  handshake), or
- a current (unexpired, unrevoked) certificate of this label, for the request's subject, that
  the ledger records as obtained by the same requester (a device that enrolled a key earlier,
  now authenticating with the same password).
Anything else, another device's or the CA's certificate, is refused, so a requester can neither
make the server encrypt to a key of someone else nor probe which certificates exist.
RFC 7030 §4.4.1.2: the certificate's keyUsage must allow keyEncipherment (RSA) or keyAgreement
(EC), or be absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from python_est.errors import BadRequest, InternalError, NotImplementedOperation
from python_est.oids import ID_SIGNED_DATA
from python_est.policy import PeerIdentity
from python_est.wire.envelope import check_kek, check_recipient, envelope_to_certificate
from python_est.wire.envelope import envelope_to_kek as _envelope_to_kek
from python_est.wire.keypackage import SignerKey, encode_key_package, sign_key_package
from python_est.wire.keyrequest import KeyProtection, key_protection

# A KEK lookup: (label, DecryptKeyIdentifier) → key bytes, None when unknown.
KekLookup = Callable[[str, bytes], "bytes | None"]
# Certificates a requester holds: (label, subject RFC 4514, requester) → current certificates.
HeldCertificates = Callable[[str, str, str], "list[x509.Certificate]"]
SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"
_UNKNOWN_RECIPIENT = (
    "AsymmetricDecryptKeyIdentifier names neither the TLS client certificate of this "
    "connection nor a current certificate of this label that this requester obtained for "
    "this subject"
)


@dataclass(frozen=True)
class KeySigner:
    """The key generator's signing identity: the EST server's TLS key and chain (leaf first)."""

    key: SignerKey
    chain: tuple[x509.Certificate, ...]


class Sealer:
    """Wraps one generated key as the request asked (built by `KeyProtector.resolve`)."""

    def __init__(self, signer: KeySigner, envelope: Callable[[bytes, str], bytes]) -> None:
        self._signer = signer
        self._envelope = envelope

    def seal(self, pkcs8_der: bytes) -> tuple[bytes, str]:
        """The key part of the §4.4.2 response: EnvelopedData DER and its Content-Type."""
        signed = sign_key_package(
            encode_key_package(pkcs8_der), self._signer.key, self._signer.chain
        )
        return self._envelope(signed, ID_SIGNED_DATA.dotted_string), SERVER_GENERATED_KEY


class KeyProtector:
    """Decides how a /serverkeygen key is returned.

    Args:
        signer: the key generator's identity; None makes encrypted requests 501.
        keks: the registered KEKs; None makes DecryptKeyIdentifier requests 400.
        held: the requester's current certificates in the ledger; None: only the TLS client
            certificate can be a recipient.
    """

    def __init__(
        self,
        signer: KeySigner | None,
        keks: KekLookup | None,
        held: HeldCertificates | None = None,
    ) -> None:
        self._signer = signer
        self._keks = keks
        self._held = held

    def resolve(
        self,
        csr: x509.CertificateSigningRequest,
        peer: PeerIdentity,
        label: str,
        requester: str,
    ) -> Sealer | None:
        """None for a plaintext request; else a `Sealer` the request's key can go through.

        Raises:
            InvalidCsr: the key-protection attributes are malformed.
            BadRequest: an identifier that does not resolve, or no usable SMIMECapabilities.
            NotImplementedOperation: encryption asked for but no signing identity configured.
        """
        protection = key_protection(csr)
        if protection is None:
            return None
        if self._signer is None:
            raise NotImplementedOperation("encrypted key return is not configured on this server")
        if not protection.capabilities:
            # §4.4.1: the client MUST include SMIMECapabilities with an encryption request.
            raise BadRequest(
                "an encrypted-key request must carry SMIMECapabilities (RFC 7030 §4.4.1)"
            )
        if protection.kek_id is not None:
            return Sealer(self._signer, self._kek_envelope(protection, protection.kek_id, label))
        recipient = self._recipient(protection.recipient_key_id, peer, label, csr, requester)
        return Sealer(self._signer, self._certificate_envelope(protection, recipient))

    def _kek_envelope(
        self, protection: KeyProtection, kek_id: bytes, label: str
    ) -> Callable[[bytes, str], bytes]:
        try:
            kek = None if self._keks is None else self._keks(label, kek_id)
        except ValueError:
            raise InternalError("the KEK store cannot be read") from None
        if kek is None:
            # §4.4.1.1: an unknown identifier MUST terminate the request with an error.
            raise BadRequest("DecryptKeyIdentifier names no key-encryption key of this CA label")
        caps = protection.capabilities
        check_kek(kek, caps)

        def envelope(content: bytes, content_type: str) -> bytes:
            return _envelope_to_kek(content, content_type, kek, kek_id, caps)

        return envelope

    def _recipient(
        self,
        key_id: bytes | None,
        peer: PeerIdentity,
        label: str,
        csr: x509.CertificateSigningRequest,
        requester: str,
    ) -> x509.Certificate:
        client = peer.client_cert
        if client is not None and client.valid and key_id == _key_identifier(client.leaf):
            return client.leaf
        if self._held is not None:
            for cert in self._held(label, csr.subject.rfc4514_string(), requester):
                if key_id == _key_identifier(cert):
                    return cert
        # §4.4.1.2: an identifier the server cannot resolve MUST end the request.
        raise BadRequest(_UNKNOWN_RECIPIENT)

    def _certificate_envelope(
        self, protection: KeyProtection, recipient: x509.Certificate
    ) -> Callable[[bytes, str], bytes]:
        _check_key_usage(recipient)
        caps = protection.capabilities
        check_recipient(recipient.public_key(), caps)

        def envelope(content: bytes, content_type: str) -> bytes:
            return envelope_to_certificate(content, content_type, recipient, caps)

        return envelope


def _key_identifier(cert: x509.Certificate) -> bytes:
    # The certificate's subjectKeyIdentifier; without one, RFC 5280 §4.2.1.2 method 1.
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _check_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # unrestricted
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey) and not usage.key_encipherment:
        raise BadRequest(
            "the TLS client certificate's keyUsage lacks keyEncipherment, so it may not "
            "receive a key (RFC 7030 §4.4.1.2)"
        )
    if isinstance(public, ec.EllipticCurvePublicKey) and not usage.key_agreement:
        raise BadRequest(
            "the TLS client certificate's keyUsage lacks keyAgreement, so it may not "
            "receive a key (RFC 7030 §4.4.1.2)"
        )


def signer_from(key: object, chain: Sequence[x509.Certificate]) -> KeySigner | None:
    """A `KeySigner` for an RSA or EC key; None for other key types (encryption then 501)."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) and chain:
        return KeySigner(key, tuple(chain))
    return None
