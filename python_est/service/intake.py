"""The request body of /simpleenroll, /simplereenroll and /serverkeygen: the PKCS#10 it carries
(§4.2.1), and the checks every CSR passes before authorization (§3.5 linking, issue 13 names,
§4.5.2 / RFC 9908 csrattrs, the profile's fixed subject).
"""

from __future__ import annotations

from cryptography import x509

from python_est import wire
from python_est.config import LabelConfig
from python_est.errors import Forbidden, InvalidCsr, UnsupportedMediaType
from python_est.messages import PKCS10, HttpRequest
from python_est.policy import PeerIdentity, check_csr_names, check_linking, fixed_refusal
from python_est.service.enforce import check_csr
from python_est.service.labelplan import LabelPlan
from python_est.service.prescribed_check import prescription_problems


def read_csr(request: HttpRequest) -> x509.CertificateSigningRequest:
    """The CSR of `request`'s body.

    §4.2.1: the body is a base64 PKCS#10 labelled application/pkcs10 (R08). Parameters, case
    and spacing are accepted; any Content-Transfer-Encoding is ignored (RFC 8951 §3).

    Raises:
        UnsupportedMediaType: the Content-Type is missing or another media type.
        MalformedBody, InvalidCsr: the body is not base64 of a PKCS#10 (`wire.decode_csr`).
    """
    value = request.header("content-type")
    if value is None:
        raise UnsupportedMediaType(f"missing Content-Type: send {PKCS10}")
    media_type, _ = wire.parse_media_type(value)
    if media_type != PKCS10:
        raise UnsupportedMediaType(f"Content-Type must be {PKCS10}")
    return wire.decode_csr(request.body)


def check_request_csr(
    csr: x509.CertificateSigningRequest,
    peer: PeerIdentity,
    label: LabelConfig,
    plan: LabelPlan,
    *,
    client_key: bool,
) -> None:
    """Check `csr` against `label` (its `plan`) for `peer`'s connection, before authorization.

    `client_key`: the CSR's key is the client's (False for /serverkeygen, §4.4.1).

    Raises:
        EstError: the first check that fails, with its status and reason.
    """
    # §3.5 linking first (its reason is the most specific), then the names, then §4.5.2.
    is_ra = peer.client_cert is not None and peer.client_cert.valid and peer.client_cert.is_ra
    check_linking(
        wire.csr_challenge_password(csr), peer.tls, required=label.require_pop, is_ra=is_ra
    )
    # Issue 13: names that deceive a reader or exceed the caps (400), and values that
    # conflict with the profile's fixed subject attributes (403), for every requester.
    check_csr_names(csr, label.profile)
    if label.enforce_csrattrs:
        check_csr(plan.requirements, csr, client_key=client_key, is_ra=is_ra)
        # RFC 9908: the values prescribed, not only the presence of what is announced.
        problems = prescription_problems(plan.prescription, csr)
        if problems:
            raise InvalidCsr(
                "the CSR does not use the values this CA prescribes "
                "(see /csrattrs, RFC 9908): " + "; ".join(problems)
            )
    refusal = fixed_refusal(csr.subject, label.profile)
    if refusal is not None:
        raise Forbidden(refusal)
