"""Shared pieces for the encrypted /serverkeygen tests: device certificates, requests, parts."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from est_harness import Reply, RunningServer, basic, build_request, https, write_credentials
from python_est import wire
from python_est.wire.envelope import AES_CBC, AES_WRAP, ECDH_SCHEMES, ID_RSAES_OAEP
from python_est.wire.keyrequest import (
    Capability,
    KeyProtection,
    capability_list,
    with_key_protection,
)

EST = "/.well-known/est"
PASSWORDS = {"alice": "alice password", "bob": "bob password"}
LABELS = "[label:kari]\nkey_usage = digital_signature, key_agreement\n[label:other]\n"
DeviceKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
RSA_CAPS = capability_list([ID_RSAES_OAEP, AES_CBC[16]])
EC_CAPS = capability_list([next(iter(ECDH_SCHEMES)), AES_CBC[16]])
SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"


def prefix(label: str) -> str:
    return f"{EST}/{label}/" if label else f"{EST}/"


def new_device_key(kind: str) -> DeviceKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def request_csr(
    user: str, protection: KeyProtection | None = None
) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    return csr if protection is None else with_key_protection(csr, key, protection)


def post(
    server: RunningServer,
    operation: str,
    csr: x509.CertificateSigningRequest,
    *,
    user: str = "alice",
    label: str = "",
    client_cert: tuple[Path, Path] | None = None,
) -> Reply:
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(user, PASSWORDS[user])}
    body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
    raw = build_request("POST", prefix(label) + operation, body, headers, server.port)
    return https(server.port, raw, cafile=server.ca_file, client_cert=client_cert)


def enroll_device(
    server: RunningServer, directory: Path, user: str, kind: str, label: str = ""
) -> tuple[x509.Certificate, DeviceKey, tuple[Path, Path]]:
    """A device certificate for `user` on `label` (by Basic), written as `user-kind`.pem/.key."""
    key = new_device_key(kind)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    reply = post(server, "simpleenroll", csr, user=user, label=label)
    assert reply.status == 200, reply.body
    [cert] = wire.decode_certs_only(reply.body)
    return cert, key, write_credentials(directory, f"{user}-{kind}-{label}", cert, key)


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def to_cert(cert: x509.Certificate, caps: tuple[Capability, ...] | None = None) -> KeyProtection:
    public = cert.public_key()
    default = RSA_CAPS if isinstance(public, rsa.RSAPublicKey) else EC_CAPS
    return KeyProtection(None, ski(cert), default if caps is None else caps)


def to_kek(kek_id: str, bits: int = 256) -> KeyProtection:
    return KeyProtection(kek_id.encode(), None, capability_list([AES_WRAP[bits // 8]]))


def parts(reply: Reply) -> tuple[str, bytes, x509.Certificate]:
    """The §4.4.2 parts: the key part's Content-Type and DER, and the certificate."""
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    (key_headers, key_b64), (cert_headers, cert_b64) = wire.parse_multipart(
        reply.headers["Content-Type"], reply.body
    )
    assert key_headers["content-transfer-encoding"] == "base64"
    assert cert_headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    [cert] = wire.decode_certs_only(cert_b64)
    return key_headers["content-type"], base64.b64decode(key_b64), cert


def spki(public: object) -> bytes:
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
