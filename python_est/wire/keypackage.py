"""The signed key package of an encrypted server-generated key, and small CMS helpers.

RFC 7030 §4.4.2 (and RFC 5958 §4): the key travels as an AsymmetricKeyPackage inside a
SignedData made by the key generator, and that SignedData inside an EnvelopedData
(`wire.envelope`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5280, rfc5652, rfc5958

from python_est.oids import (
    ECDSA_WITH_SHA256,
    ID_SIGNED_DATA,
    SHA256_WITH_RSA,
)

ID_CT_KP_AKEY_PACKAGE = str(rfc5958.id_ct_KP_aKeyPackage)
_ID_SHA256 = "2.16.840.1.101.3.4.2.1"
_ID_CONTENT_TYPE = str(rfc5652.id_contentType)
_ID_MESSAGE_DIGEST = str(rfc5652.id_messageDigest)
# Places DER (a certificate, a Name) where pyasn1 expects the decoded type.
_RAW = {"verifyConstraints": False, "matchTags": False, "matchConstraints": False}


def encode_key_package(pkcs8_der: bytes) -> bytes:
    """An AsymmetricKeyPackage (RFC 5958 §2) holding one key: PKCS#8 is its v1 OneAsymmetricKey."""
    package = univ.SequenceOf(componentType=univ.Any())
    package.append(univ.Any(pkcs8_der))
    return bytes(der_encoder.encode(package))


def decode_key_package(der: bytes) -> bytes:
    """The one key of an AsymmetricKeyPackage, as PKCS#8 DER.

    Raises:
        ValueError: not a package of exactly one key.
    """
    try:
        package, rest = der_decoder.decode(der, asn1Spec=rfc5958.AsymmetricKeyPackage())
    except PyAsn1Error:
        raise ValueError("not an AsymmetricKeyPackage") from None
    if rest or len(package) != 1:
        raise ValueError("the key package must hold exactly one key")
    return bytes(der_encoder.encode(package[0]))


SignerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def sign_key_package(
    package_der: bytes, signer: SignerKey, chain: Sequence[x509.Certificate]
) -> bytes:
    """A SignedData ContentInfo over `package_der` (RFC 5652 §5, RFC 7030 §4.4.2).

    The eContentType is id-ct-KP-aKeyPackage, so signed attributes carry it (§5.3); `chain`
    (signer first) travels in `certificates` so the client can verify against its EST CA.
    """
    info = rfc5652.SignerInfo()
    attributes = info["signedAttrs"]
    for oid, value in (
        (_ID_CONTENT_TYPE, univ.ObjectIdentifier(ID_CT_KP_AKEY_PACKAGE)),
        (_ID_MESSAGE_DIGEST, univ.OctetString(hashlib.sha256(package_der).digest())),
    ):
        attribute = rfc5652.Attribute()
        attribute["attrType"] = univ.ObjectIdentifier(oid)
        attribute["attrValues"].append(univ.Any(der_encoder.encode(value)))
        attributes.append(attribute)
    encoded = der_encoder.encode(attributes)
    # §5.4: the signature covers the attributes with an explicit SET OF tag, not the [0].
    to_sign = b"\x31" + encoded[1:]
    if isinstance(signer, rsa.RSAPrivateKey):
        signature = signer.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
        signature_alg = algorithm_identifier(SHA256_WITH_RSA.dotted_string, univ.Null(""))
    else:
        signature = signer.sign(to_sign, ec.ECDSA(hashes.SHA256()))
        signature_alg = algorithm_identifier(ECDSA_WITH_SHA256.dotted_string)
    leaf = chain[0]
    signed = rfc5652.SignedData()
    signed["version"] = 3  # §5.1: eContentType other than id-data
    signed["digestAlgorithms"].append(algorithm_identifier(_ID_SHA256))
    signed["encapContentInfo"]["eContentType"] = univ.ObjectIdentifier(ID_CT_KP_AKEY_PACKAGE)
    signed["encapContentInfo"]["eContent"] = package_der
    # Certificates and the issuer name go in as their DER: decoding them into pyasn1 values
    # only to encode them again costs milliseconds per response.
    for position, cert in enumerate(chain):
        signed["certificates"].setComponentByPosition(
            position, univ.Any(cert.public_bytes(Encoding.DER)), **_RAW
        )
    info["version"] = 1  # sid is issuerAndSerialNumber
    sid = info["sid"]["issuerAndSerialNumber"]
    sid.setComponentByName("issuer", univ.Any(leaf.issuer.public_bytes()), **_RAW)
    sid["serialNumber"] = leaf.serial_number
    info["digestAlgorithm"] = algorithm_identifier(_ID_SHA256)
    info["signatureAlgorithm"] = signature_alg
    info["signature"] = signature
    signed["signerInfos"].append(info)
    return content_info(ID_SIGNED_DATA.dotted_string, bytes(der_encoder.encode(signed)))


def verify_key_package(
    signed_der: bytes, trust: Sequence[x509.Certificate]
) -> tuple[bytes, x509.Certificate]:
    """Check a SignedData key package (the client side) and return (package DER, signer).

    The signer certificate must be in the SignedData and issued by a certificate of `trust`
    (the EST CA chain), and its signature must cover the package's digest.

    Raises:
        ValueError: any part is missing, malformed or does not verify.
    """
    signed = decode_der(content_of(signed_der, ID_SIGNED_DATA.dotted_string), rfc5652.SignedData())
    encap = signed["encapContentInfo"]
    if str(encap["eContentType"]) != ID_CT_KP_AKEY_PACKAGE or not encap["eContent"].isValue:
        raise ValueError("the SignedData does not hold a key package")
    package = bytes(encap["eContent"])
    if len(signed["signerInfos"]) != 1:
        raise ValueError("the key package must have exactly one signer")
    info = signed["signerInfos"][0]
    sid = info["sid"]["issuerAndSerialNumber"]
    signer = None
    for choice in signed["certificates"]:
        cert = x509.load_der_x509_certificate(der_encoder.encode(choice["certificate"]))
        issuer = der_encoder.encode(sid["issuer"])
        if cert.serial_number == int(sid["serialNumber"]) and cert.issuer.public_bytes() == issuer:
            signer = cert
    if signer is None:
        raise ValueError("the signer's certificate is not in the SignedData")
    if not any(_issued_by(signer, anchor) for anchor in trust):
        raise ValueError("the key package is not signed by a certificate of the EST CA")
    attrs = {str(a["attrType"]): bytes(a["attrValues"][0]) for a in info["signedAttrs"]}
    digest = decode_der(attrs.get(_ID_MESSAGE_DIGEST, b""), univ.OctetString())
    content_type = decode_der(attrs.get(_ID_CONTENT_TYPE, b""), univ.ObjectIdentifier())
    if bytes(digest) != hashlib.sha256(package).digest():
        raise ValueError("the key package digest does not match")
    if str(content_type) != ID_CT_KP_AKEY_PACKAGE:
        raise ValueError("the signed content type is not a key package")
    to_verify = b"\x31" + der_encoder.encode(info["signedAttrs"])[1:]
    public = signer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(bytes(info["signature"]), to_verify, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(bytes(info["signature"]), to_verify, ec.ECDSA(hashes.SHA256()))
        else:
            raise ValueError("unsupported signer key")
    except InvalidSignature:
        raise ValueError("the key package signature does not verify") from None
    return package, signer


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert == issuer:
        return True
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def content_info(content_type: str, content_der: bytes) -> bytes:
    """A CMS ContentInfo (RFC 5652 §3) around `content_der`."""
    info = rfc5652.ContentInfo()
    info["contentType"] = univ.ObjectIdentifier(content_type)
    info["content"] = univ.Any(content_der)
    return bytes(der_encoder.encode(info))


def content_of(der: bytes, content_type: str) -> bytes:
    """The content of a ContentInfo of `content_type` (ValueError otherwise)."""
    info = decode_der(der, rfc5652.ContentInfo())
    if str(info["contentType"]) != content_type:
        raise ValueError(f"expected CMS content type {content_type}")
    return bytes(info["content"])


def decode_der(der: bytes, spec: univ.Asn1Type) -> univ.Asn1Type:
    """Decode exactly one `spec` value.

    Raises:
        ValueError: malformed, or bytes follow it.
    """
    try:
        value, rest = der_decoder.decode(der, asn1Spec=spec)
    except PyAsn1Error:
        raise ValueError(f"malformed {type(spec).__name__}") from None
    if rest:
        raise ValueError(f"trailing bytes after {type(spec).__name__}")
    return value


def algorithm_identifier(
    oid: str, parameters: univ.Asn1Type | None = None
) -> rfc5280.AlgorithmIdentifier:
    """An AlgorithmIdentifier; `parameters` None leaves them absent."""
    algorithm = rfc5280.AlgorithmIdentifier()
    algorithm["algorithm"] = univ.ObjectIdentifier(oid)
    if parameters is not None:
        algorithm["parameters"] = der_encoder.encode(parameters)
    return algorithm
