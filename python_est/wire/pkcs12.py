"""PKCS#12 (RFC 7292) files for a server-generated key, with a MAC as costly as the encryption.

cryptography encrypts the key bag with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) at the
iteration count asked for, but computes the integrity MAC with a fixed 2048 iterations. The MAC
verifies a passphrase guess just as well as a decryption does, so an offline attacker would
attack the cheap MAC, and the encryption's iterations would buy nothing. `encode_pkcs12`
therefore recomputes the MAC (HMAC-SHA256 keyed by the RFC 7292 Appendix B.2 KDF) with the
same iteration count as the encryption, and replaces `macData` in the PFX.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ
from pyasn1_modules import rfc7292

# PBKDF2-HMAC-SHA256 iterations of the key encryption and of the MAC (OWASP 2023 suggests
# 600 000 for PBKDF2-SHA256; the MAC's KDF runs in Python, so 100 000 keeps one download
# under about a tenth of a second of CPU for each).
PKCS12_ITERATIONS = 100_000
_SHA256_OID = univ.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
_MAC_ID = 3  # RFC 7292 B.3: ID byte 3 derives MAC keys
_SALT_BYTES = 16


def encode_pkcs12(
    name: bytes,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    cas: Sequence[x509.Certificate],
    passphrase: bytes,
    iterations: int = PKCS12_ITERATIONS,
) -> bytes:
    """A PFX holding `key`, `cert` and `cas`: PBES2/AES-256-CBC and an HMAC-SHA256 MAC, both
    with `iterations` PBKDF rounds."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(iterations)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )
    pfx = pkcs12.serialize_key_and_certificates(name, key, cert, list(cas), encryption)
    return remac(pfx, passphrase, iterations)


def mac_iterations(pfx_der: bytes) -> int:
    """The iteration count of a PFX's MAC (1 when absent from `macData`, RFC 7292 §4)."""
    pfx, _ = der_decoder.decode(pfx_der, asn1Spec=rfc7292.PFX())
    return int(pfx["macData"]["iterations"])


def remac(pfx_der: bytes, passphrase: bytes, iterations: int) -> bytes:
    """`pfx_der` with its MAC recomputed: HMAC-SHA256, a fresh salt, `iterations` rounds."""
    pfx, rest = der_decoder.decode(pfx_der, asn1Spec=rfc7292.PFX())
    if rest:
        raise ValueError("trailing data after the PFX")
    # The MAC covers the content octets of authSafe's `data` (RFC 7292 §4, §5.1 step C).
    content, _ = der_decoder.decode(bytes(pfx["authSafe"]["content"]), asn1Spec=univ.OctetString())
    salt = secrets.token_bytes(_SALT_BYTES)
    mac_key = _pkcs12_kdf(passphrase, salt, iterations, _MAC_ID, 32)
    digest = hmac.new(mac_key, bytes(content), hashlib.sha256).digest()
    mac_data = pfx["macData"]
    mac_data["mac"]["digestAlgorithm"]["algorithm"] = _SHA256_OID
    mac_data["mac"]["digest"] = univ.OctetString(digest)
    mac_data["macSalt"] = univ.OctetString(salt)
    mac_data["iterations"] = iterations
    return bytes(der_encoder.encode(pfx))


def _pkcs12_kdf(passphrase: bytes, salt: bytes, iterations: int, purpose: int, size: int) -> bytes:
    """RFC 7292 Appendix B.2 with SHA-256 (u = 32, v = 64), for `size` <= 32 bytes."""
    u, v = 32, 64
    if size > u:
        raise ValueError("only one hash block of key material is needed here")
    # B.1: the passphrase as a BMPString with two zero bytes at the end.
    password = (passphrase.decode("utf-8") + "\0").encode("utf-16-be")
    d = bytes([purpose]) * v
    s = _stretch(salt, v)
    p = _stretch(password, v)
    block = d + s + p
    for _ in range(iterations):
        block = hashlib.sha256(block).digest()
    return block[:size]


def _stretch(data: bytes, v: int) -> bytes:
    """`data` repeated to the smallest multiple of `v` bytes that holds it (B.2 steps 2, 3)."""
    if not data:
        return b""
    length = v * -(-len(data) // v)
    return (data * (length // len(data) + 1))[:length]
