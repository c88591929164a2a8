"""Keys, CSRs, certificates and fingerprints on the client side, and their files.

Private keys are written atomically with mode 0600 (`python_est.fileio.atomic_write`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from python_est.ca import certificates_pem, load_pem_certificates, private_key_pem
from python_est.fileio import atomic_write
from python_est.keys import KeyType, generate_private_key

ClientKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Short spellings for the command line; the KeyType values work too.
KEY_TYPE_ALIASES = {"rsa": KeyType.RSA_2048, "ec": KeyType.EC_P256}


def parse_key_type(text: str) -> KeyType:
    """`rsa`, `ec`, or a KeyType value such as `rsa-3072` or `ec-p384`.

    Raises:
        ValueError: not a known key type.
    """
    if text in KEY_TYPE_ALIASES:
        return KEY_TYPE_ALIASES[text]
    return KeyType(text)


def new_key(key_type: KeyType) -> ClientKey:
    """A fresh private key."""
    return generate_private_key(key_type)


def build_csr(
    key: ClientKey,
    *,
    common_name: str | None = None,
    subject: x509.Name | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    san: x509.SubjectAlternativeName | None = None,
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request signed with `key` (SHA-256).

    Args:
        key: the key the certificate will hold.
        common_name: the subject CN (ignored when `subject` is given).
        subject: the whole subject (reenrollment copies it from the current certificate).
        dns_names: subjectAltName DNS names.
        ip_addresses: subjectAltName IP addresses.
        san: a whole subjectAltName extension (reenrollment); replaces the two above.

    Raises:
        ValueError: an empty or invalid name.
    """
    if subject is None:
        if not common_name:
            raise ValueError("a common name is required")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if san is None and (dns_names or ip_addresses):
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        san = x509.SubjectAlternativeName(names)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def renewal_csr(key: ClientKey, current: x509.Certificate) -> x509.CertificateSigningRequest:
    """A CSR with the Subject and subjectAltName of `current` (RFC 7030 §4.2.2)."""
    try:
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    return build_csr(key, subject=current.subject, san=san)


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """Read a CSR file, PEM or DER.

    Raises:
        ValueError: the file holds no PKCS#10 request.
        OSError: the file cannot be read.
    """
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_csr(data)
    return x509.load_der_x509_csr(data)


def load_private_key(path: Path) -> ClientKey:
    """Read an unencrypted PEM private key (RSA or EC).

    Raises:
        ValueError: unreadable, encrypted or of another algorithm.
        OSError: the file cannot be read.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:
        raise ValueError(f"{path.name}: encrypted keys are not supported") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path.name}: only RSA and EC keys are supported")
    return key


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Read every certificate of a PEM file (or one DER certificate).

    Raises:
        ValueError: no certificate in the file.
        OSError: the file cannot be read.
    """
    data = path.read_bytes()
    return load_pem_certificates(data) or [x509.load_der_x509_certificate(data)]


def write_private_key(path: Path, key: ClientKey) -> None:
    """Write `key` as unencrypted PKCS#8 PEM, atomically, mode 0600."""
    atomic_write(path, private_key_pem(key), mode=0o600)


def write_certificates(path: Path, certs: Sequence[x509.Certificate]) -> None:
    """Write certificates as PEM, atomically, mode 0644."""
    atomic_write(path, certificates_pem(certs), mode=0o644)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex (as `openssl x509 -fingerprint`)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def normalize_fingerprint(text: str) -> str:
    """Hex digits only, upper case: `ab:cd`, `AB CD` and `abcd` compare equal.

    Raises:
        ValueError: not 64 hex digits (a SHA-256 fingerprint).
    """
    digits = re.sub(r"[\s:]", "", text).upper()
    if not re.fullmatch(r"[0-9A-F]{64}", digits):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits (colons and spaces allowed)")
    return digits


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer (a root, as /cacerts returns it)."""
    return cert.subject == cert.issuer
