"""The one place the issuing operations consult a label's authorization webhook.

Asked after every local check (authentication, linking, names, authorization), so the webhook
only ever sees requests this server would otherwise grant, and asked on every attempt: a
client retrying a held request is described again, so a later deny still refuses it (even
after an operator approved), and a hold keeps it in the approval queue, where the operator's
decision counts (`approval`).
"""

from __future__ import annotations

import secrets

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from python_est.config import LabelConfig
from python_est.errors import Forbidden
from python_est.keys import key_type_of
from python_est.ledger import general_name_text
from python_est.messages import Operation
from python_est.policy import Authentication, PeerIdentity
from python_est.policy.subject import sans_of
from python_est.webhooks import AuthorizationRequest, Authorizer, Verdict


def consult(
    authorizer: Authorizer | None,
    csr: x509.CertificateSigningRequest,
    label: LabelConfig,
    auth: Authentication,
    operation: Operation,
    peer: PeerIdentity,
    key_type: str | None,
) -> bool:
    """Ask the label's webhook, if any, about a checked request; True when it holds it.

    Args:
        authorizer: the label's webhook (None: no webhook, nothing held).
        key_type: the key /serverkeygen will generate; None: the CSR's key is certified.

    Raises:
        Forbidden: the webhook denies the request (its reason, escaped and bounded).
        Unavailable: the webhook failed and the label fails closed.
    """
    if authorizer is None:
        return False
    request = AuthorizationRequest(
        label=label.name,
        operation=operation.value,
        requester=auth.requester,
        auth_method=auth.method_text,
        subject=csr.subject.rfc4514_string(),
        sans=[_san_text(name) for name in sans_of(csr)],
        key_type=key_type or _csr_key_type(csr),
        client_certificate=(
            None
            if auth.certificate is None
            else auth.certificate.leaf.public_bytes(Encoding.PEM).decode()
        ),
        source_address=peer.address,
        request_id=secrets.token_hex(8),
    )
    decision = authorizer.decide(request)
    if decision.verdict is Verdict.DENY:
        raise Forbidden(
            f"refused by the authorization service: {decision.reason or 'no reason given'} "
            f"(request {request.request_id})"
        )
    return decision.verdict is Verdict.HOLD


def _san_text(name: x509.GeneralName) -> str:
    try:
        return general_name_text(name)
    except ValueError:
        return type(name).__name__


def _csr_key_type(csr: x509.CertificateSigningRequest) -> str:
    try:
        return key_type_of(csr.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return "unsupported"
