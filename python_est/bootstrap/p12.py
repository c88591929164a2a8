"""The "compatible" PKCS#12 of the bootstrap page: PBES1 3DES with a SHA-1 MAC.

The default file uses AES-256 with PBES2 (cryptography's best available encryption). Older
Android versions and macOS keychains cannot read PBES2 and report a "wrong password", so the
page offers this variant, clearly labelled as weaker, next to it. It is what `openssl pkcs12
-export -legacy` writes, and OpenSSL 3 still reads it without the legacy provider.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

FORMAT_FIELD = "p12_format"
MODERN, COMPATIBLE = "aes256", "compatible"
# PBKDF iterations of the compatible file; its readers predate large iteration counts less than
# they predate PBES2, and 2048 is what OpenSSL's -legacy export uses.
_COMPATIBLE_ROUNDS = 2048


def compatible_pkcs12(
    name: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    passphrase: str,
) -> bytes:
    """Key, certificate and CA chain under pbeWithSHA1And3-KeyTripleDES-CBC, HMAC-SHA1 MAC."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_COMPATIBLE_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(passphrase.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        name.encode("utf-8"),
        key,
        cert,
        list(chain),
        encryption,
    )
