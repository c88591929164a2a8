"""The encryption request of a /serverkeygen CSR (RFC 7030 §4.4.1), read and written.

A CSR asks for an encrypted key with a DecryptKeyIdentifier (RFC 4108 §2.2.5: a symmetric key,
§4.4.1.1) or an AsymmetricDecryptKeyIdentifier (§4.4.1.2) attribute, plus SMIMECapabilities
(RFC 8551 §2.5.2) listing, in order of preference, the algorithms the client accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc2986, rfc5751

from python_est.errors import InvalidCsr
from python_est.oids import ASYMMETRIC_DECRYPT_KEY_IDENTIFIER, DECRYPT_KEY_IDENTIFIER

SMIME_CAPABILITIES = str(rfc5751.smimeCapabilities)
# A CSR's SMIMECapabilities list is short; a cap keeps a hostile one from costing time.
MAX_CAPABILITIES = 32
MAX_IDENTIFIER = 64
_IDENTIFIERS = {DECRYPT_KEY_IDENTIFIER, ASYMMETRIC_DECRYPT_KEY_IDENTIFIER}


@dataclass(frozen=True)
class Capability:
    """One SMIMECapability: an algorithm OID (dotted) and the DER of its parameters, if any."""

    oid: str
    parameters: bytes | None = None


@dataclass(frozen=True)
class KeyProtection:
    """What a /serverkeygen CSR asks for (RFC 7030 §4.4.1): exactly one identifier is set."""

    kek_id: bytes | None
    recipient_key_id: bytes | None
    capabilities: tuple[Capability, ...]

    def __post_init__(self) -> None:
        if (self.kek_id is None) == (self.recipient_key_id is None):
            raise ValueError("exactly one of kek_id and recipient_key_id")


def key_protection(csr: x509.CertificateSigningRequest) -> KeyProtection | None:
    """Read the encryption request of a /serverkeygen CSR; None when it asks for none.

    Raises:
        InvalidCsr: an attribute is malformed, repeated or has other than one value, or the CSR
            names both a symmetric and an asymmetric key.
    """
    try:
        present = {attribute.oid for attribute in csr.attributes}
    except ValueError:
        present = None  # pyasn1 below judges attributes cryptography cannot read
    if present is not None and not present & _IDENTIFIERS:
        return None  # the common plaintext request skips the pyasn1 decoding
    values = _attribute_values(csr)
    kek_id = values.get(DECRYPT_KEY_IDENTIFIER.dotted_string)
    recipient = values.get(ASYMMETRIC_DECRYPT_KEY_IDENTIFIER.dotted_string)
    if kek_id is None and recipient is None:
        return None
    if kek_id is not None and recipient is not None:
        raise InvalidCsr(
            "CSR names both a DecryptKeyIdentifier and an AsymmetricDecryptKeyIdentifier"
        )
    capabilities = values.get(SMIME_CAPABILITIES)
    return KeyProtection(
        kek_id=None if kek_id is None else _identifier(kek_id, "DecryptKeyIdentifier"),
        recipient_key_id=(
            None if recipient is None else _identifier(recipient, "AsymmetricDecryptKeyIdentifier")
        ),
        capabilities=() if capabilities is None else _capabilities(capabilities),
    )


def _attribute_values(csr: x509.CertificateSigningRequest) -> dict[str, univ.Any]:
    wanted = {
        DECRYPT_KEY_IDENTIFIER.dotted_string,
        ASYMMETRIC_DECRYPT_KEY_IDENTIFIER.dotted_string,
        SMIME_CAPABILITIES,
    }
    try:
        request, _ = der_decoder.decode(
            csr.public_bytes(Encoding.DER), asn1Spec=rfc2986.CertificationRequest()
        )
    except PyAsn1Error:
        raise InvalidCsr("malformed CSR attributes") from None
    found: dict[str, univ.Any] = {}
    for attribute in request["certificationRequestInfo"]["attributes"]:
        oid = str(attribute["type"])
        if oid not in wanted:
            continue
        if oid in found or len(attribute["values"]) != 1:
            # RFC 2986 §4.1 permits several values; these attributes are single-valued.
            raise InvalidCsr(f"CSR attribute {oid} must appear once, with one value")
        found[oid] = attribute["values"][0]
    return found


def _identifier(value: univ.Any, what: str) -> bytes:
    try:
        octets, rest = der_decoder.decode(bytes(value), asn1Spec=univ.OctetString())
    except PyAsn1Error:
        raise InvalidCsr(f"{what} is not an OCTET STRING") from None
    data = bytes(octets)
    if rest or not 1 <= len(data) <= MAX_IDENTIFIER:
        raise InvalidCsr(f"{what} must be 1 to {MAX_IDENTIFIER} octets")
    return data


def _capabilities(value: univ.Any) -> tuple[Capability, ...]:
    try:
        decoded, rest = der_decoder.decode(bytes(value), asn1Spec=rfc5751.SMIMECapabilities())
    except PyAsn1Error:
        raise InvalidCsr("SMIMECapabilities is malformed") from None
    if rest or len(decoded) > MAX_CAPABILITIES:
        raise InvalidCsr(f"SMIMECapabilities must be one list of at most {MAX_CAPABILITIES}")
    found = []
    for item in decoded:
        parameters = item["parameters"]
        found.append(
            Capability(
                str(item["capabilityID"]),
                bytes(parameters) if parameters.isValue else None,
            )
        )
    return tuple(found)


def with_key_protection(
    csr: x509.CertificateSigningRequest,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    protection: KeyProtection,
) -> x509.CertificateSigningRequest:
    """`csr` with the attributes asking for `protection`, signed again with `key` (the client).

    cryptography's builder writes only string-typed attributes, so the request info is
    rebuilt with pyasn1.
    """
    request, _ = der_decoder.decode(
        csr.public_bytes(Encoding.DER), asn1Spec=rfc2986.CertificationRequest()
    )
    info = request["certificationRequestInfo"]
    values: list[tuple[str, univ.Asn1Type]] = []
    if protection.kek_id is not None:
        values.append((DECRYPT_KEY_IDENTIFIER.dotted_string, univ.OctetString(protection.kek_id)))
    if protection.recipient_key_id is not None:
        values.append(
            (
                ASYMMETRIC_DECRYPT_KEY_IDENTIFIER.dotted_string,
                univ.OctetString(protection.recipient_key_id),
            )
        )
    capabilities = rfc5751.SMIMECapabilities()
    for item in protection.capabilities:
        capability = rfc5751.SMIMECapability()
        capability["capabilityID"] = univ.ObjectIdentifier(item.oid)
        if item.parameters is not None:
            capability["parameters"] = univ.Any(item.parameters)
        capabilities.append(capability)
    values.append((SMIME_CAPABILITIES, capabilities))
    for oid, value in values:
        attribute = rfc2986.Attribute()
        attribute["type"] = univ.ObjectIdentifier(oid)
        attribute["values"].append(univ.Any(der_encoder.encode(value)))
        info["attributes"].append(attribute)
    to_sign = der_encoder.encode(info)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
        algorithm = "1.2.840.113549.1.1.11"  # sha256WithRSAEncryption
    else:
        signature = key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
        algorithm = "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256
    request["signatureAlgorithm"] = rfc2986.AlgorithmIdentifier()
    request["signatureAlgorithm"]["algorithm"] = univ.ObjectIdentifier(algorithm)
    if isinstance(key, rsa.RSAPrivateKey):
        request["signatureAlgorithm"]["parameters"] = der_encoder.encode(univ.Null(""))
    request["signature"] = univ.BitString.fromOctetString(signature)
    return x509.load_der_x509_csr(der_encoder.encode(request))


def capability_list(oids: Sequence[str]) -> tuple[Capability, ...]:
    """Capabilities without parameters, in this order of preference."""
    return tuple(Capability(oid) for oid in oids)
