"""EST clients for tests and scripts: CSRs, raw HTTP/1.1 over Python ssl (OpenSSL) for Basic
and certificate clients, and TLS-SRP over tlslite-ng, the way devices do it.

Deliberately independent of `python_est.client`, so they check the server, not our own client.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.errors import TLSRemoteAlert

from python_est import wire

EST = "/.well-known/est"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    raw_head: bytes
    body: bytes

    def certificates(self) -> list[x509.Certificate]:
        return wire.decode_certs_only(self.body)


def make_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    common_name: str,
    key: ec.EllipticCurvePrivateKey | None = None,
    dns_names: tuple[str, ...] = (),
) -> tuple[x509.CertificateSigningRequest, ec.EllipticCurvePrivateKey]:
    key = key or make_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(key, hashes.SHA256()), key


def csr_body(csr: x509.CertificateSigningRequest, *, wrap: bool = True) -> bytes:
    der = csr.public_bytes(serialization.Encoding.DER)
    return wire.encode_base64(der) if wrap else base64.b64encode(der)


def build_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    port: int = 0,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if method == "POST" and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def enroll_request(path: str, body: bytes, authorization: str | None = None) -> bytes:
    """A POST of a base64 PKCS#10 `body` to `path`, with an Authorization header if given."""
    headers = {"Content-Type": "application/pkcs10"}
    if authorization:
        headers["Authorization"] = authorization
    return build_request("POST", path, body, headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def parse_reply(raw: bytes) -> Reply:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"incomplete HTTP response ({len(raw)} bytes)")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return Reply(status, headers, head, body)


def read_all(conn: ssl.SSLSocket | TLSConnection) -> bytes:
    chunks = []
    while True:
        try:
            data = conn.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(bytes(data))
    return b"".join(chunks)


def client_context(cafile: Path, client_cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A context that verifies the server against `cafile`, presenting `client_cert` if given.

    Build it once to reuse across requests (the scripts' loops); `https(cafile=...)` builds one
    per request.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    return context


def https(
    port: int,
    request: bytes,
    *,
    cafile: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10,
    source: str = "",
) -> Reply:
    """Send one raw request over Python ssl (OpenSSL), verifying the server against `cafile`
    (or with `context`), from the local address `source` if given; the server closes after it."""
    if context is None:
        assert cafile is not None, "https() needs cafile or context"
        context = client_context(cafile, client_cert)
    with _connect(port, timeout, source) as raw:
        with _wrap(context, raw) as tls:
            tls.sendall(request)
            return parse_reply(read_all(tls))


def _wrap(context: ssl.SSLContext, raw: socket.socket) -> ssl.SSLSocket:
    try:
        return context.wrap_socket(raw, server_hostname="127.0.0.1")
    except OSError as exc:
        # When the server resets the connection before the handshake (a killed server), CPython's
        # SSLSocket._create has already taken over raw's descriptor and raises from its
        # pre-handshake recv(1) without closing the SSLSocket it made, leaving it to the garbage
        # collector (a ResourceWarning, an error in the suite). Close it from the traceback.
        trace = exc.__traceback__
        while trace is not None:
            made = trace.tb_frame.f_locals.get("self")
            if isinstance(made, ssl.SSLSocket):
                made.close()
            trace = trace.tb_next
        raise


def srp(
    port: int, user: str, password: str, request: bytes, *, timeout: float = 10, source: str = ""
) -> Reply:
    """Send one raw request over TLS-SRP (tlslite client, SRP-RSA or pure SRP as offered)."""
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha_rsa", "srp_sha"]
    settings.cipherNames = ["aes256", "aes128"]
    with _connect(port, timeout, source) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientSRP(user, password, settings=settings)
        conn.sendall(request)
        return parse_reply(read_all(conn))


def _connect(port: int, timeout: float, source: str) -> socket.socket:
    # `source`: a client address in 127.0.0.0/8, so per-address limits see several clients.
    return socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    )


def write_credentials(
    directory: Path, name: str, cert: x509.Certificate, key: PrivateKeyTypes
) -> tuple[Path, Path]:
    """Write `name`.pem and `name`.key (mode 0600) under `directory`; return both paths."""
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def basic_enroll(
    port: int, cafile: Path, user: str, password: str, common_name: str | None = None
) -> Reply:
    """POST /simpleenroll with HTTP Basic for CN=`common_name` (default: the user name)."""
    csr, _ = make_csr(common_name if common_name is not None else user)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(user, password)}
    raw = build_request("POST", f"{EST}/simpleenroll", csr_body(csr), headers, port)
    return https(port, raw, cafile=cafile)


def srp_alert(port: int, user: str, password: str) -> str:
    """The alert the server sends for a TLS-SRP login (GET /cacerts), or "ok" when it succeeds."""
    try:
        srp(port, user, password, build_request("GET", f"{EST}/cacerts", port=port))
    except TLSRemoteAlert as alert:
        return str(alert)
    return "ok"
