"""Key types the CA and serverkeygen accept, and the strength rule every public key must pass."""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ALLOWED_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}


class KeyType(enum.Enum):
    """A key algorithm and size, spelled as in config (`rsa-2048`, `ec-p256`)."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1])

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1() if self is KeyType.EC_P256 else ec.SECP384R1()


def generate_private_key(key_type: KeyType) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """Return a fresh private key of `key_type`."""
    if key_type.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=key_type.rsa_bits)
    return ec.generate_private_key(key_type.curve)


def key_type_of(key: CertificatePublicKeyTypes | CertificateIssuerPrivateKeyTypes) -> str:
    """Describe a key as `rsa-N` or `ec-<curve>` for messages and the ledger."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ec-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "ed448"
    return type(key).__name__


def weak_key_reason(key: CertificatePublicKeyTypes) -> str | None:
    """Return why `key` is unacceptable for a certificate, or None when it is fine."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits is too small (minimum {MIN_RSA_BITS})"
        if key.key_size > MAX_RSA_BITS:
            return f"RSA key of {key.key_size} bits is too large (maximum {MAX_RSA_BITS})"
        if key.public_numbers().e < 65537 or key.public_numbers().e % 2 == 0:
            return "RSA public exponent must be odd and at least 65537"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            allowed = ", ".join(ALLOWED_CURVES)
            return f"elliptic curve {key.curve.name} is not allowed (use {allowed})"
        return None
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    return f"key algorithm {type(key).__name__} is not supported"
