"""Server keys signing through OpenSSL give what tlslite's own key classes give (or accept)."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from tlslite.api import X509
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.utils.python_ecdsakey import Python_ECDSAKey
from tlslite.utils.python_rsakey import Python_RSAKey

from python_est.tls.fastkeys import (
    FastECDSAKey,
    FastRSAKey,
    fast_public_key,
    tlslite_private_key,
)

HASHES = ["sha1", "sha224", "sha256", "sha384", "sha512"]


def tlslite_python_key(key: Any) -> Any:
    """The same key as tlslite's pure-Python class, the reference implementation."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    parsed = parsePEMKey(pem.decode("ascii"), private=True, implementations=["python"])
    assert type(parsed) in (Python_RSAKey, Python_ECDSAKey)
    return parsed


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[FastRSAKey, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return tlslite_private_key(key), tlslite_python_key(key)


def digest(name: str, data: bytes = b"server key exchange params") -> bytearray:
    return bytearray(hashlib.new(name, data).digest())


@pytest.mark.parametrize("hash_name", HASHES)
def test_rsa_pkcs1_signature_is_byte_identical(
    rsa_pair: tuple[FastRSAKey, Any], hash_name: str
) -> None:
    fast, python = rsa_pair
    value = digest(hash_name)
    signature = fast.sign(value, "pkcs1", hash_name)
    assert signature == python.sign(value, "pkcs1", hash_name)
    assert isinstance(signature, bytearray)
    assert python.verify(signature, value, "pkcs1", hash_name)
    assert fast.verify(signature, value, "pkcs1", hash_name)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_rsa_pss_signatures_verify_both_ways(
    rsa_pair: tuple[FastRSAKey, Any], hash_name: str
) -> None:
    fast, python = rsa_pair
    value = digest(hash_name)
    salt = hashlib.new(hash_name).digest_size
    ours = fast.sign(value, "pss", hash_name, salt)
    theirs = python.sign(value, "pss", hash_name, salt)
    assert ours != theirs  # random salts: proof that ours did not come from tlslite's code
    assert python.verify(ours, value, "pss", hash_name, salt)
    assert fast.verify(theirs, value, "pss", hash_name, salt)


def test_rsa_hash_and_sign_goes_through_the_fast_sign(rsa_pair: tuple[FastRSAKey, Any]) -> None:
    fast, python = rsa_pair
    data = bytearray(b"certificate verify transcript")
    assert fast.hashAndSign(data, "PKCS1", "sha256") == python.hashAndSign(data, "PKCS1", "sha256")


def test_rsa_tls10_md5_sha1_signature_falls_back_to_tlslite(
    rsa_pair: tuple[FastRSAKey, Any],
) -> None:
    # TLS 1.0/1.1 sign MD5||SHA1 without a DigestInfo: no named hash, tlslite's code signs.
    fast, python = rsa_pair
    value = digest("md5") + digest("sha1")
    assert fast.sign(value) == python.sign(value)
    assert fast.verify(fast.sign(value), value)


@pytest.mark.parametrize(
    ("pad", "hash_name", "salt"), [("pkcs1", "sha256", None), ("pss", "sha256", 32)]
)
def test_rsa_verify_refuses_a_wrong_signature(
    rsa_pair: tuple[FastRSAKey, Any], pad: str, hash_name: str, salt: int | None
) -> None:
    fast, _ = rsa_pair
    value = digest(hash_name)
    signature = fast.sign(value, pad, hash_name, salt)
    assert fast.verify(signature, value, pad, hash_name, salt)
    tampered = bytearray(signature)
    tampered[-1] ^= 1
    assert not fast.verify(tampered, value, pad, hash_name, salt)
    assert not fast.verify(signature, digest(hash_name, b"other"), pad, hash_name, salt)


def test_rsa_key_keeps_what_tlslite_reads(rsa_pair: tuple[FastRSAKey, Any]) -> None:
    fast, python = rsa_pair
    assert isinstance(fast, Python_RSAKey)
    assert (fast.n, fast.e, fast.key_type, len(fast)) == (python.n, python.e, "rsa", 2048)
    assert fast.hasPrivateKey()


CURVES = [(ec.SECP256R1(), "NIST256p"), (ec.SECP384R1(), "NIST384p"), (ec.SECP521R1(), "NIST521p")]


@pytest.mark.parametrize(("curve", "name"), CURVES)
def test_ecdsa_signatures_verify_both_ways(curve: ec.EllipticCurve, name: str) -> None:
    key = ec.generate_private_key(curve)
    fast, python = tlslite_private_key(key), tlslite_python_key(key)
    assert isinstance(fast, FastECDSAKey)
    assert (fast.curve_name, fast.key_type) == (name, "ecdsa")
    # tlslite truncates the digest to the curve size itself (`private_key.curve.baselen`).
    baselen = fast.private_key.curve.baselen
    for hash_name in HASHES:
        value = digest(hash_name)[:baselen]
        ours = fast.sign(value, hashAlg=hash_name)
        assert python.verify(ours, value)
        assert fast.verify(python.sign(value, hashAlg=hash_name), value)
        assert fast.verify(ours, value)


def test_ecdsa_verify_refuses_a_wrong_signature() -> None:
    fast = tlslite_private_key(ec.generate_private_key(ec.SECP256R1()))
    value = digest("sha256")
    signature = fast.sign(value, hashAlg="sha256")
    assert not fast.verify(signature, digest("sha256", b"other"))
    assert not fast.verify(bytearray(b"\x30\x03garbage"), value)


def test_ecdsa_hash_and_sign_verifies_with_tlslite() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fast, python = tlslite_private_key(key), tlslite_python_key(key)
    data = bytearray(os.urandom(100))
    assert python.hashAndVerify(fast.hashAndSign(data, hAlg="sha256"), data, hAlg="sha256")


def test_ecdsa_odd_digest_length_falls_back_to_tlslite() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fast, python = tlslite_private_key(key), tlslite_python_key(key)
    value = bytearray(os.urandom(17))  # no SHA size: python-ecdsa's code signs it
    assert python.verify(fast.sign(value, hashAlg="sha256"), value)
    assert fast.verify(python.sign(value, hashAlg="sha256"), value)


def test_unsupported_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported server key type"):
        tlslite_private_key(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="unsupported server key curve"):
        tlslite_private_key(ec.generate_private_key(ec.SECP256K1()))


# --- peers' public keys (client CertificateVerify) ------------------------------------------


def tlslite_certificate_key(key: Any) -> Any:
    """The public key tlslite takes from a certificate for `key`, as for a client's chain."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    parsed = X509()
    parsed.parseBinary(bytearray(cert.public_bytes(serialization.Encoding.DER)))
    return parsed.publicKey


@pytest.mark.parametrize(("curve", "name"), CURVES)
def test_peer_ecdsa_key_verifies_in_openssl_like_tlslite(
    curve: ec.EllipticCurve, name: str
) -> None:
    private = ec.generate_private_key(curve)
    signer = tlslite_python_key(private)
    theirs = tlslite_certificate_key(private)
    ours = fast_public_key(theirs)
    assert ours is not theirs
    assert (ours.curve_name, ours.key_type, len(ours)) == (name, "ecdsa", len(theirs))
    assert ours.public_key.curve.baselen == theirs.public_key.curve.baselen
    for hash_name in HASHES:
        value = digest(hash_name)[: ours.public_key.curve.baselen]
        signature = signer.sign(value, hashAlg=hash_name)
        assert ours.verify(signature, value, None, hash_name, None)
        assert not ours.verify(signature, digest(hash_name, b"other")[: len(value)], None)
    odd = bytearray(os.urandom(17))  # no SHA size: tlslite's own code decides
    assert ours.verify(signer.sign(odd, hashAlg="sha256"), odd, None, "sha256", None)
    assert not ours.verify(bytearray(b"\x30\x03junk"), digest("sha256"), None, "sha256", None)


def test_peer_rsa_key_verifies_pss_in_openssl_and_leaves_pkcs1_to_tlslite(
    rsa_pair: tuple[FastRSAKey, Any],
) -> None:
    fast, python = rsa_pair
    theirs = tlslite_certificate_key(fast._key)
    ours = fast_public_key(theirs)
    assert ours is not theirs and (ours.n, ours.e, len(ours)) == (theirs.n, theirs.e, 2048)
    value = digest("sha256")
    pss = python.sign(value, "pss", "sha256", 32)
    assert ours.verify(pss, value, "pss", "sha256", 32)
    assert not ours.verify(pss, digest("sha256", b"other"), "pss", "sha256", 32)
    # CertificateVerify with PKCS#1 v1.5 arrives with the DigestInfo already prepended.
    prefixed = Python_RSAKey.addPKCS1Prefix(value, "sha256")
    signature = python.sign(prefixed, "pkcs1", None)
    assert ours.verify(signature, prefixed, "pkcs1", None, 0)
    assert ours.verify(python.sign(value, "pkcs1", "sha256"), value, "pkcs1", "sha256")


def test_rsa_pss_only_keys_keep_refusing_pkcs1(rsa_pair: tuple[FastRSAKey, Any]) -> None:
    _, python = rsa_pair
    pss_only = fast_public_key(Python_RSAKey(python.n, python.e, key_type="rsa-pss"))
    value = digest("sha256")
    assert not pss_only.verify(python.sign(value, "pkcs1", "sha256"), value, "pkcs1", "sha256")


def test_other_peer_keys_are_left_alone() -> None:
    theirs = tlslite_certificate_key(ed25519.Ed25519PrivateKey.generate())
    assert fast_public_key(theirs) is theirs
