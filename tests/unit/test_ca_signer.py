"""`python_est.ca.signer`: certificates, CRLs and OCSP responses signed by a key cryptography
does not hold.

`MemoryTokenKey` plays the token: it signs with a key of its own that the CA code never sees,
returning what a PKCS#11 token returns once re-encoded (PKCS#1 v1.5, or DER ECDSA).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ

from python_est.ca import (
    CertificateAuthority,
    Revocation,
    build_crl,
    certificate_pem,
    sign_bytes,
    sign_ocsp_response,
    verify_signature,
)
from python_est.ca.rules import IssuerPrivateKey, IssuerPublicKey, SignatureHash, signature_hash
from python_est.ca.signer import _with_signature
from python_est.errors import CaError
from python_est.keys import KeyType, generate_private_key
from python_est.profile import IssuanceProfile

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


class MemoryTokenKey:
    """An `ExternalKey` whose private half stays inside this object."""

    def __init__(self, key: IssuerPrivateKey, public: IssuerPublicKey | None = None) -> None:
        self._key = key
        self._public = public or key.public_key()
        self.signed = 0
        self.closed = False

    @property
    def location(self) -> str:
        return "memory:test"

    def public_key(self) -> IssuerPublicKey:
        return self._public

    def sign(self, data: bytes, algorithm: SignatureHash) -> bytes:
        self.signed += 1
        return sign_bytes(self._key, data, algorithm)

    def close(self) -> None:
        self.closed = True


TYPES = [KeyType.RSA_2048, KeyType.RSA_3072, KeyType.EC_P256, KeyType.EC_P384]


@pytest.mark.parametrize("key_type", TYPES, ids=lambda t: t.value)
def test_a_token_ca_issues_certificates_and_crls_that_verify(key_type: KeyType) -> None:
    token = MemoryTokenKey(generate_private_key(key_type))
    ca = CertificateAuthority.create_root(
        common_name="Token CA", key_type=key_type, validity_days=30, key=token, now=NOW
    )
    ca.certificate.verify_directly_issued_by(ca.certificate)
    csr_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "device")]))
        .sign(csr_key, ca_hash(key_type))
    )
    cert = ca.issue(csr, IssuanceProfile(), now=NOW + timedelta(minutes=1))
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.signature_algorithm_oid == ca.certificate.signature_algorithm_oid
    crl = build_crl(
        ca, [Revocation(cert.serial_number, NOW)], crl_number=7, next_update_hours=1, now=NOW
    )
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert token.signed == 3


def ca_hash(key_type: KeyType) -> SignatureHash:
    return signature_hash(generate_private_key(key_type))


def test_a_token_that_signs_with_another_key_is_caught_before_anything_leaves() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    liar = MemoryTokenKey(ec.generate_private_key(ec.SECP256R1()), public)
    with pytest.raises(CaError) as caught:
        CertificateAuthority.create_root(
            common_name="Liar", key_type=KeyType.EC_P256, validity_days=1, key=liar
        )
    assert caught.value.status == 500
    assert "does not verify" in caught.value.detail


def test_a_token_ca_loads_only_with_its_own_certificates_key() -> None:
    key = generate_private_key(KeyType.EC_P256)
    made = CertificateAuthority.create_root(
        common_name="T", key_type=KeyType.EC_P256, validity_days=1, key=MemoryTokenKey(key)
    )
    pem = certificate_pem(made.certificate)
    loaded = CertificateAuthority.with_external_key(pem, MemoryTokenKey(key))
    assert loaded.certificate == made.certificate
    other = MemoryTokenKey(generate_private_key(KeyType.EC_P256))
    with pytest.raises(ValueError, match="memory:test is not the key of the CA certificate"):
        CertificateAuthority.with_external_key(pem, other)


def test_a_token_key_is_never_handed_out_as_a_private_key() -> None:
    token = MemoryTokenKey(generate_private_key(KeyType.EC_P256))
    ca = CertificateAuthority.create_root(
        common_name="T", key_type=KeyType.EC_P256, validity_days=1, key=token
    )
    assert ca.key is token
    with pytest.raises(CaError, match="stays on its token"):
        _ = ca.private_key
    ca.close()
    assert token.closed


@pytest.mark.parametrize("size", [0, 1, 126, 127, 128, 255, 256, 65535, 65536])
def test_the_signature_is_spliced_in_with_correct_der_lengths(size: int) -> None:
    tbs = encoder.encode(univ.Sequence().setComponentByPosition(0, univ.Integer(5)))
    algorithm = encoder.encode(univ.Sequence().setComponentByPosition(0, univ.Null("")))
    old = encoder.encode(univ.BitString(hexValue="ff"))
    signed = b"\x30" + _length(len(tbs + algorithm + old)) + tbs + algorithm + old
    new = bytes(i % 251 for i in range(size))
    decoded, rest = decoder.decode(_with_signature(signed, new))
    assert rest == b""
    assert encoder.encode(decoded[0]) == tbs
    assert encoder.encode(decoded[1]) == algorithm
    assert decoded[2].asOctets() == new


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def test_verify_signature_rejects_a_signature_over_other_bytes() -> None:
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())):
        algorithm = signature_hash(key)
        signature = sign_bytes(key, b"one", algorithm)
        assert verify_signature(key.public_key(), signature, b"one", algorithm)
        assert not verify_signature(key.public_key(), signature, b"two", algorithm)


def _ocsp_builder(ca: CertificateAuthority, cert: x509.Certificate) -> ocsp.OCSPResponseBuilder:
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=ca.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=NOW,
            next_update=NOW + timedelta(hours=1),
            revocation_time=NOW - timedelta(hours=1),
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .certificates([ca.certificate])
    )


@pytest.mark.parametrize("key_type", [KeyType.RSA_2048, KeyType.EC_P256, KeyType.EC_P384])
@pytest.mark.parametrize("encoding", list(ocsp.OCSPResponderEncoding), ids=lambda e: e.name)
def test_an_ocsp_response_from_a_token_key_reads_as_one_from_a_file_key(
    key_type: KeyType, encoding: ocsp.OCSPResponderEncoding
) -> None:
    private = generate_private_key(key_type)
    token = MemoryTokenKey(private)
    ca = CertificateAuthority.create_root(
        common_name="OCSP CA", key_type=key_type, validity_days=30, key=token, now=NOW
    )
    cert, _ = ca.issue_client_certificate(common_name="device", now=NOW)
    reference = sign_ocsp_response(_ocsp_builder(ca, cert), ca.certificate, encoding, private)
    signed = sign_ocsp_response(_ocsp_builder(ca, cert), ca.certificate, encoding, token)
    assert token.signed == 3  # the CA certificate, the client certificate, the response
    assert signed.responder_key_hash == reference.responder_key_hash
    assert signed.responder_name == reference.responder_name
    assert signed.certificates == [ca.certificate]
    assert signed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert signed.revocation_reason is x509.ReasonFlags.key_compromise
    assert signed.signature_algorithm_oid == reference.signature_algorithm_oid
    public = ca.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    algorithm = signature_hash(private)
    assert verify_signature(public, signed.signature, signed.tbs_response_bytes, algorithm)
    if encoding is ocsp.OCSPResponderEncoding.HASH:
        assert signed.responder_key_hash == (
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()).digest
        )


def test_an_ocsp_response_from_a_lying_token_is_refused() -> None:
    real = generate_private_key(KeyType.EC_P256)
    ca = CertificateAuthority.create_root(
        common_name="CA", key_type=KeyType.EC_P256, validity_days=30, key=real, now=NOW
    )
    cert, _ = ca.issue_client_certificate(common_name="device", now=NOW)
    liar = MemoryTokenKey(generate_private_key(KeyType.EC_P256), real.public_key())
    with pytest.raises(CaError, match="does not verify"):
        sign_ocsp_response(
            _ocsp_builder(ca, cert), ca.certificate, ocsp.OCSPResponderEncoding.HASH, liar
        )
