"""CMS EnvelopedData for server-generated keys (RFC 5652 §6, RFC 7030 §4.4.2).

Three recipient kinds, each with algorithms taken from the client's SMIMECapabilities:
- an RSA certificate: KeyTransRecipientInfo with RSAES-OAEP (RFC 3560; the issue rules out
  PKCS#1 v1.5, which is open to padding-oracle attacks);
- an EC certificate: KeyAgreeRecipientInfo, ephemeral-static ECDH with the X9.63 KDF and AES key
  wrap (RFC 5753 §3.1);
- a key-encryption key: KEKRecipientInfo with AES key wrap (RFC 3394, RFC 3565 §2.3.2).
The content is encrypted with AES-CBC (RFC 3565). `open_envelope` is the client's side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ
from pyasn1_modules import rfc3565, rfc4055, rfc5280, rfc5652, rfc5753

from python_est.errors import BadRequest
from python_est.wire.keypackage import (
    algorithm_identifier,
    content_info,
    content_of,
    decode_der,
)
from python_est.wire.keyrequest import Capability

ID_ENVELOPED_DATA = str(rfc5652.id_envelopedData)
ID_RSAES_OAEP = str(rfc4055.id_RSAES_OAEP)
_ID_MGF1 = str(rfc4055.id_mgf1)
_ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
AES_CBC = {
    16: str(rfc3565.id_aes128_CBC),
    24: str(rfc3565.id_aes192_CBC),
    32: str(rfc3565.id_aes256_CBC),
}
AES_WRAP = {
    16: str(rfc3565.id_aes128_wrap),
    24: str(rfc3565.id_aes192_wrap),
    32: str(rfc3565.id_aes256_wrap),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    str(rfc4055.id_sha256): hashes.SHA256,
    str(rfc4055.id_sha384): hashes.SHA384,
    str(rfc4055.id_sha512): hashes.SHA512,
}
_HASH_OIDS = {cls.name: oid for oid, cls in _HASHES.items()}
# RFC 5753 §7.1.4 dhSinglePass-stdDH-sha*kdf-scheme (SEC 1); the SHA-1 and SHA-224 KDFs are
# left out on purpose.
ECDH_SCHEMES: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.132.1.11.1": hashes.SHA256,
    "1.3.132.1.11.2": hashes.SHA384,
    "1.3.132.1.11.3": hashes.SHA512,
}
_NO_CAPABILITY = "SMIMECapabilities lists no algorithm the server can use for"
_NO_AGREEMENT = "the recipient certificate's key can neither transport nor agree keys"


def envelope_to_certificate(
    content: bytes,
    content_type: str,
    recipient: x509.Certificate,
    capabilities: Sequence[Capability],
) -> bytes:
    """Encrypt `content` to the key of `recipient` (a ContentInfo of EnvelopedData).

    The recipient is named by its subjectKeyIdentifier, or by issuer and serial number when it
    has none (RFC 7030 §4.4.2 allows either).

    Raises:
        BadRequest: the capabilities offer nothing usable for the recipient's key type.
    """
    cek_length = content_key_length(capabilities)
    cek = os.urandom(cek_length)
    public = recipient.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        info = _ktri(cek, recipient, public, capabilities)
        version = 0 if info["ktri"]["version"] == 0 else 2
    elif isinstance(public, ec.EllipticCurvePublicKey):
        info = _kari(cek, recipient, public, capabilities)
        version = 2  # RFC 5652 §6.1: a RecipientInfo of version other than 0
    else:
        raise BadRequest(_NO_AGREEMENT)
    return _enveloped(content, content_type, cek, info, version)


def envelope_to_kek(
    content: bytes,
    content_type: str,
    kek: bytes,
    kek_id: bytes,
    capabilities: Sequence[Capability],
) -> bytes:
    """Encrypt `content` under the key-encryption key `kek` named `kek_id` (RFC 7030 §4.4.1.1).

    Raises:
        BadRequest: the capabilities do not list the AES key wrap of the KEK's size.
    """
    wrap = check_kek(kek, capabilities)
    cek = os.urandom(content_key_length(capabilities))
    info = rfc5652.RecipientInfo()
    kekri = info["kekri"]
    kekri["version"] = 4  # RFC 5652 §6.2.3
    kekri["kekid"]["keyIdentifier"] = kek_id
    kekri["keyEncryptionAlgorithm"] = algorithm_identifier(wrap)
    kekri["encryptedKey"] = keywrap.aes_key_wrap(kek, cek)
    return _enveloped(content, content_type, cek, info, 2)


def check_kek(kek: bytes, capabilities: Sequence[Capability]) -> str:
    """The AES key wrap for `kek`, which the capabilities must list (RFC 7030 §4.4.2).

    Raises:
        BadRequest: they do not.
    """
    wrap = AES_WRAP[len(kek)]
    if wrap not in {c.oid for c in capabilities}:
        raise BadRequest(f"{_NO_CAPABILITY} this key-encryption key (list {wrap}, AES key wrap)")
    return wrap


def check_recipient(public: object, capabilities: Sequence[Capability]) -> None:
    """Check that `envelope_to_certificate` can encrypt to `public` with these capabilities.

    Raises:
        BadRequest: the key type cannot receive keys, or nothing usable is listed for it.
    """
    if isinstance(public, rsa.RSAPublicKey):
        _oaep_choice(capabilities)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        _ecdh_choice(capabilities, public.curve.key_size)
    else:
        raise BadRequest(_NO_AGREEMENT)


def content_key_length(capabilities: Sequence[Capability]) -> int:
    """The AES-CBC key length: the client's first listed, else 32 (AES-256, RFC 8551 §2.7)."""
    by_oid = {oid: length for length, oid in AES_CBC.items()}
    for capability in capabilities:
        if capability.oid in by_oid:
            return by_oid[capability.oid]
    return 32


def _ktri(
    cek: bytes, cert: x509.Certificate, public: rsa.RSAPublicKey, caps: Sequence[Capability]
) -> rfc5652.RecipientInfo:
    hash_cls = _oaep_choice(caps)
    hash_oid = _HASH_OIDS[hash_cls.name]
    params = rfc4055.RSAES_OAEP_params()
    params["hashFunc"]["algorithm"] = univ.ObjectIdentifier(hash_oid)
    params["maskGenFunc"]["algorithm"] = univ.ObjectIdentifier(_ID_MGF1)
    params["maskGenFunc"]["parameters"] = der_encoder.encode(algorithm_identifier(hash_oid))
    info = rfc5652.RecipientInfo()
    ktri = info["ktri"]
    ski = _subject_key_id(cert)
    if ski is None:
        ktri["version"] = 0
        _issuer_and_serial(ktri["rid"]["issuerAndSerialNumber"], cert)
    else:
        ktri["version"] = 2
        ktri["rid"]["subjectKeyIdentifier"] = ski
    ktri["keyEncryptionAlgorithm"] = algorithm_identifier(ID_RSAES_OAEP, params)
    ktri["encryptedKey"] = public.encrypt(cek, _oaep(hash_cls))
    return info


def _oaep_choice(caps: Sequence[Capability]) -> type[hashes.HashAlgorithm]:
    for capability in caps:
        if capability.oid == ID_RSAES_OAEP:
            hash_cls = _oaep_hash(capability.parameters)
            if hash_cls is not None:
                return hash_cls
    raise BadRequest(
        f"{_NO_CAPABILITY} an RSA recipient (list {ID_RSAES_OAEP}, RSAES-OAEP with SHA-256 "
        "or stronger)"
    )


def _oaep_hash(parameters: bytes | None) -> type[hashes.HashAlgorithm] | None:
    # Absent parameters: the client takes OAEP as such, and the ktri states the hash we pick.
    if parameters is None:
        return hashes.SHA256
    try:
        params = decode_der(parameters, rfc4055.RSAES_OAEP_params())
    except ValueError:
        return None
    if not params["hashFunc"].isValue:
        return None  # RFC 4055 §4.1: the default is SHA-1, which we do not offer
    return _HASHES.get(str(params["hashFunc"]["algorithm"]))


def _oaep(hash_cls: type[hashes.HashAlgorithm]) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hash_cls()), algorithm=hash_cls(), label=None)


def _kari(
    cek: bytes,
    cert: x509.Certificate,
    public: ec.EllipticCurvePublicKey,
    caps: Sequence[Capability],
) -> rfc5652.RecipientInfo:
    scheme, wrap = _ecdh_choice(caps, public.curve.key_size)
    ephemeral = ec.generate_private_key(public.curve)
    kek = _ecdh_kek(ephemeral, public, scheme, wrap, None)
    info = rfc5652.RecipientInfo()
    kari = info["kari"]
    kari["version"] = 3  # RFC 5652 §6.2.2
    originator = kari["originator"]["originatorKey"]
    # RFC 5753 §3.1.1: the ephemeral public key, id-ecPublicKey, the point uncompressed.
    originator["algorithm"] = algorithm_identifier(_ID_EC_PUBLIC_KEY)
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    originator["publicKey"] = univ.BitString.fromOctetString(point)
    wrap_alg = algorithm_identifier(wrap)
    kari["keyEncryptionAlgorithm"] = algorithm_identifier(scheme, wrap_alg)
    encrypted = rfc5652.RecipientEncryptedKey()
    ski = _subject_key_id(cert)
    if ski is None:
        _issuer_and_serial(encrypted["rid"]["issuerAndSerialNumber"], cert)
    else:
        encrypted["rid"]["rKeyId"]["subjectKeyIdentifier"] = ski
    encrypted["encryptedKey"] = keywrap.aes_key_wrap(kek, cek)
    kari["recipientEncryptedKeys"].append(encrypted)
    return info


def _ecdh_choice(caps: Sequence[Capability], curve_bits: int) -> tuple[str, str]:
    scheme = next((c for c in caps if c.oid in ECDH_SCHEMES), None)
    if scheme is None:
        raise BadRequest(
            f"{_NO_CAPABILITY} an EC recipient (list dhSinglePass-stdDH-sha256kdf-scheme, "
            "1.3.132.1.11.1)"
        )
    return scheme.oid, _ecdh_wrap(scheme.parameters, curve_bits)


def _ecdh_wrap(parameters: bytes | None, curve_bits: int) -> str:
    # RFC 5753 §7.2: the capability's parameters name the key wrap; absent, the wrap matches the
    # curve's strength (AES-128 up to P-256, AES-256 above).
    if parameters is None:
        return AES_WRAP[16 if curve_bits <= 256 else 32]
    try:
        wrap = str(decode_der(parameters, rfc5280.AlgorithmIdentifier())["algorithm"])
    except ValueError:
        raise BadRequest("SMIMECapabilities: malformed key wrap parameters") from None
    if wrap not in AES_WRAP.values():
        raise BadRequest(f"SMIMECapabilities: key wrap {wrap} is not supported (AES key wrap)")
    return wrap


def _ecdh_kek(
    private: ec.EllipticCurvePrivateKey,
    public: ec.EllipticCurvePublicKey,
    scheme: str,
    wrap: str,
    ukm: bytes | None,
) -> bytes:
    # RFC 5753 §3.1.1 and §7.2: KEK = X9.63-KDF(Z, ECC-CMS-SharedInfo), keyInfo being the
    # wrap algorithm (parameters absent for AES) and suppPubInfo the KEK length in bits.
    length = {oid: size for size, oid in AES_WRAP.items()}[wrap]
    shared = rfc5753.ECC_CMS_SharedInfo()
    shared["keyInfo"] = algorithm_identifier(wrap)
    if ukm is not None:
        shared["entityUInfo"] = ukm
    shared["suppPubInfo"] = (length * 8).to_bytes(4, "big")
    kdf = X963KDF(ECDH_SCHEMES[scheme](), length, der_encoder.encode(shared))
    return kdf.derive(private.exchange(ec.ECDH(), public))


def _enveloped(
    content: bytes, content_type: str, cek: bytes, info: rfc5652.RecipientInfo, version: int
) -> bytes:
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    enveloped = rfc5652.EnvelopedData()
    enveloped["version"] = version
    enveloped["recipientInfos"].append(info)
    encrypted = enveloped["encryptedContentInfo"]
    encrypted["contentType"] = univ.ObjectIdentifier(content_type)
    encrypted["contentEncryptionAlgorithm"] = algorithm_identifier(
        AES_CBC[len(cek)], univ.OctetString(iv)
    )
    encrypted["encryptedContent"] = encryptor.update(padded) + encryptor.finalize()
    return content_info(ID_ENVELOPED_DATA, bytes(der_encoder.encode(enveloped)))


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _issuer_and_serial(target: rfc5652.IssuerAndSerialNumber, cert: x509.Certificate) -> None:
    target["issuer"] = decode_der(cert.issuer.public_bytes(), rfc5280.Name())
    target["serialNumber"] = cert.serial_number


def open_envelope(
    der: bytes,
    *,
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    kek: bytes | None = None,
    kek_id: bytes | None = None,
) -> tuple[str, bytes]:
    """Decrypt an EnvelopedData ContentInfo (the client side); return (content type, content).

    Raises:
        ValueError: malformed, or no recipient info opens with the key given.
    """
    enveloped = decode_der(content_of(der, ID_ENVELOPED_DATA), rfc5652.EnvelopedData())
    cek = None
    for info in enveloped["recipientInfos"]:
        cek = _open_recipient(info, private_key, kek, kek_id)
        if cek is not None:
            break
    if cek is None:
        raise ValueError("no recipient of the EnvelopedData opens with the key given")
    encrypted = enveloped["encryptedContentInfo"]
    algorithm = encrypted["contentEncryptionAlgorithm"]
    if str(algorithm["algorithm"]) != AES_CBC.get(len(cek)):
        raise ValueError("unsupported content encryption algorithm")
    iv = bytes(decode_der(bytes(algorithm["parameters"]), univ.OctetString()))
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    padded = decryptor.update(bytes(encrypted["encryptedContent"])) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return str(encrypted["contentType"]), unpadder.update(padded) + unpadder.finalize()


def _open_recipient(
    info: rfc5652.RecipientInfo,
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None,
    kek: bytes | None,
    kek_id: bytes | None,
) -> bytes | None:
    kind = info.getName()
    try:
        if kind == "ktri" and isinstance(private_key, rsa.RSAPrivateKey):
            ktri = info["ktri"]
            params = decode_der(
                bytes(ktri["keyEncryptionAlgorithm"]["parameters"]), rfc4055.RSAES_OAEP_params()
            )
            hash_cls = _HASHES[str(params["hashFunc"]["algorithm"])]
            return private_key.decrypt(bytes(ktri["encryptedKey"]), _oaep(hash_cls))
        if kind == "kari" and isinstance(private_key, ec.EllipticCurvePrivateKey):
            kari = info["kari"]
            point = kari["originator"]["originatorKey"]["publicKey"].asOctets()
            ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(private_key.curve, point)
            algorithm = kari["keyEncryptionAlgorithm"]
            wrap = str(
                decode_der(bytes(algorithm["parameters"]), rfc5280.AlgorithmIdentifier())[
                    "algorithm"
                ]
            )
            ukm = bytes(kari["ukm"]) if kari["ukm"].isValue else None
            kek_ = _ecdh_kek(private_key, ephemeral, str(algorithm["algorithm"]), wrap, ukm)
            encrypted = kari["recipientEncryptedKeys"][0]
            return keywrap.aes_key_unwrap(kek_, bytes(encrypted["encryptedKey"]))
        if kind == "kekri" and kek is not None:
            kekri = info["kekri"]
            if bytes(kekri["kekid"]["keyIdentifier"]) == kek_id:
                return keywrap.aes_key_unwrap(kek, bytes(kekri["encryptedKey"]))
    except (ValueError, KeyError, keywrap.InvalidUnwrap):
        return None
    return None
