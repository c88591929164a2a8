"""PKCS#10 requests in, certs-only CMS out (RFC 7030 §4.1.3, §4.2), and challengePassword."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, namedtype, univ

from python_est.errors import InvalidCsr, MalformedBody
from python_est.oids import CHALLENGE_PASSWORD, ID_SIGNED_DATA
from python_est.wire.der import (
    TAG_CONTEXT_0,
    TAG_CONTEXT_1,
    TAG_INTEGER,
    TAG_OID,
    TAG_SEQUENCE,
    TAG_SET,
    Tlv,
    check_der_tree,
    children,
    decode_base64_der,
    encode_base64,
    read_tlv,
)

# Content octets of id-signedData; without its last arc it is the CMS content-type arc
# 1.2.840.113549.1.7, which is enough to recognise any CMS body.
_SIGNED_DATA_OID = der_encoder.encode(univ.ObjectIdentifier(ID_SIGNED_DATA.dotted_string))[2:]
_CMS_ARC = _SIGNED_DATA_OID[:-1]
_CHALLENGE_OID_CONTENT = der_encoder.encode(
    univ.ObjectIdentifier(CHALLENGE_PASSWORD.dotted_string)
)[2:]
_END_OF_CONTENTS = 0x00
# RFC 2985 §5.4.1: ub-challengePassword.
_MAX_CHALLENGE = 255


# DirectoryString (RFC 2985 §5.4.1) plus IA5String, which some clients send.
_PASSWORD_SPEC = univ.Choice(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType("printableString", char.PrintableString()),
        namedtype.NamedType("utf8String", char.UTF8String()),
        namedtype.NamedType("ia5String", char.IA5String()),
        namedtype.NamedType("bmpString", char.BMPString()),
        namedtype.NamedType("teletexString", char.TeletexString()),
        namedtype.NamedType("universalString", char.UniversalString()),
    )
)
# The primitive forms of those types, by identifier octet, and the codec pyasn1 decodes each
# with; anything else (a constructed string, another type) is still judged by pyasn1.
_STRING_CODECS = {
    0x13: char.PrintableString.encoding,
    0x0C: char.UTF8String.encoding,
    0x16: char.IA5String.encoding,
    0x1E: char.BMPString.encoding,
    0x14: char.TeletexString.encoding,
    0x1C: char.UniversalString.encoding,
}


def decode_csr(body: bytes) -> x509.CertificateSigningRequest:
    """Parse a /simpleenroll-style body: base64 of one DER PKCS#10 request (RFC 7030 §4.2.1).

    The signature is not checked here: the CA verifies it, and /serverkeygen must ignore it
    (RFC 7030 §4.4.1).

    Raises:
        MalformedBody: the body is not base64 of exactly one DER object.
        InvalidCsr: the DER object is not a PKCS#10 request.
    """
    der = decode_base64_der(body, "PKCS#10 request")
    try:
        return x509.load_der_x509_csr(der)
    except (ValueError, x509.InvalidVersion):
        pass
    raise InvalidCsr(_not_a_csr_reason(der))


def _not_a_csr_reason(der: bytes) -> str:
    """Say what the client sent instead of a CSR, when that is easy to tell."""
    try:
        _load_certificate(der)
    except ValueError:
        pass
    else:
        return "body is an X.509 certificate, not a PKCS#10 request"
    try:
        first = children(der, read_tlv(der))[0]
        if first.tag == TAG_OID and first.content(der).startswith(_CMS_ARC):
            return "body is a CMS message, not a PKCS#10 request"
    except (ValueError, IndexError):
        pass
    return "body is not a valid PKCS#10 request"


def encode_certs_only(certs: Sequence[x509.Certificate]) -> bytes:
    """A certs-only CMC Simple PKI Response (RFC 5272 §4.1), base64 in 64-column lines.

    Args:
        certs: at least one certificate.

    Returns:
        The response body for /cacerts, /simpleenroll and /simplereenroll.
    """
    if not certs:
        raise ValueError("a certs-only response needs at least one certificate")
    # Lines, as in RFC 7030's examples: OpenSSL's base64 BIO (libest) silently mangles one long
    # line. Clients that need one line get it from `one_line_base64` (strongSwan).
    return encode_base64(pkcs7.serialize_certificates(list(certs), Encoding.DER))


def decode_certs_only(body: bytes) -> list[x509.Certificate]:
    """Parse a certs-only response body into its certificates, in wire order.

    Accepts `crls [1]` absent or present, and a certificate SET that is not DER-sorted (the
    RFC 7030 Appendix A.1 example is not), which `cryptography`'s PKCS#7 loader only accepts
    with a warning.

    Raises:
        MalformedBody: not base64 DER, not a SignedData, or holding no X.509 certificate.
    """
    der = decode_base64_der(body, "certs-only response")
    try:
        cert_tlvs = _certificate_elements(der)
    except (ValueError, IndexError):
        raise MalformedBody("certs-only response: not a CMS SignedData") from None
    certs = []
    for index, tlv in enumerate(cert_tlvs, start=1):
        try:
            certs.append(_load_certificate(tlv.raw(der)))
        except ValueError:
            raise MalformedBody(f"certs-only response: certificate {index} is invalid") from None
    if not certs:
        raise MalformedBody("certs-only response: no certificates")
    return certs


def _load_certificate(der: bytes) -> x509.Certificate:
    """Load one DER certificate; every refusal is a ValueError.

    A serial number that is not positive is refused up front: cryptography would load it with a
    deprecation warning (an error under `-W error`) and plans to refuse it outright.
    """
    try:
        tbs = children(der, read_tlv(der))[0]
        fields = children(der, tbs)
        serial = fields[1] if fields[0].tag == TAG_CONTEXT_0 else fields[0]
    except IndexError:
        raise ValueError("not a certificate") from None
    value = serial.content(der)
    if serial.tag != TAG_INTEGER or not value or value[0] & 0x80 or not any(value):
        raise ValueError("certificate serial number is not a positive INTEGER")
    try:
        return x509.load_der_x509_certificate(der)
    except x509.InvalidVersion:
        raise ValueError("unsupported certificate version") from None


def _certificate_elements(der: bytes) -> list[Tlv]:
    """Walk ContentInfo → SignedData (RFC 5652 §3, §5.1) to the X.509 members of `certificates`."""
    content_info = read_tlv(der)
    content_type, explicit = _expect(der, content_info, (TAG_OID, TAG_CONTEXT_0))
    if content_type.content(der) != _SIGNED_DATA_OID:
        raise ValueError("not signedData")
    (signed_data,) = _expect(der, explicit, (TAG_SEQUENCE,))
    fields = children(der, signed_data)
    if signed_data.tag != TAG_SEQUENCE or len(fields) < 4:
        raise ValueError("bad SignedData")
    version, digest_algorithms, encap, *optional, signer_infos = fields
    if (version.tag, digest_algorithms.tag, encap.tag, signer_infos.tag) != (
        TAG_INTEGER,
        TAG_SET,
        TAG_SEQUENCE,
        TAG_SET,
    ):
        raise ValueError("bad SignedData")
    tags = [tlv.tag for tlv in optional]
    if tags not in ([], [TAG_CONTEXT_0], [TAG_CONTEXT_1], [TAG_CONTEXT_0, TAG_CONTEXT_1]):
        raise ValueError("bad SignedData")
    if not tags or tags[0] != TAG_CONTEXT_0:
        return []
    # CertificateChoices: only the plain Certificate (a SEQUENCE) is X.509; skip the others.
    return [tlv for tlv in children(der, optional[0]) if tlv.tag == TAG_SEQUENCE]


def _expect(der: bytes, parent: Tlv, tags: tuple[int, ...]) -> list[Tlv]:
    found = children(der, parent)
    if tuple(tlv.tag for tlv in found) != tags:
        raise ValueError("unexpected structure")
    return found


def csr_challenge_password(csr: x509.CertificateSigningRequest) -> str | None:
    """The PKCS#9 challengePassword of a CSR (RFC 2985 §5.4.1), or None when absent.

    RFC 7030 §3.5 carries tls-unique here for linking identity and proof of possession.

    Raises:
        InvalidCsr: the attribute repeats, has other than one value, is not a string, or is
            longer than 255 characters.
    """
    found = _challenge_values(csr)
    if not found:
        return None
    if len(found) > 1:
        raise InvalidCsr("more than one challengePassword attribute")
    values = found[0]
    if len(values) != 1:
        raise InvalidCsr("challengePassword must have exactly one value")
    password = _decode_password(values[0])
    if len(password) > _MAX_CHALLENGE:
        raise InvalidCsr("challengePassword is longer than 255 characters")
    return password


def _challenge_values(csr: x509.CertificateSigningRequest) -> list[list[bytes]]:
    """The values (whole DER elements) of each challengePassword in `attributes [0]` of
    CertificationRequestInfo (RFC 2986 §4.1).

    `cryptography` has already refused a CSR whose attributes are not each a SEQUENCE of a
    valid OID and a DER-ordered SET, so the attributes are walked here with the TLV reader
    instead of decoding each one with pyasn1 (a third of a P-256 enrollment's CPU).
    """
    der = csr.public_bytes(Encoding.DER)
    try:
        info = children(der, read_tlv(der))[0]
        fields = children(der, info)
        # The field is mandatory but some encoders drop it when empty; treat that as empty.
        if len(fields) == 3:
            return []
        attributes = fields[3]
        if attributes.tag != TAG_CONTEXT_0:
            raise ValueError("no attributes field")
        found = []
        for tlv in children(der, attributes):
            check_der_tree(tlv.raw(der))
            oid, value_set = children(der, tlv)
            values = children(der, value_set)
            if any(value.tag == _END_OF_CONTENTS for value in values):
                # pyasn1, which used to decode these, read it as BER's end-of-contents marker
                # and refused the attribute; so do we.
                raise ValueError("end-of-contents inside an attribute")
            if oid.content(der) == _CHALLENGE_OID_CONTENT:
                found.append([value.raw(der) for value in values])
    except (ValueError, IndexError):
        raise InvalidCsr("malformed CSR attributes") from None
    return found


def _decode_password(raw: bytes) -> str:
    codec = _STRING_CODECS.get(raw[0])
    if codec is not None:
        # The common case, a primitive string, without pyasn1; the codecs are pyasn1's own.
        content = read_tlv(raw)
        try:
            return raw[content.content_start :].decode(codec)
        except UnicodeError:
            raise InvalidCsr("challengePassword is not a DirectoryString") from None
    try:
        choice, rest = der_decoder.decode(raw, asn1Spec=_PASSWORD_SPEC)
        if rest:
            raise InvalidCsr("challengePassword: trailing bytes")
        return str(choice.getComponent())
    except (PyAsn1Error, UnicodeError):
        raise InvalidCsr("challengePassword is not a DirectoryString") from None
