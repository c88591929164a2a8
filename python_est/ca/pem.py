"""PEM encoding of certificates and keys, and the checks on CA material loaded from PEM."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from python_est.ca.rules import IssuerPrivateKey
from python_est.keys import weak_key_reason


def certificate_pem(cert: x509.Certificate) -> bytes:
    """Return `cert` as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificates_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Return `certs` as concatenated PEM, in order."""
    return b"".join(certificate_pem(cert) for cert in certs)


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    """Return `key` as unencrypted PKCS#8 PEM; write it only to a 0600 file."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Return every certificate in PEM `data`, in order; [] when it holds none.

    Raises:
        ValueError: a CERTIFICATE block is malformed.
    """
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    return x509.load_pem_x509_certificates(data)


def same_public_key(a: CertificatePublicKeyTypes, b: CertificatePublicKeyTypes) -> bool:
    """Tell whether two public keys are the same key (their SubjectPublicKeyInfo is equal)."""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


def load_issuer_key(key_pem: bytes, password: bytes | None = None) -> IssuerPrivateKey:
    """Load an RSA or EC CA key that passes the weak-key rule, decrypting it with `password`.

    A `password` given for a key that is not encrypted is ignored, as est_proxy's handler did.

    Raises:
        ValueError: the key is encrypted without (or with another) password, unreadable, of
            another algorithm or too weak.
    """
    try:
        key = serialization.load_pem_private_key(key_pem, password=password)
    except TypeError as exc:
        if password is None:
            raise ValueError(
                "the CA private key is encrypted; set [ca] key_passphrase to file:PATH, "
                "env:NAME or credential:NAME"
            ) from exc
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, UnsupportedAlgorithm) as exc:
        if password is not None and b"ENCRYPTED" in key_pem:
            raise ValueError("the CA private key does not open with the passphrase given") from exc
        raise ValueError("the CA private key is not a readable PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"CA keys of type {type(key).__name__} are not supported (use RSA or EC)")
    reason = weak_key_reason(key.public_key())
    if reason is not None:
        raise ValueError(f"the CA key is unacceptable: {reason}")
    return key


def order_chain(
    cert: x509.Certificate, pool: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Walk from `cert` to a self-signed root through `pool`, whatever order `pool` is in.

    Returns:
        `cert`, its issuer, and so on up to and including the root.

    Raises:
        ValueError: a certificate on the way is not a CA, the walk does not reach a
            self-signed root, or `pool` holds a certificate that is not on the chain.
    """
    _require_ca(cert)
    remaining = [c for c in pool if c != cert]
    chain = [cert]
    while not _is_self_signed(chain[-1]):
        current = chain[-1]
        issuer = next((c for c in remaining if _issued_by(current, c)), None)
        if issuer is None:
            raise ValueError(
                f"the CA chain stops at {_name(current)}: it is not a self-signed root and its "
                "issuer is not among the chain certificates"
            )
        _require_ca(issuer)
        remaining = [c for c in remaining if c != issuer]
        chain.append(issuer)
    if remaining:
        raise ValueError(f"the chain certificates include {_name(remaining[0])}, not on the chain")
    return tuple(chain)


def _require_ca(cert: x509.Certificate) -> None:
    try:
        constraints: x509.BasicConstraints | None = cert.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError(f"{_name(cert)} is not a CA certificate (basicConstraints cA is not set)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise ValueError(f"{_name(cert)} may not sign certificates (keyUsage lacks keyCertSign)")


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _issued_by(cert, cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _name(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())
