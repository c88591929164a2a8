"""The authorization webhook: asked before a certificate is issued; allow, deny or hold.

The request is one JSON object (`AuthorizationRequest.to_json`); the answer must be a JSON
object `{"decision": "allow" | "deny" | "hold", "reason": "..."}` in a 2xx response. Anything
else (no answer in time, a 5xx, a redirect, garbage, an unknown decision) is a failure: by
default (`webhook_failure = closed`) the request is refused with 503 and Retry-After, and only a
label that says `webhook_failure = open` issues anyway, with a warning in the log.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from python_est.errors import Unavailable
from python_est.safetext import escape
from python_est.webhooks.endpoint import Endpoint, WebhookFailure

log = logging.getLogger("python_est.webhooks")

# A deny reason is shown to the EST client in a 403 body and logged: one short line.
MAX_REASON = 200
# How soon a client refused by a failing webhook should try again.
FAILURE_RETRY_AFTER = 30


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""


@dataclass(frozen=True)
class AuthorizationRequest:
    """What the webhook is told about one request (every field is plain JSON).

    Attributes:
        label: the CA label ("" for the default).
        operation: simpleenroll, simplereenroll or serverkeygen (the bootstrap page submits
            through the first and the last).
        requester: who authenticated, as the ledger records it.
        auth_method: how ("basic", "srp", "cert", "cert+basic").
        subject: the requested subject, RFC 4514.
        sans: the requested subjectAltNames ("DNS:x", "IP:...", as the ledger writes them).
        key_type: the key to be certified: the CSR's, or the one /serverkeygen will generate.
        client_certificate: PEM of the validated TLS client certificate, if one authenticated.
        source_address: the client's address.
        request_id: this consultation's id, also sent as X-Request-Id and logged.
    """

    label: str
    operation: str
    requester: str
    auth_method: str
    subject: str
    sans: Sequence[str]
    key_type: str
    client_certificate: str | None
    source_address: str
    request_id: str

    def to_json(self) -> bytes:
        """The JSON body: every client-chosen string is a JSON string, escaped by the encoder
        (quotes, newlines, controls), so no subject or SAN can add or change a field."""
        fields = asdict(self)
        fields["sans"] = list(self.sans)
        return json.dumps(fields, ensure_ascii=True, sort_keys=True).encode("ascii")


def parse_decision(body: bytes) -> Decision:
    """Read the webhook's answer.

    Raises:
        WebhookFailure: not a JSON object with a known `decision` and a string `reason`.
    """
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookFailure("the webhook's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise WebhookFailure("the webhook's answer is not a JSON object")
    try:
        verdict = Verdict(answer.get("decision"))
    except ValueError:
        raise WebhookFailure("the webhook's answer has no decision allow, deny or hold") from None
    reason = answer.get("reason", "")
    if not isinstance(reason, str):
        raise WebhookFailure("the webhook's reason is not a string")
    return Decision(verdict, _bounded(reason))


def _bounded(reason: str) -> str:
    # Escaped first (a newline cannot split the log line or the 403 body), then cut.
    shown = escape(reason)
    return shown if len(shown) <= MAX_REASON else shown[: MAX_REASON - 3] + "..."


class Authorizer:
    """Asks one label's authorization webhook.

    Args:
        endpoint: where to POST.
        fail_open: issue when the webhook fails (`webhook_failure = open`), instead of 503.
    """

    def __init__(self, endpoint: Endpoint, *, fail_open: bool) -> None:
        self._endpoint = endpoint
        self._fail_open = fail_open

    def decide(self, request: AuthorizationRequest) -> Decision:
        """The webhook's decision on `request`.

        Raises:
            Unavailable: the webhook failed and the label fails closed (503, Retry-After).
        """
        try:
            decision = parse_decision(
                self._endpoint.post(request.to_json(), request_id=request.request_id)
            )
        except WebhookFailure as exc:
            if self._fail_open:
                log.warning(
                    "authorization webhook failed, issuing anyway (webhook_failure = open): "
                    "%s; request=%s label=%r",
                    exc,
                    request.request_id,
                    request.label,
                )
                return Decision(Verdict.ALLOW, "webhook failed open")
            log.warning(
                "authorization webhook failed, refusing: %s; request=%s label=%r",
                exc,
                request.request_id,
                request.label,
            )
            raise Unavailable(
                f"the authorization service failed: {exc}", retry_after=FAILURE_RETRY_AFTER
            ) from None
        log.info(
            "authorization webhook: %s%s; request=%s label=%r subject=%r",
            decision.verdict.value,
            f" ({decision.reason})" if decision.reason else "",
            request.request_id,
            request.label,
            escape(request.subject),
        )
        return decision
