"""One HTTP/1.1 exchange per TLS connection: Python `ssl`, or tlslite-ng for TLS-SRP.

EST servers answer one request per connection and close (libest, ours), so the client sends
`Connection: close`, reads one response (by Content-Length, chunked, or to the end) and closes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from tlslite import HandshakeSettings, TLSConnection
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.errors import TLSAbruptCloseError, TLSError, TLSRemoteAlert

import python_est
from python_est.ca import certificates_pem
from python_est.messages import header_value

log = logging.getLogger(__name__)

MAX_RESPONSE = 1024 * 1024
USER_AGENT = f"python-est/{python_est.__version__}"


class ClientError(Exception):
    """An EST operation failed: connection, TLS, trust, or an unexpected answer."""


class TrustError(ClientError):
    """The server could not be authenticated."""


@dataclass(frozen=True)
class Password:
    """A user name and password (for TLS-SRP or HTTP Basic); the password stays out of reprs."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class CertificateFiles:
    """A client certificate (PEM, leaf first, intermediates may follow) and its private key."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Trust:
    """How the server is authenticated.

    Attributes:
        anchors: explicit trust anchors (RFC 7030 §3.6.1). Empty: the system's default store.
        verify: False only for the bootstrap /cacerts fetch (RFC 7030 §4.1.1), whose result the
            user must confirm out of band before it is trusted.
    """

    anchors: tuple[x509.Certificate, ...] = ()
    verify: bool = True


@dataclass(frozen=True)
class Endpoint:
    """Where the server listens."""

    host: str
    port: int = 8443
    timeout: float = 30.0

    @property
    def authority(self) -> str:
        """host:port as the Host header writes it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class HttpReply:
    """One HTTP response. Header names are lower-cased."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    cipher_suite: str = ""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def message(self) -> str:
        """A short description for errors: the status and the server's text reason."""
        text = ""
        if (self.header("content-type") or "").startswith("text/plain"):
            text = self.body.decode("utf-8", "replace").strip().splitlines()[0][:300]
        return f"HTTP {self.status} {self.reason}" + (f": {text}" if text else "")


def build_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """An HTTP/1.1 request with Host, User-Agent, Connection: close and Content-Length."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {endpoint.authority}",
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("line break in a request header")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def exchange_tls(
    endpoint: Endpoint,
    trust: Trust,
    request: bytes,
    client_cert: CertificateFiles | None = None,
) -> HttpReply:
    """Send `request` over Python `ssl` (TLS 1.2+) and read the response.

    Raises:
        TrustError: the server certificate did not verify.
        ClientError: connection or TLS failure, or a malformed response.
    """
    context = _ssl_context(trust, client_cert)
    try:
        with socket.create_connection((endpoint.host, endpoint.port), endpoint.timeout) as raw:
            with context.wrap_socket(raw, server_hostname=endpoint.host) as conn:
                conn.sendall(request)
                suite = (conn.cipher() or ("",))[0]
                return read_reply(lambda: _ssl_recv(conn), suite)
    except ssl.SSLCertVerificationError as exc:
        raise TrustError(f"server certificate not trusted: {exc.verify_message}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ClientError(f"TLS connection to {endpoint.authority} failed: {exc}") from None


def exchange_srp(
    endpoint: Endpoint, trust: Trust, request: bytes, credentials: Password
) -> HttpReply:
    """Send `request` over a TLS-SRP connection (RFC 5054) and read the response.

    SRP authenticates both ends by the password. When the server also signs with a certificate
    (SRP-RSA suites) and trust anchors are given, that certificate must verify too.

    Raises:
        TrustError: an SRP-RSA server certificate did not verify against the anchors.
        ClientError: wrong credentials, connection or TLS failure, or a malformed response.
    """
    settings = HandshakeSettings()
    # SRP has no TLS 1.3 suites; CBC suites with encrypt-then-MAC, as the server offers.
    settings.minVersion = (3, 3)
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha_rsa", "srp_sha"]
    settings.cipherNames = ["aes256", "aes128"]
    sni = None if _is_ip(endpoint.host) else endpoint.host
    try:
        with socket.create_connection((endpoint.host, endpoint.port), endpoint.timeout) as raw:
            conn = TLSConnection(raw)
            try:
                conn.handshakeClientSRP(
                    credentials.user, credentials.password, settings=settings, serverName=sni
                )
                suite = CipherSuite.ietfNames.get(conn.session.cipherSuite, "")
                chain = conn.session.serverCertChain
                if chain is not None and trust.verify and trust.anchors:
                    ders = [bytes(cert.bytes) for cert in chain.x509List]
                    verify_server_chain(ders, trust.anchors, endpoint.host)
                conn.ignoreAbruptClose = True
                conn.sendall(request)
                return read_reply(lambda: bytes(conn.recv(65536)), suite)
            finally:
                _close_quietly(conn)
    except TLSRemoteAlert as alert:
        if alert.description in (
            AlertDescription.bad_record_mac,
            AlertDescription.unknown_psk_identity,
        ):
            raise ClientError("TLS-SRP handshake refused: wrong user name or password") from None
        raise ClientError(f"TLS-SRP handshake refused by the server: {alert}") from None
    except (TLSError, OSError) as exc:
        raise ClientError(f"TLS-SRP connection to {endpoint.authority} failed: {exc}") from None


def verify_server_chain(
    chain_der: Sequence[bytes], anchors: Sequence[x509.Certificate], host: str
) -> None:
    """Verify a server certificate chain (leaf first) for `host` against `anchors`.

    The checks are those of a TLS client (path to an anchor, validity, the host in the
    subjectAltName, EKU serverAuth when present), with the Web PKI's extra demands relaxed
    the way an EST CA's certificates need (no authorityKeyIdentifier, no keyUsage on CAs).

    Raises:
        TrustError: the chain does not verify.
    """
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        raise TrustError("the server sent an unreadable certificate") from None
    if not certs:
        raise TrustError("the server sent no certificate")
    subject: x509.DNSName | x509.IPAddress
    if _is_ip(host):
        subject = x509.IPAddress(ipaddress.ip_address(host))
    else:
        subject = x509.DNSName(host)
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(certs[0], certs[1:])
    except VerificationError as exc:
        reason = str(exc).split(" (encountered processing", 1)[0][:200]
        raise TrustError(f"server certificate not trusted: {reason}") from None


_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None
)


def _ssl_context(trust: Trust, client_cert: CertificateFiles | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not trust.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif trust.anchors:
        context.load_verify_locations(cadata=certificates_pem(trust.anchors).decode("ascii"))
    else:
        context.load_default_certs()
    if client_cert is not None:
        try:
            context.load_cert_chain(client_cert.cert_file, client_cert.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(f"cannot load the client certificate or key: {exc}") from None
    return context


def _ssl_recv(conn: ssl.SSLSocket) -> bytes:
    try:
        return conn.recv(65536)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return b""  # closed without close_notify: the response framing decides


def _close_quietly(conn: TLSConnection) -> None:
    try:
        conn.close()
    except (TLSError, TLSAbruptCloseError, OSError):
        pass  # the server closes first; a failed close_notify changes nothing


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def read_reply(recv: Callable[[], bytes], suite: str = "") -> HttpReply:
    """Read one HTTP/1.x response: by Content-Length, chunked, or up to the end of the stream.

    Args:
        recv: returns the next bytes, b"" at the end of the stream.
        suite: the negotiated cipher suite, kept on the reply.

    Raises:
        ClientError: not HTTP/1.x, malformed framing, cut short, or over `MAX_RESPONSE`.
    """
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = recv()
        if not chunk:
            raise ClientError("the server closed the connection without a complete response")
        buf += chunk
        if len(buf) > MAX_RESPONSE:
            raise ClientError("the response is too large")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status, reason, headers = _parse_head(head)
    values = dict(headers)
    body = bytearray(rest)
    length = values.get("content-length")
    chunked = "chunked" in values.get("transfer-encoding", "").lower()
    if length is not None and not chunked:
        if not length.isdigit() or int(length) > MAX_RESPONSE:
            raise ClientError("the response has an unusable Content-Length")
        while len(body) < int(length):
            chunk = recv()
            if not chunk:
                raise ClientError("the server closed the connection before the whole body")
            body += chunk
        data = bytes(body[: int(length)])
    else:
        while chunk := recv():
            body += chunk
            if len(body) > MAX_RESPONSE:
                raise ClientError("the response is too large")
        data = _dechunk(bytes(body)) if chunked else bytes(body)
    return HttpReply(status, reason, headers, data, suite)


def _parse_head(head: bytes) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ClientError("the server's answer is not HTTP/1.x")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ClientError("malformed response header")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", tuple(headers)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise ClientError("malformed chunked response")
        size_text = data[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ClientError("malformed chunked response") from None
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
