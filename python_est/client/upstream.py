"""The upstream side of RA mode: this server as an EST client of the label's upstream.

`upstream_exchange` gives `python_est.backends.EstBackend` its one way to talk to the upstream:
our own client code, over TLS verified against `upstream_ca_file` only (never the system
store: any public CA could vouch for an internal CA otherwise), authenticated with the label's
RA certificate and/or HTTP Basic user. Nothing from the requester's connection or request
(headers, credentials) is passed on: the request is built here from the CSR alone.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from python_est.backends import Exchange, UpstreamReply, UpstreamUnreachable
from python_est.client.est import retry_after_seconds
from python_est.client.files import load_certificates
from python_est.client.transport import (
    CertificateFiles,
    ClientError,
    Endpoint,
    Trust,
    TrustError,
    build_request,
    exchange_tls,
)
from python_est.config import LabelConfig
from python_est.config.passphrase import read_passphrase
from python_est.messages import WELL_KNOWN


def upstream_name(label: LabelConfig) -> str:
    """host:port and path of the upstream, for reasons and logs (no credentials)."""
    parts = urlsplit(label.upstream_url)
    return f"{parts.hostname}:{parts.port or 443}{parts.path.rstrip('/') or WELL_KNOWN}"


def upstream_exchange(label: LabelConfig, source: str) -> Exchange:
    """The exchange with `label`'s upstream (`backend = est`).

    Args:
        label: the label's config (upstream_* keys).
        source: the config file, for errors reading the password.

    Raises:
        ConfigError: the password cannot be read.
        OSError, ValueError: the upstream CA file cannot be read.
    """
    parts = urlsplit(label.upstream_url)
    assert parts.hostname is not None and label.upstream_ca_file is not None  # config checked
    endpoint = Endpoint(parts.hostname, parts.port or 443, label.upstream_timeout)
    prefix = (parts.path.rstrip("/") or WELL_KNOWN) + "/"
    trust = Trust(anchors=tuple(load_certificates(label.upstream_ca_file)))
    client_cert = None
    if label.upstream_client_cert is not None and label.upstream_client_key is not None:
        client_cert = CertificateFiles(label.upstream_client_cert, label.upstream_client_key)
    authorization: tuple[tuple[str, str], ...] = ()
    if label.upstream_password is not None:
        password = read_passphrase(label.upstream_password, source)
        token = base64.b64encode(label.upstream_user.encode() + b":" + password).decode("ascii")
        authorization = (("Authorization", f"Basic {token}"),)

    def exchange(
        method: str, operation: str, content_type: str | None, body: bytes
    ) -> UpstreamReply:
        headers = list(authorization) if method == "POST" else []
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        request = build_request(endpoint, method, prefix + operation, headers, body)
        try:
            reply = exchange_tls(endpoint, trust, request, client_cert)
        except TrustError as exc:
            raise UpstreamUnreachable(str(exc), untrusted=True) from None
        except ClientError as exc:
            raise UpstreamUnreachable(str(exc)) from None
        retry_after = reply.header("retry-after")
        return UpstreamReply(
            reply.status,
            reply.headers,
            reply.body,
            None if retry_after is None else retry_after_seconds(retry_after),
        )

    return exchange
