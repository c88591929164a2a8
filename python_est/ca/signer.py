"""One way to sign for every CA key: a key in memory (cryptography) or a key on a token.

cryptography signs certificates and CRLs only with its own key objects. For a key it cannot
hold (a PKCS#11 token key, `ExternalKey`) the object is built and signed by cryptography with a
stand-in key of the same algorithm, so the to-be-signed bytes name the right signature
algorithm; then those bytes are signed by the real key and the DER is put back together around
the new signature (RFC 5280 §4.1: Certificate and CertificateList are both SEQUENCE {
tbs, signatureAlgorithm, signatureValue BIT STRING }). The result is checked against the CA's
public key before it leaves, so a token that signs with another key, or signs wrongly, is
caught here and not by a relying party.

`sign_bytes` is the single signing primitive: it takes the bytes to sign and the hash, and
returns the signature as X.509 carries it (RSA PKCS#1 v1.5, ECDSA as a DER Ecdsa-Sig-Value,
RFC 3279 §2.2.3). `sign_certificate`, `sign_crl` and `sign_ocsp_response` do the same for the
three things a CA signs, with either kind of key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from python_est.ca import der
from python_est.ca.rules import IssuerPrivateKey, IssuerPublicKey, SignatureHash, signature_hash
from python_est.errors import CaError

_DER = serialization.Encoding.DER


class ExternalKey(Protocol):
    """A CA private key held outside this process; it signs but is never exported."""

    @property
    def location(self) -> str:
        """Where the key is, for operators (no secret): e.g. the token and key label."""
        ...

    def public_key(self) -> IssuerPublicKey:
        """The key's public half."""
        ...

    def sign(self, data: bytes, algorithm: SignatureHash) -> bytes:
        """Sign `data` hashed with `algorithm`; an X.509 signatureValue (ECDSA as DER).

        Raises:
            CaError: the token refused or failed.
        """
        ...

    def close(self) -> None:
        """Release the token session (the key object is unusable afterwards)."""
        ...


CaKey = IssuerPrivateKey | ExternalKey


def sign_bytes(key: CaKey, data: bytes, algorithm: SignatureHash) -> bytes:
    """Sign `data` with the CA key: PKCS#1 v1.5 for RSA, ECDSA (DER r and s) for EC.

    Raises:
        CaError: the key cannot sign (a token error, or an unsupported algorithm).
    """
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), algorithm)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(algorithm))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CaError("the CA could not sign") from exc
    return key.sign(data, algorithm)


def verify_signature(
    public_key: IssuerPublicKey, signature: bytes, data: bytes, algorithm: SignatureHash
) -> bool:
    """True when `signature` (as `sign_bytes` returns it) is valid for `data`."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_certificate(builder: x509.CertificateBuilder, key: CaKey) -> x509.Certificate:
    """Sign a certificate with the CA key, on its token when it is an `ExternalKey`.

    Raises:
        CaError: the key cannot sign, or the token's signature does not verify.
    """
    algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return builder.sign(key, algorithm)
    draft = builder.sign(_stand_in(key.public_key()), algorithm)
    tbs = draft.tbs_certificate_bytes
    return _signed_on_token(key, algorithm, draft, tbs, x509.load_der_x509_certificate)


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, key: CaKey
) -> x509.CertificateRevocationList:
    """Sign a CRL with the CA key, on its token when it is an `ExternalKey`.

    Raises:
        CaError: the key cannot sign, or the token's signature does not verify.
    """
    algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return builder.sign(key, algorithm)
    draft = builder.sign(_stand_in(key.public_key()), algorithm)
    return _signed_on_token(key, algorithm, draft, draft.tbs_certlist_bytes, x509.load_der_x509_crl)


_Signed = TypeVar("_Signed", x509.Certificate, x509.CertificateRevocationList)


def _signed_on_token(
    key: ExternalKey,
    algorithm: SignatureHash,
    draft: _Signed,
    tbs: bytes,
    load: Callable[[bytes], _Signed],
) -> _Signed:
    """`draft` (signed by a stand-in) with `key`'s signature over `tbs` in its place, checked
    as it reads in the rebuilt DER before it is returned (module docstring)."""
    signed = load(_with_signature(draft.public_bytes(_DER), key.sign(tbs, algorithm)))
    _check(key, signed.signature, tbs, algorithm)
    return signed


def sign_ocsp_response(
    builder: ocsp.OCSPResponseBuilder,
    responder: x509.Certificate,
    encoding: ocsp.OCSPResponderEncoding,
    key: CaKey,
) -> ocsp.OCSPResponse:
    """Name the responder and sign a BasicOCSPResponse (RFC 6960 §4.2.1) with `key`.

    `builder` has its responses (and any `certificates`) but no responder ID yet. cryptography
    signs only with the private key of `responder`'s certificate, so for a token key the draft
    names a stand-in certificate of the same subject (byName: identical), the byKey hash is set
    to the real key's (§4.2.2.3: SHA-1 of the subjectPublicKey bits), and the token signs.

    Raises:
        CaError: the key cannot sign, or the token's signature does not verify.
    """
    algorithm = signature_hash(key)
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return builder.responder_id(encoding, responder).sign(key, algorithm)
    stand_in = _stand_in(key.public_key())
    named = (
        x509.CertificateBuilder()
        .subject_name(responder.subject)
        .issuer_name(responder.subject)
        .public_key(stand_in.public_key())
        .serial_number(1)
        .not_valid_before(responder.not_valid_before_utc)
        .not_valid_after(responder.not_valid_after_utc)
        .sign(stand_in, algorithm)
    )
    draft = builder.responder_id(encoding, named).sign(stand_in, algorithm)
    status, wrapped = der.children(draft.public_bytes(_DER))
    [response_bytes] = der.children(wrapped)
    response_type, octets = der.children(response_bytes)
    basic = der.contents(octets)
    tbs = draft.tbs_response_bytes
    if encoding is ocsp.OCSPResponderEncoding.HASH:
        tbs = _with_key_hash(tbs, x509.SubjectKeyIdentifier.from_public_key(key.public_key()))
    basic = _with_signature(basic, key.sign(tbs, algorithm), tbs)
    octets = der.tlv(der.OCTET_STRING, basic)
    wrapped = der.tlv(wrapped[0], der.tlv(der.SEQUENCE, response_type + octets))
    response = ocsp.load_der_ocsp_response(der.tlv(der.SEQUENCE, status + wrapped))
    _check(key, response.signature, response.tbs_response_bytes, algorithm)
    return response


def _with_key_hash(tbs: bytes, key_id: x509.SubjectKeyIdentifier) -> bytes:
    # ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID, ... } and
    # ResponderID byKey is [2] EXPLICIT KeyHash, an OCTET STRING (RFC 6960 §4.2.1).
    fields = der.children(tbs)
    position = 1 if fields[0][0] == 0xA0 else 0
    fields[position] = der.tlv(0xA2, der.tlv(der.OCTET_STRING, key_id.digest))
    return der.tlv(der.SEQUENCE, b"".join(fields))


def _check(key: ExternalKey, signature: bytes, tbs: bytes, algorithm: SignatureHash) -> None:
    if not verify_signature(key.public_key(), signature, tbs, algorithm):
        raise CaError("the CA token's signature does not verify with the CA public key")


@functools.cache
def _rsa_stand_in() -> rsa.RSAPrivateKey:
    # Its signature is thrown away; only the signatureAlgorithm it writes (which does not
    # depend on the modulus size) is kept, so the smallest acceptable size will do.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _ec_stand_in() -> ec.EllipticCurvePrivateKey:
    # ecdsa-with-SHAxxx names no curve (RFC 5758 §3.2): any curve writes the same identifier.
    return ec.generate_private_key(ec.SECP256R1())


def _stand_in(public_key: IssuerPublicKey) -> IssuerPrivateKey:
    if isinstance(public_key, rsa.RSAPublicKey):
        return _rsa_stand_in()
    return _ec_stand_in()


def _with_signature(signed_der: bytes, signature: bytes, tbs: bytes | None = None) -> bytes:
    """Replace the signatureValue (and optionally the tbs) of a DER SEQUENCE { tbs,
    algorithm, BIT STRING, ... }, keeping whatever follows (an OCSP response's certs)."""
    old_tbs, algorithm, _, *rest = der.children(signed_der)
    bit_string = der.tlv(der.BIT_STRING, b"\x00" + signature)  # no unused bits
    body = (tbs or old_tbs) + algorithm + bit_string + b"".join(rest)
    return der.tlv(der.SEQUENCE, body)
