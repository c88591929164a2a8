"""/serverkeygen (RFC 7030 §4.4) over real TLS: the multipart answer, key types, refusals, and
that the private key leaves the server only in the response."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from est_harness import Reply, RunningServer, basic, build_request, https
from python_est import oids, wire
from python_est.keys import key_type_of
from tests.conftest import captured_records

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password"
GeneratedKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
LABELS = (
    "[label:p384]\ncsrattrs = id-ecPublicKey=secp384r1\n"
    "[label:rsa3072]\nserverkeygen_key_type = rsa-3072\n"
    "[label:off]\nserverkeygen = no\n"
)
EST = "/.well-known/est"


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(LABELS)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    with captured_records("python_est", logging.DEBUG) as records:
        yield records


def csr_der(
    common_name: str = USER, attributes: tuple[tuple[x509.ObjectIdentifier, bytes], ...] = ()
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value, _tag=_ASN1Type.OctetString)
    csr = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def post(server: RunningServer, path: str, der: bytes, *, auth: bool = True) -> Reply:
    headers = {"Content-Type": "application/pkcs10"}
    if auth:
        headers["Authorization"] = basic(USER, PASSWORD)
    raw = build_request("POST", f"{EST}/{path}", base64.b64encode(der), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file)


def split(reply: Reply) -> tuple[GeneratedKey, x509.Certificate, bytes]:
    """Check the §4.4.2 layout; return the key, the certificate and the key part's base64."""
    assert reply.status == 200, reply.body
    content_type = reply.headers["Content-Type"]
    assert content_type.startswith("multipart/mixed; boundary=")
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    parts = wire.parse_multipart(content_type, reply.body)
    assert [headers for headers, _ in parts] == [
        {"content-type": "application/pkcs8", "content-transfer-encoding": "base64"},
        {
            "content-type": "application/pkcs7-mime; smime-type=certs-only",
            "content-transfer-encoding": "base64",
        },
    ]
    # The RFC's own spelling of the header (App. A.4) splits the same way.
    boundary = content_type.split("boundary=", 1)[1]
    assert wire.parse_multipart(f"multipart/mixed ; boundary={boundary}", reply.body) == parts
    key = serialization.load_der_private_key(base64.b64decode(parts[0][1]), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    [cert] = wire.decode_certs_only(parts[1][1])
    return key, cert, parts[0][1]


def spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def secrets_of(key: GeneratedKey, key_part: bytes) -> list[bytes]:
    """Byte strings that would betray the key: its DER, base64 lines, private number."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    lines = [line.strip() for line in key_part.splitlines() if len(line.strip()) >= 32]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        number = key.private_numbers().private_value
    else:
        number = key.private_numbers().p
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return [der, base64.b64encode(der), *lines, raw, raw.hex().encode(), str(number).encode()]


def test_serverkeygen_returns_key_and_certificate(
    server: RunningServer, log_records: list[logging.LogRecord]
) -> None:
    request = csr_der()
    key, cert, key_part = split(post(server, "serverkeygen", request))
    assert spki(cert.public_key()) == spki(key.public_key())
    # §4.4.1: the CSR's key is ignored.
    assert spki(cert.public_key()) != spki(x509.load_der_x509_csr(request).public_key())
    assert key_type_of(key) == "rsa-2048"  # the default serverkeygen_key_type
    assert cert.subject.rfc4514_string() == f"CN={USER}"
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None
    assert entry.server_generated_key and entry.operation == "serverkeygen"
    assert (entry.requester, entry.auth_method) == (USER, "basic")

    # The key is never logged, written or recorded: not in any log record, not in any file
    # under the server's directory (state, ledger, its WAL).
    logged = "\n".join(record.getMessage() for record in log_records).encode()
    assert b"issued serial=" in logged  # the capture does see the server's records
    files = [p.read_bytes() for p in server.root.rglob("*") if p.is_file()]
    assert files and any(b"BEGIN CERTIFICATE" in f for f in files)  # the scan does see data
    for secret in secrets_of(key, key_part):
        assert secret not in logged
        assert not any(secret in data for data in files)


@pytest.mark.parametrize(("label", "key_type"), [("p384", "ec-secp384r1"), ("rsa3072", "rsa-3072")])
def test_key_type_follows_the_label(server: RunningServer, label: str, key_type: str) -> None:
    key, cert, _ = split(post(server, f"{label}/serverkeygen", csr_der()))
    assert key_type_of(key) == key_type
    assert spki(cert.public_key()) == spki(key.public_key())


def test_csr_signature_is_ignored(server: RunningServer) -> None:
    broken = bytearray(csr_der())
    broken[-1] ^= 0x01
    assert not x509.load_der_x509_csr(bytes(broken)).is_signature_valid
    key, cert, _ = split(post(server, "serverkeygen", bytes(broken)))
    assert spki(cert.public_key()) == spki(key.public_key())
    # The same CSR is refused where its key would be certified.
    assert post(server, "simpleenroll", bytes(broken)).status == 400


def test_refusals(server: RunningServer) -> None:
    anonymous = post(server, "serverkeygen", csr_der(), auth=False)
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    for oid in (oids.DECRYPT_KEY_IDENTIFIER, oids.ASYMMETRIC_DECRYPT_KEY_IDENTIFIER):
        encrypted = post(server, "serverkeygen", csr_der(attributes=((oid, b"\x01\x02"),)))
        # §4.4.1: an encryption request without SMIMECapabilities cannot be honoured.
        assert encrypted.status == 400
        assert b"must carry SMIMECapabilities" in encrypted.body
        assert b"PRIVATE" not in encrypted.body and b"pkcs8" not in encrypted.body
    disabled = post(server, "off/serverkeygen", csr_der())
    assert disabled.status == 501 and b"disabled" in disabled.body
    stranger = post(server, "serverkeygen", csr_der(common_name="someone-else"))
    assert stranger.status == 403
    assert server.state.ledger.count() == 0
