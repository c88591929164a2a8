"""One webhook endpoint: a JSON POST over HTTPS (or HTTP to loopback), bounded in time and size.

What an attacker on the network, or a broken webhook, could do to the server is bounded here:
the server's certificate must chain to the configured CA bundle only (never the system store),
a redirect is an error instead of a second request to wherever it points, an answer larger
than `MAX_ANSWER_BYTES` is an error before it is parsed, and every wait (connect, TLS, status
line, each read of the body) gets only what is left of one deadline of `timeout` seconds.
"""

from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from python_est.config import LabelConfig

MAX_ANSWER_BYTES = 16384
_CHUNK = 4096


class _Timed(Protocol):
    def settimeout(self, value: float | None) -> None: ...


class WebhookFailure(Exception):
    """The webhook could not be asked, or its answer cannot be used.

    The message is short, names no path or secret, and may be shown to the EST client.
    """


class Endpoint:
    """POSTs JSON to one URL.

    Args:
        url: an https:// URL, or http:// to a loopback host (`config.convert.to_webhook_url`).
        timeout: seconds for the whole exchange.
        context: the TLS context for https:// (None for http://).
    """

    def __init__(self, url: str, *, timeout: float, context: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._context = context

    @classmethod
    def for_label(cls, url: str, label: LabelConfig) -> Endpoint:
        """The endpoint `url` with the label's webhook TLS settings.

        Raises:
            ValueError: the CA bundle or the client certificate cannot be loaded.
        """
        context = None
        if url.startswith("https:"):
            context = tls_context(
                label.webhook_ca_file, label.webhook_client_cert, label.webhook_client_key
            )
        return cls(url, timeout=label.webhook_timeout, context=context)

    def post(self, body: bytes, *, request_id: str) -> bytes:
        """POST `body` as application/json; return the body of a 2xx answer.

        Raises:
            WebhookFailure: no connection, TLS refused, timeout, non-2xx status (redirects
                included: they are not followed), or an answer over `MAX_ANSWER_BYTES`.
        """
        deadline = time.monotonic() + self._timeout
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request(
                "POST",
                self._target,
                body,
                {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": "python-est",
                    "X-Request-Id": request_id,
                },
            )
            sock = conn.sock
            _settimeout(sock, deadline)
            response = conn.getresponse()
            if not 200 <= response.status < 300:
                kind = "a redirect, which is not followed" if response.status < 400 else "an error"
                raise WebhookFailure(f"the webhook answered {response.status}, {kind}")
            return _read_bounded(response, sock, deadline)
        except ssl.SSLCertVerificationError:
            raise WebhookFailure("the webhook's TLS certificate is not trusted") from None
        except TimeoutError:
            raise WebhookFailure(f"the webhook did not answer within {self._timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookFailure(
                f"the webhook could not be reached ({type(exc).__name__})"
            ) from None
        finally:
            conn.close()


def tls_context(
    ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """A client context trusting only `ca_file`, presenting the client certificate if given.

    Raises:
        ValueError: a file cannot be read or holds no usable certificate or key.
    """
    if ca_file is None:
        raise ValueError("an https:// webhook needs webhook_ca_file")
    try:
        # With cafile, create_default_context loads that bundle and not the system store.
        context = ssl.create_default_context(cafile=str(ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_cert is not None:
            context.load_cert_chain(
                str(client_cert), None if client_key is None else str(client_key)
            )
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the webhook's TLS files: {exc}") from None
    return context


def _settimeout(sock: _Timed, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _read_bounded(response: http.client.HTTPResponse, sock: _Timed, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise WebhookFailure(f"the webhook's answer exceeds {MAX_ANSWER_BYTES} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        _settimeout(sock, deadline)  # a server that trickles bytes still meets the deadline
        chunk = response.read1(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_ANSWER_BYTES:
            raise WebhookFailure(f"the webhook's answer exceeds {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
