"""PKCS#12 files of server-generated keys: the MAC costs as many iterations as the encryption."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from python_est.wire import PKCS12_ITERATIONS, encode_pkcs12, mac_iterations
from python_est.wire.pkcs12 import remac

PASSPHRASE = "pässphrase €".encode()


def self_signed() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.mark.parametrize("iterations", [1000, 4097])
def test_mac_has_the_encryption_iterations_and_verifies(iterations: int) -> None:
    key, cert = self_signed()
    data = encode_pkcs12(b"device", key, cert, [cert], PASSPHRASE, iterations)
    assert mac_iterations(data) == iterations
    # OpenSSL (under cryptography) checks the MAC before it decrypts anything.
    loaded_key, loaded_cert, cas = pkcs12.load_key_and_certificates(data, PASSPHRASE)
    assert loaded_cert == cert and cas == [cert]
    assert loaded_key is not None and loaded_key.public_key() == key.public_key()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"wrong passphrase")


def test_default_iterations() -> None:
    key, cert = self_signed()
    assert mac_iterations(encode_pkcs12(b"d", key, cert, [], PASSPHRASE)) == PKCS12_ITERATIONS
    assert PKCS12_ITERATIONS >= 100_000


def test_remac_refuses_trailing_bytes() -> None:
    key, cert = self_signed()
    data = encode_pkcs12(b"d", key, cert, [], PASSPHRASE, 1000)
    with pytest.raises(ValueError):
        remac(data + b"\x00", PASSPHRASE, 1000)
