"""The encrypted-key codecs (RFC 7030 §4.4.1, §4.4.2) and the KEK store, with hostile inputs.

Every bad CSR attribute is an `InvalidCsr` (400) and every unusable capability list a
`BadRequest` (400) with a reason; what is built opens again and verifies.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import char, univ
from pyasn1_modules import rfc2986, rfc4055, rfc5652

from python_est import oids
from python_est.errors import BadRequest, InvalidCsr
from python_est.keks import KekStore, check_kek_id, parse_kek
from python_est.wire.envelope import (
    AES_CBC,
    AES_WRAP,
    ID_RSAES_OAEP,
    content_key_length,
    envelope_to_certificate,
    envelope_to_kek,
    open_envelope,
)
from python_est.wire.keypackage import (
    algorithm_identifier,
    decode_key_package,
    encode_key_package,
    sign_key_package,
    verify_key_package,
)
from python_est.wire.keyrequest import (
    SMIME_CAPABILITIES,
    Capability,
    KeyProtection,
    capability_list,
    key_protection,
    with_key_protection,
)

DKI = oids.DECRYPT_KEY_IDENTIFIER.dotted_string
ADKI = oids.ASYMMETRIC_DECRYPT_KEY_IDENTIFIER.dotted_string
ECDH_SHA256 = "1.3.132.1.11.1"
SIGNED = oids.ID_SIGNED_DATA.dotted_string


def base_csr(
    key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")]))
        .sign(key or ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


def with_raw_attributes(*attributes: tuple[str, list[bytes]]) -> x509.CertificateSigningRequest:
    """A CSR carrying these attributes as given (its signature no longer matches: the
    /serverkeygen path ignores it, §4.4.1)."""
    request, _ = decoder.decode(
        base_csr().public_bytes(serialization.Encoding.DER),
        asn1Spec=rfc2986.CertificationRequest(),
    )
    for oid, values in attributes:
        attribute = rfc2986.Attribute()
        attribute["type"] = univ.ObjectIdentifier(oid)
        for value in values:
            attribute["values"].append(univ.Any(value))
        request["certificationRequestInfo"]["attributes"].append(attribute)
    return x509.load_der_x509_csr(encoder.encode(request))


def octets(data: bytes) -> bytes:
    return bytes(encoder.encode(univ.OctetString(data)))


def caps_der(*oids_: str) -> bytes:
    capabilities = univ.SequenceOf(componentType=univ.Any())
    for oid in oids_:
        item = encoder.encode(univ.ObjectIdentifier(oid))
        capabilities.append(univ.Any(b"\x30" + bytes([len(item)]) + item))
    return bytes(encoder.encode(capabilities))


def test_plaintext_request_has_no_protection() -> None:
    assert key_protection(base_csr()) is None


def test_protection_round_trip() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    wanted = KeyProtection(b"fleet", None, capability_list([AES_WRAP[16], AES_CBC[32]]))
    csr = with_key_protection(base_csr(key), key, wanted)
    assert csr.is_signature_valid
    assert key_protection(csr) == wanted


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ([(DKI, [b""])], "must appear once, with one value"),  # an empty value is none
        ([(DKI, [octets(b"")])], "1 to 64 octets"),
        ([(DKI, [octets(b"x" * 65)])], "1 to 64 octets"),
        ([(DKI, [encoder.encode(char.UTF8String("fleet"))])], "not an OCTET STRING"),
        ([(DKI, [octets(b"a"), octets(b"b")])], "must appear once, with one value"),
        ([(DKI, [octets(b"a")]), (DKI, [octets(b"a")])], "must appear once, with one value"),
        ([(DKI, [octets(b"a")]), (ADKI, [octets(b"b")])], "both"),
        ([(ADKI, [octets(b"a")]), (SMIME_CAPABILITIES, [octets(b"x")])], "malformed"),
        (
            [(ADKI, [octets(b"a")]), (SMIME_CAPABILITIES, [caps_der(*[AES_CBC[16]] * 33)])],
            "at most 32",
        ),
    ],
)
def test_hostile_attributes(attributes: list[tuple[str, list[bytes]]], reason: str) -> None:
    with pytest.raises(InvalidCsr) as caught:
        key_protection(with_raw_attributes(*attributes))
    assert caught.value.status == 400 and reason in caught.value.detail


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def oaep_capability(hash_oid: str) -> Capability:
    params = rfc4055.RSAES_OAEP_params()
    params["hashFunc"]["algorithm"] = univ.ObjectIdentifier(hash_oid)
    params["maskGenFunc"]["algorithm"] = rfc4055.id_mgf1
    params["maskGenFunc"]["parameters"] = encoder.encode(algorithm_identifier(hash_oid))
    return Capability(ID_RSAES_OAEP, bytes(encoder.encode(params)))


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_oaep_hash_follows_the_capability() -> None:
    cert = self_signed(RSA_KEY)
    der = envelope_to_certificate(
        b"secret", SIGNED, cert, [oaep_capability(str(rfc4055.id_sha384))]
    )
    info, _ = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    enveloped, _ = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.EnvelopedData())
    ktri = enveloped["recipientInfos"][0]["ktri"]
    params, _ = decoder.decode(
        bytes(ktri["keyEncryptionAlgorithm"]["parameters"]), asn1Spec=rfc4055.RSAES_OAEP_params()
    )
    assert params["hashFunc"]["algorithm"] == rfc4055.id_sha384
    assert open_envelope(der, private_key=RSA_KEY) == (SIGNED, b"secret")


@pytest.mark.parametrize(
    ("key", "caps", "reason"),
    [
        (RSA_KEY, [Capability("1.2.840.113549.1.1.1")], "RSAES-OAEP"),
        (RSA_KEY, [oaep_capability(str(rfc4055.id_sha1))], "RSAES-OAEP"),
        (RSA_KEY, [Capability(ID_RSAES_OAEP, b"\x05\x00")], "RSAES-OAEP"),
        (ec.generate_private_key(ec.SECP256R1()), [Capability(ID_RSAES_OAEP)], "EC recipient"),
        (
            ec.generate_private_key(ec.SECP256R1()),
            # A 3DES key wrap (RFC 3217) named in the ECDH capability's parameters.
            [
                Capability(
                    ECDH_SHA256,
                    bytes(encoder.encode(algorithm_identifier("1.2.840.113549.1.9.16.3.6"))),
                )
            ],
            "not supported",
        ),
    ],
)
def test_unusable_capabilities(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, caps: list[Capability], reason: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        envelope_to_certificate(b"secret", SIGNED, self_signed(key), caps)
    assert caught.value.status == 400 and reason in caught.value.detail


def test_ecdh_wrap_from_the_capability() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    wrap = Capability(ECDH_SHA256, bytes(encoder.encode(algorithm_identifier(AES_WRAP[32]))))
    der = envelope_to_certificate(b"secret", SIGNED, self_signed(key), [wrap])
    assert open_envelope(der, private_key=key) == (SIGNED, b"secret")
    with pytest.raises(ValueError):
        open_envelope(der, private_key=ec.generate_private_key(ec.SECP384R1()))


def test_kek_wrap_must_match_the_kek_size() -> None:
    kek = os.urandom(24)
    with pytest.raises(BadRequest) as caught:
        envelope_to_kek(b"secret", SIGNED, kek, b"id", capability_list([AES_WRAP[32]]))
    assert AES_WRAP[24] in caught.value.detail
    der = envelope_to_kek(b"secret", SIGNED, kek, b"id", capability_list([AES_WRAP[24]]))
    assert open_envelope(der, kek=kek, kek_id=b"id") == (SIGNED, b"secret")
    with pytest.raises(ValueError):
        open_envelope(der, kek=kek, kek_id=b"other")


def test_content_cipher_is_the_first_listed() -> None:
    assert content_key_length(capability_list([AES_WRAP[32], AES_CBC[16], AES_CBC[32]])) == 16
    assert content_key_length(capability_list([AES_WRAP[32]])) == 32


def test_key_package_signature() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    anchor = self_signed(signer)
    pkcs8 = signer.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    package = encode_key_package(pkcs8)
    signed = sign_key_package(package, signer, [anchor])
    assert verify_key_package(signed, [anchor])[0] == package
    assert decode_key_package(package) == pkcs8
    with pytest.raises(ValueError, match="EST CA"):
        verify_key_package(signed, [self_signed(ec.generate_private_key(ec.SECP256R1()))])
    scalar = pkcs8[36:44]  # inside the private key, which only the package holds
    assert signed.count(scalar) == 1
    tampered = signed.replace(scalar, bytes(8))
    with pytest.raises(ValueError, match="digest"):
        verify_key_package(tampered, [anchor])
    rsa_anchor = self_signed(RSA_KEY)
    rsa_signed = sign_key_package(package, RSA_KEY, [rsa_anchor])
    assert verify_key_package(rsa_signed, [rsa_anchor])[0] == package


def test_kek_store(tmp_path: Path) -> None:
    store = KekStore(tmp_path / "keks.json")
    assert store.all() == [] and store.lookup("", b"a") is None
    key = os.urandom(16)
    assert store.add("", "a", key) is False
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.lookup("", b"a") == key
    assert store.lookup("other", b"a") is None
    assert store.lookup("", b"\xff") is None
    assert key.hex() not in repr(store.all())
    with pytest.raises(ValueError, match="--replace"):
        store.add("", "a", os.urandom(16))
    assert store.add("", "a", os.urandom(32), replace=True) is True
    assert store.remove("", "a") and not store.remove("", "a")
    store.path.write_text("{not json")
    with pytest.raises(ValueError, match="not a KEK store"):
        store.all()


@pytest.mark.parametrize(
    ("text", "reason"),
    [(b"00" * 15, "not 120"), (b"zz" * 16, "hex"), (b"", "not 0"), (b"0" * 33, "hex")],
)
def test_parse_kek_refuses(text: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_kek(text)


def test_parse_kek_accepts_whitespace_and_checks_ids() -> None:
    assert parse_kek(b"00" * 8 + b"\n " + b"11" * 8 + b"\n") == bytes(8) + b"\x11" * 8
    for bad in ("", "a b", "x" * 65, "ümlaut"):
        with pytest.raises(ValueError):
            check_kek_id(bad)
