"""External authorization and notification webhooks, per CA label (issue 18 item 4).

Before a label issues (/simpleenroll, /simplereenroll, /serverkeygen, and the bootstrap page,
which submits through them), its `authorize_url` is asked with a JSON description of the
request; the answer allows it, denies it (403 with the webhook's reason) or holds it (202,
through the manual-approval queue). After a label issues, its `notify_url` is told, from a
durable outbox with bounded retries (`outbox`). See docs/integrations.md.

Like `pgsql`, this package makes outbound connections itself (stdlib `http.client` and `ssl`);
it opens no listening socket and starts no thread.
"""

from __future__ import annotations

from python_est.webhooks.authorize import (
    AuthorizationRequest,
    Authorizer,
    Decision,
    Verdict,
    parse_decision,
)
from python_est.webhooks.endpoint import MAX_ANSWER_BYTES, Endpoint, WebhookFailure, tls_context
from python_est.webhooks.outbox import Outbox, notification_body

__all__ = [
    "MAX_ANSWER_BYTES",
    "AuthorizationRequest",
    "Authorizer",
    "Decision",
    "Endpoint",
    "Outbox",
    "Verdict",
    "WebhookFailure",
    "notification_body",
    "parse_decision",
    "tls_context",
]
