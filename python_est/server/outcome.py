"""What happened on one connection: its single log line, and audit events of refusals.

Client-derived values (certificate subjects, user names, the request target) are written as
`safetext.field`/`quote` values, so a space or quote in them cannot fake a field; the log
formatter escapes whatever is left non-printable in the line (`cli.logs`).
"""

from __future__ import annotations

import base64
import logging
import time

from python_est.audit import audit
from python_est.errors import AuthenticationRequired, EstError
from python_est.messages import HttpRequest, Operation, parse_est_path
from python_est.policy import PeerIdentity
from python_est.routes import RouteTag
from python_est.safetext import escape, field, quote

log = logging.getLogger("python_est.server")

# Audit event names of the operations that issue certificates.
AUDITED = {
    Operation.SIMPLEENROLL: "enroll",
    Operation.SIMPLEREENROLL: "reenroll",
    Operation.SERVERKEYGEN: "serverkeygen",
}


class Outcome:
    """Facts about one connection, gathered while serving it, for its one log line."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.proxy: str | None = None  # the trusted proxy that named `address` in a header
        self.peer: PeerIdentity | None = None
        self.request = "-"
        self.tag: RouteTag | None = None  # the request's route in the routing table (metrics)
        self.basic_user = ""  # the user name of the request's HTTP Basic credentials
        self.status: int | None = None
        self.note = ""
        self.failure = ""
        self.handshake_seconds: float | None = None  # from accept to the handshake's end
        self.seconds = 0.0  # the whole connection (set for the observer)

    def log(self, started: float) -> None:
        elapsed = (time.monotonic() - started) * 1000
        via = "" if self.proxy is None else f" proxy={self.proxy}"
        if self.peer is None:
            log.info("%s - %s %.1fms%s", self.address, self.failure or "closed", elapsed, via)
            return
        tls = self.peer.tls
        auth = f"auth={self.peer.tls_auth.value}"
        cert = self.peer.client_cert
        refused = ""
        who = peer_text(self.peer)
        if who:
            auth += f":{field(who)}"
        elif cert is not None:
            refused = f"refused certificate {quote(cert.leaf.subject.rfc4514_string())}"
            refused += f" ({cert.reason})"
        if self.basic_user:
            # The HTTP-level identity presented (RFC 7030 §3.2.3); a 401 means it was refused.
            auth += f" basic={field(self.basic_user)}"
        parts = [
            self.address,
            tls.version,
            tls.cipher_suite + (" resumed" if tls.resumed else ""),
            auth,
            # `request` is already escaped (`printable`); only its quotes need escaping.
            '"' + self.request.replace('"', '\\"') + '"',
            "-" if self.status is None else str(self.status),
            f"{elapsed:.1f}ms",
        ]
        parts += [text for text in (self.note, refused, self.failure) if text]
        log.info(" ".join(parts) + via)


def audit_refusal(request: HttpRequest, peer: PeerIdentity, err: EstError) -> None:
    """One audit event for a refused enroll, reenroll or serverkeygen (issuance audits itself).

    A 401 to a request without credentials is a challenge, not a refusal: libest's estclient
    and others ask without credentials first.
    """
    if request.method != "POST":
        return
    try:
        path = parse_est_path(request.target)
    except EstError:
        return
    event = AUDITED.get(path.operation)
    if event is None:
        return
    if isinstance(err, AuthenticationRequired) and request.header("authorization") is None:
        return
    tls_user = peer_text(peer)
    http_user = basic_user(request)
    requester = " + ".join(u for u in (http_user, tls_user) if u) or "anonymous"
    auth = "+".join(
        kind for kind, used in ((peer.tls_auth.value, tls_user), ("basic", http_user)) if used
    )
    reason = " ".join(err.detail.split())[:200] or err.title
    audit(
        event,
        "refused",
        "status=%d requester=%r auth=%s label=%r reason=%r",
        err.status,
        requester,
        auth or "none",
        path.label,
        reason,
        status=err.status,
        serial=None,
        subject=None,
        requester=requester,
        auth=auth or "none",
        label=path.label,
        reason=reason,
    )


def basic_user(request: HttpRequest) -> str:
    """The user name of an `Authorization: Basic` header (never the password); "" for none."""
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # bad base64 (binascii.Error), non-ASCII text (found by fuzzing), bad UTF-8
        return ""
    user, colon, _ = decoded.partition(":")
    # Raw (bounded): each log line escapes it where it is written (`field`, `%r`, JSON).
    return user[:128] if colon else ""


def peer_text(peer: PeerIdentity) -> str:
    """The authenticated TLS identity: SRP user or valid certificate subject; "" for none."""
    if peer.srp_user is not None:
        return peer.srp_user
    cert = peer.client_cert
    if cert is not None and cert.valid:
        return cert.leaf.subject.rfc4514_string()
    return ""


def printable(text: str) -> str:
    """Client text made safe for one log line: escaped (`safetext.escape`), at most 200 chars."""
    return escape(text)[:200]
