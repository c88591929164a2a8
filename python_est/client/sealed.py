"""Opening an encrypted server-generated key (RFC 7030 §4.4.2) on the client side.

The key part is EnvelopedData → SignedData → AsymmetricKeyPackage. `KeyOpener` asks for one
(`protection`, the CSR attributes) and opens the answer: decrypt with the recipient key or the
KEK, check that the EST server signed the package under the client's trust anchors, and return
the PKCS#8 key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from python_est.oids import ID_SIGNED_DATA
from python_est.wire.envelope import AES_CBC, AES_WRAP, ECDH_SCHEMES, ID_RSAES_OAEP, open_envelope
from python_est.wire.keypackage import decode_key_package, verify_key_package
from python_est.wire.keyrequest import KeyProtection, capability_list


@dataclass(frozen=True)
class KeyOpener:
    """How the client asks for an encrypted key and opens it.

    Build one with `to_certificate` or `to_kek`.
    """

    protection: KeyProtection
    trust: tuple[x509.Certificate, ...]
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = field(
        default=None, repr=False
    )
    kek: bytes | None = field(default=None, repr=False)

    @classmethod
    def to_certificate(
        cls,
        cert: x509.Certificate,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        trust: Sequence[x509.Certificate],
    ) -> KeyOpener:
        """Encrypt to `cert` (§4.4.1.2), opened with `key`.

        Raises:
            ValueError: `key` is not the key of `cert` (checked before anything is issued).
        """
        if _spki(key.public_key()) != _spki(cert.public_key()):
            raise ValueError("the private key does not belong to the certificate to encrypt to")
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        if isinstance(key, rsa.RSAPrivateKey):
            wanted = [ID_RSAES_OAEP, AES_CBC[32]]
        else:
            wanted = [next(iter(ECDH_SCHEMES)), AES_CBC[32]]
        protection = KeyProtection(None, ski, capability_list(wanted))
        return cls(protection, tuple(trust), private_key=key)

    @classmethod
    def to_kek(cls, kek_id: str, kek: bytes, trust: Sequence[x509.Certificate]) -> KeyOpener:
        """Encrypt under the shared KEK `kek_id` (§4.4.1.1)."""
        protection = KeyProtection(
            kek_id.encode("ascii"), None, capability_list([AES_WRAP[len(kek)], AES_CBC[32]])
        )
        return cls(protection, tuple(trust), kek=kek)

    def open(self, enveloped_der: bytes) -> bytes:
        """The PKCS#8 DER inside the key part.

        Raises:
            ValueError: it does not decrypt, or its signature does not verify.
        """
        content_type, signed = open_envelope(
            enveloped_der,
            private_key=self.private_key,
            kek=self.kek,
            kek_id=self.protection.kek_id,
        )
        if content_type != ID_SIGNED_DATA.dotted_string:
            raise ValueError("the encrypted key part does not hold a SignedData")
        package, _ = verify_key_package(signed, self.trust)
        return decode_key_package(package)


def _spki(public: object) -> bytes:
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("only RSA and EC certificates can receive an encrypted key")
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
