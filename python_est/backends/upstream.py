"""The `est` backend (RA mode): an upstream EST server issues, we forward.

The service has applied every local rule (authentication, linking, subject policy, devices,
webhooks, approval) before `enroll` is called; what goes upstream is the client's CSR and this
server's own RA credentials (an id-kp-cmcRA certificate and/or HTTP Basic, RFC 7030 §3.7), never
the requester's. A /simplereenroll goes upstream as /simpleenroll: the renewal rule was checked
here, and the upstream sees the RA, which may request any name, not the device's certificate.

Upstream answers map onto ours so a client learns what went wrong without seeing our
credentials' trouble as its own: unreachable 503 (with Retry-After), an untrusted or unreadable
upstream 502, upstream 401/404 (our configuration) 502, upstream 400/403/501 the same status
with the upstream's reason, upstream 202 our 202 with the upstream's Retry-After (§4.2.3: the
client's retry, the same request, is forwarded again, so the upstream's own correlation by key
and subject finds its pending request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
)

from python_est import wire
from python_est.backends.base import Deferred, Order, PrivateKey
from python_est.errors import (
    BadGateway,
    BadRequest,
    EstError,
    Forbidden,
    NotImplementedOperation,
    Unavailable,
)
from python_est.keys import KeyType
from python_est.messages import PKCS7_MIME, PKCS8, PKCS10, header_value
from python_est.safetext import escape

UNAVAILABLE_RETRY_AFTER = 30
CACERTS_TTL = 60.0
_T = TypeVar("_T")
MAX_REASON = 200


@dataclass(frozen=True)
class UpstreamReply:
    """One upstream answer; `retry_after` is Retry-After in seconds when the answer has one."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    retry_after: int | None = None

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def reason(self) -> str:
        """The upstream's plain-text reason, made safe and short."""
        if not (self.header("content-type") or "").lower().startswith("text/plain"):
            return ""
        lines = self.body.decode("utf-8", "replace").strip().splitlines()
        return escape(lines[0][:MAX_REASON]) if lines else ""


class UpstreamUnreachable(Exception):
    """No answer: refused, timed out, or TLS failed (`untrusted`: the upstream's certificate)."""

    def __init__(self, reason: str, *, untrusted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.untrusted = untrusted


# (method, EST operation name, Content-Type or None, body) -> the answer.
Exchange = Callable[[str, str, str | None, bytes], UpstreamReply]


class EstBackend:
    """Forwards to an upstream EST server through `exchange` (`python_est.client.upstream`).

    Args:
        exchange: one request to the upstream label, with this server's RA credentials.
        name: the upstream, for reasons (host:port and label; no credentials).
    """

    kind = "est"

    def __init__(
        self, exchange: Exchange, name: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._exchange = exchange
        self._name = name
        self._clock = clock
        self._cacerts: tuple[float, tuple[x509.Certificate, ...]] | None = None
        self._lock = threading.Lock()

    def ca_certs(self) -> Sequence[x509.Certificate]:
        # §4.1.3 pass-through: whatever chain the upstream CA publishes is ours. Kept for a
        # minute, so anonymous /cacerts requests do not each open a connection upstream.
        with self._lock:
            cached = self._cacerts
        if cached is not None and self._clock() - cached[0] < CACERTS_TTL:
            return cached[1]
        reply = self._ask("GET", "cacerts", None, b"")
        chain = tuple(self._decode(lambda: wire.decode_certs_only(reply.body), "/cacerts"))
        with self._lock:
            self._cacerts = (self._clock(), chain)
        return chain

    def enroll(self, order: Order) -> x509.Certificate:
        reply = self._ask("POST", "simpleenroll", PKCS10, _csr_body(order))
        certs = self._decode(lambda: wire.decode_certs_only(reply.body), "/simpleenroll")
        # §4.2.3 asks for the issued certificate alone; some servers add their chain, so the
        # one that certifies the CSR's key is taken, and none is a broken upstream.
        for cert in certs:
            if _same_key(cert.public_key(), order.csr.public_key()):
                return cert
        raise BadGateway(f"upstream {self._name} certified a key other than the CSR's")

    def serverkeygen(self, order: Order, key_type: KeyType) -> tuple[PrivateKey, x509.Certificate]:
        # The upstream generates the key (its keygen rules and its own 202 correlation by
        # requester and names apply); `key_type` is the upstream's choice, not ours.
        reply = self._ask("POST", "serverkeygen", PKCS10, _csr_body(order))
        key, cert = self._decode(lambda: _key_and_cert(reply), "/serverkeygen")
        if not _same_key(cert.public_key(), key.public_key()):
            raise BadGateway(
                f"upstream {self._name} sent a key that its certificate does not certify"
            )
        return key, cert

    def revoke(self, cert: x509.Certificate, reason: str) -> None:
        raise NotImplementedOperation(
            f"EST has no revocation operation; revoke this certificate at the upstream CA "
            f"({self._name})"
        )

    def _ask(
        self, method: str, operation: str, content_type: str | None, body: bytes
    ) -> UpstreamReply:
        try:
            reply = self._exchange(method, operation, content_type, body)
        except UpstreamUnreachable as exc:
            if exc.untrusted:
                raise BadGateway(f"upstream {self._name} is not trusted: {exc.reason}") from None
            raise Unavailable(
                f"upstream EST server {self._name} is unavailable: {exc.reason}",
                retry_after=UNAVAILABLE_RETRY_AFTER,
            ) from None
        if reply.status == 200:
            return reply
        raise self._refusal(reply, operation)

    def _refusal(self, reply: UpstreamReply, operation: str) -> EstError | Deferred:
        said = f": {reply.reason}" if reply.reason else ""
        status = reply.status
        if status == 202:
            retry_after = reply.retry_after or UNAVAILABLE_RETRY_AFTER
            return Deferred(
                retry_after,
                f"the upstream CA holds the request{said}; retry in {retry_after} seconds",
            )
        if status in (400, 413, 415):
            return BadRequest(f"upstream CA refused the request (HTTP {status}){said}")
        if status == 403:
            return Forbidden(f"upstream CA refused the request{said}")
        if status in (401, 407):
            # Our RA credentials failed: the client's own credentials are not the issue, and a
            # challenge passed on would invite it to send them (they are never forwarded).
            return BadGateway(f"upstream {self._name} refused this server's RA credentials")
        if status == 501:
            return NotImplementedOperation(f"upstream does not support /{operation}{said}")
        if status in (429, 503):
            return Unavailable(
                f"upstream EST server {self._name} is busy (HTTP {status}){said}",
                retry_after=reply.retry_after or UNAVAILABLE_RETRY_AFTER,
            )
        return BadGateway(f"upstream {self._name} answered HTTP {status}{said}")

    def _decode(self, parse: Callable[[], _T], what: str) -> _T:
        try:
            return parse()
        except (EstError, ValueError, TypeError, IndexError):
            raise BadGateway(f"unreadable answer from upstream {self._name} to {what}") from None


def _csr_body(order: Order) -> bytes:
    # The client's CSR as received: its signature is the proof of possession (§4.2.1).
    return wire.encode_base64(order.csr.public_bytes(Encoding.DER))


def _same_key(one: CertificatePublicKeyTypes, other: CertificatePublicKeyTypes) -> bool:
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return one.public_bytes(*spki) == other.public_bytes(*spki)


def _key_and_cert(reply: UpstreamReply) -> tuple[PrivateKey, x509.Certificate]:
    # §4.4.2: multipart/mixed, the PKCS#8 key and the certs-only certificate.
    key: object = None
    cert: x509.Certificate | None = None
    for headers, content in wire.parse_multipart(reply.header("content-type") or "", reply.body):
        media_type, _ = wire.parse_media_type(headers.get("content-type", ""))
        if media_type == PKCS8:
            key = load_der_private_key(wire.decode_base64_der(content, "private key"), None)
        elif media_type == PKCS7_MIME:
            cert = wire.decode_certs_only(content)[0]
    if cert is None or not isinstance(key, PrivateKey):
        raise ValueError("the answer lacks the key or the certificate")
    return key, cert
