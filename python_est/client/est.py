"""`EstClient`: the EST operations of RFC 7030 from the client side.

Authentication (RFC 7030 §3.2.3, §3.3): TLS-SRP (tlslite-ng), a TLS client certificate, or HTTP
Basic (sent preemptively on the POST operations, as curl does); Basic combines with either TLS
method. The server certificate is verified by default: against explicit trust anchors, or the
system store; only the bootstrap /cacerts fetch (§4.1.1) may skip it.

Deferred enrollment (§4.2.3): a 202 answer carries Retry-After; the client waits that long and
sends the same request again, until `max_wait` seconds would be exceeded.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from python_est import wire
from python_est.client.files import ClientKey
from python_est.client.sealed import KeyOpener
from python_est.client.transport import (
    CertificateFiles,
    ClientError,
    Endpoint,
    HttpReply,
    Password,
    Trust,
    build_request,
    exchange_srp,
    exchange_tls,
)
from python_est.errors import EstError
from python_est.messages import PKCS8, PKCS10, WELL_KNOWN, label_segment

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 60
_T = TypeVar("_T")


class HttpStatusError(ClientError):
    """The server refused the request; `status` is its HTTP status."""

    def __init__(self, reply: HttpReply) -> None:
        super().__init__(reply.message)
        self.status = reply.status


class EnrollmentPending(ClientError):
    """The request is still waiting for approval after `max_wait` (RFC 7030 §4.2.3)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the request is waiting for approval; send the same request again in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Credentials:
    """How the client authenticates.

    Attributes:
        srp: TLS-SRP user and password (the connection is then TLS-SRP).
        basic: HTTP Basic user and password.
        client_cert: a TLS client certificate (not combinable with TLS-SRP).
    """

    srp: Password | None = None
    basic: Password | None = None
    client_cert: CertificateFiles | None = None

    def __post_init__(self) -> None:
        if self.srp is not None and self.client_cert is not None:
            raise ValueError("TLS-SRP and a client certificate cannot be used together")


@dataclass(frozen=True)
class ServerKey:
    """A /serverkeygen result: the server-generated private key and its certificate."""

    private_key: ClientKey
    certificate: x509.Certificate


class EstClient:
    """An EST client for one server and CA label.

    Args:
        host: server name or IP address (checked against the server certificate).
        port: server port.
        label: CA label ("" for the unlabelled `/.well-known/est/<operation>` paths).
        trust: how the server certificate is verified.
        credentials: how the client authenticates.
        timeout: seconds for each connection's socket operations.
        sleep: waits between 202 retries (tests pass their own).
        clock: monotonic time for `max_wait`.
    """

    def __init__(
        self,
        host: str,
        port: int = 8443,
        *,
        label: str = "",
        trust: Trust | None = None,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = Endpoint(host, port, timeout)
        self.trust = trust or Trust()
        self.credentials = credentials or Credentials()
        self._prefix = f"{WELL_KNOWN}/{label_segment(label)}/" if label else f"{WELL_KNOWN}/"
        self._sleep = sleep
        self._clock = clock

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> HttpReply:
        """One request to any path on the server, over the configured TLS method.

        Raises:
            ClientError: connection, TLS or trust failure (not for HTTP error statuses).
        """
        raw = build_request(self.endpoint, method, path, headers, body)
        srp = self.credentials.srp
        if srp is not None:
            reply = exchange_srp(self.endpoint, self.trust, raw, srp)
        else:
            reply = exchange_tls(self.endpoint, self.trust, raw, self.credentials.client_cert)
        log.debug("%s %s -> %d (%s)", method, path, reply.status, reply.cipher_suite)
        return reply

    def cacerts(self) -> list[x509.Certificate]:
        """GET /cacerts (RFC 7030 §4.1): the CA certificates, as the server sent them.

        Raises:
            HttpStatusError: the server refused.
            ClientError: transport failure or an unreadable answer.
        """
        reply = self._expect(self.request("GET", self._prefix + "cacerts"), 200)
        return _decode(lambda: wire.decode_certs_only(reply.body), "/cacerts")

    def csrattrs(self) -> wire.CsrAttrs:
        """GET /csrattrs (RFC 7030 §4.5): what the CA wants in CSRs; () when nothing (204).

        Raises:
            HttpStatusError: the server refused (404 counts as "nothing requested").
            ClientError: transport failure or an unreadable answer.
        """
        reply = self.request("GET", self._prefix + "csrattrs")
        # RFC 8951 §4: 204, 404 and an empty 200 all mean "no attributes requested".
        if reply.status in (204, 404) or (reply.status == 200 and not reply.body.strip()):
            return ()
        self._expect(reply, 200)
        return _decode(
            lambda: wire.decode_csrattrs(wire.decode_base64_der(reply.body, "CSR attributes")),
            "/csrattrs",
        )

    def simpleenroll(
        self, csr: x509.CertificateSigningRequest, *, max_wait: float = 0.0
    ) -> x509.Certificate:
        """POST /simpleenroll (RFC 7030 §4.2.1): the issued certificate.

        Raises:
            EnrollmentPending: still 202 when `max_wait` runs out.
            HttpStatusError: the server refused.
            ClientError: transport failure or an unreadable answer.
        """
        return self._enroll_certificate("simpleenroll", csr, max_wait)

    def simplereenroll(
        self, csr: x509.CertificateSigningRequest, *, max_wait: float = 0.0
    ) -> x509.Certificate:
        """POST /simplereenroll (RFC 7030 §4.2.2) with the client certificate being renewed.

        Raises:
            EnrollmentPending: still 202 when `max_wait` runs out.
            HttpStatusError: the server refused.
            ClientError: transport failure or an unreadable answer.
        """
        return self._enroll_certificate("simplereenroll", csr, max_wait)

    def serverkeygen(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        max_wait: float = 0.0,
        opener: KeyOpener | None = None,
    ) -> ServerKey:
        """POST /serverkeygen (RFC 7030 §4.4): a server-generated key and its certificate.

        The CSR names the subject; its key is ignored by the server (§4.4.1). With `opener`
        the CSR must carry its `protection` attributes; the key must then come encrypted
        (a plaintext key is refused) and is decrypted and verified here.

        Raises:
            EnrollmentPending: still 202 when `max_wait` runs out.
            HttpStatusError: the server refused.
            ClientError: transport failure or an unreadable answer.
        """
        reply = self._enroll("serverkeygen", csr, max_wait)
        return _decode(lambda: _server_key(reply, opener), "/serverkeygen")

    # --- internals ------------------------------------------------------------------------------

    def _enroll_certificate(
        self, operation: str, csr: x509.CertificateSigningRequest, max_wait: float
    ) -> x509.Certificate:
        reply = self._enroll(operation, csr, max_wait)
        return _decode(lambda: wire.decode_certs_only(reply.body)[0], "/" + operation)

    def _enroll(
        self, operation: str, csr: x509.CertificateSigningRequest, max_wait: float
    ) -> HttpReply:
        headers = [("Content-Type", PKCS10)]
        basic = self.credentials.basic
        if basic is not None:
            token = base64.b64encode(f"{basic.user}:{basic.password}".encode()).decode("ascii")
            headers.append(("Authorization", f"Basic {token}"))
        # §4.2.1: base64 DER, no Content-Transfer-Encoding needed (RFC 8951 §3).
        body = wire.encode_base64(csr.public_bytes(Encoding.DER))
        deadline = self._clock() + max_wait
        while True:
            reply = self.request("POST", self._prefix + operation, headers=headers, body=body)
            if reply.status != 202:
                return self._expect(reply, 200)
            retry_after = retry_after_seconds(reply.header("retry-after"))
            if self._clock() + retry_after > deadline:
                raise EnrollmentPending(retry_after)
            log.info("request pending approval; retrying in %d s", retry_after)
            self._sleep(retry_after)

    @staticmethod
    def _expect(reply: HttpReply, status: int) -> HttpReply:
        if reply.status != status:
            raise HttpStatusError(reply)
        return reply


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> int:
    """Seconds to wait from a Retry-After value (RFC 9110 §10.2.3): delay-seconds or a date.

    Missing or unreadable values give `DEFAULT_RETRY_AFTER`; the result is at least 1.
    """
    if value is None:
        return DEFAULT_RETRY_AFTER
    text = value.strip()
    if text.isdigit():
        return max(1, int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(1, int(delta + 0.999))


def _server_key(reply: HttpReply, opener: KeyOpener | None) -> ServerKey:
    # §4.4.2: multipart/mixed with the key (application/pkcs8, or application/pkcs7-mime with
    # smime-type=server-generated-key when encrypted) and the certificate (certs-only); RFC
    # 7030 Appendix A.4 writes "multipart/mixed ; boundary=est".
    parts = wire.parse_multipart(reply.header("content-type") or "", reply.body)
    key_der: bytes | None = None
    cert: x509.Certificate | None = None
    for headers, content in parts:
        media_type, params = wire.parse_media_type(headers.get("content-type", ""))
        smime_type = params.get("smime-type", "").lower()
        if media_type == PKCS8:
            if opener is not None:
                raise ValueError("the server returned a plaintext key; an encrypted one was asked")
            key_der = wire.decode_base64_der(content, "private key")
        elif media_type == "application/pkcs7-mime" and smime_type == "server-generated-key":
            if opener is None:
                raise ValueError("the server returned an encrypted key that was not asked for")
            key_der = opener.open(wire.decode_base64_der(content, "encrypted key"))
        elif media_type == "application/pkcs7-mime":
            cert = wire.decode_certs_only(content)[0]
    if cert is None or key_der is None:
        raise ValueError("the response lacks the key or the certificate part")
    key = load_der_private_key(key_der, None)
    if not isinstance(key, ClientKey):
        raise ValueError("the server generated a key of an unsupported algorithm")
    return ServerKey(key, cert)


def _decode(parse: Callable[[], _T], what: str) -> _T:
    try:
        return parse()
    except (EstError, ValueError, TypeError, IndexError) as exc:
        detail = exc.detail if isinstance(exc, EstError) else str(exc)
        raise ClientError(f"unreadable answer to {what}: {detail}") from None
