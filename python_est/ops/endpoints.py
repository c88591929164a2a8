"""`OpsEndpoints`: the anonymous operational resources, first in the routing table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial

from python_est.config import HEALTH_PATH
from python_est.errors import EstError, MethodNotAllowed
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.ops.health import HealthCheck
from python_est.ops.ocsp import OcspEndpoint
from python_est.ops.revocation import CrlPublisher
from python_est.policy import PeerIdentity
from python_est.routes import RoutingTable

log = logging.getLogger("python_est.ops")

# RFC 2585 §4.2: the media type of a DER CRL.
PKIX_CRL = "application/pkix-crl"
RETRY_AFTER_S = 30
_NO_STORE = ("Cache-Control", "no-store")


class OpsEndpoints:
    """`GET /healthz`, `GET <crl path>` and the OCSP responder, anonymous, on the EST port.

    `/healthz` answers 200 "ok" when the CA, the ledger and the user store are usable
    (`HealthCheck`), otherwise 503 naming the failing parts, with Retry-After. The CRL path
    answers the DER CRL as `application/pkix-crl`. Both need no credentials: a TLS handshake
    without a client certificate is enough.

    Args:
        health: the health check.
        crl: the CRL publisher, or None when CRLs are off (the path then falls through).
        crl_path: where the CRL is served (config `[crl] path`).
        ocsp: the OCSP responder (`[ocsp] path` and below), or None when it is off.
        more_crls: the CRLs of the `[ca:NAME]` CAs, by the path each is served at.
    """

    def __init__(
        self,
        health: HealthCheck,
        crl: CrlPublisher | None,
        *,
        crl_path: str = "/crl/ca.crl",
        ocsp: OcspEndpoint | None = None,
        more_crls: Mapping[str, CrlPublisher] | None = None,
    ) -> None:
        self.health = health
        self.crl = crl
        self.crl_path = crl_path
        self.ocsp = ocsp
        self.more_crls = dict(more_crls or {})

    def add_routes(self, table: RoutingTable) -> None:
        """Put `/healthz` and the CRL path (when CRLs are on) into `table`.

        Neither refreshes the CRL after answering (`/healthz` does when healthy, the CRL path
        before): every other route should, with `refresh_crl` as its `then`.
        """
        table.add(HEALTH_PATH, "healthz", self._health)
        if self.crl is not None:
            table.add(self.crl_path, "crl", partial(self._crl, self.crl))
        for path, publisher in self.more_crls.items():
            table.add(path, "crl", partial(self._crl, publisher))
        if self.ocsp is not None:
            self.ocsp.add_routes(table)

    def _health(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        return self.health_response(request)

    def _crl(self, crl: CrlPublisher, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        return self.crl_response(request, crl)

    def health_response(self, request: HttpRequest) -> HttpResponse:
        """The answer to a request for /healthz."""
        _require_get(request)
        report = self.health.report()
        if report.ok:
            self.refresh_crl()
            # Still healthy, but an operator's monitor should see a CA nearing its end.
            body = "\n".join(("ok", *report.warnings))
            return text_response(200, body, (_NO_STORE,))
        return text_response(
            503,
            f"unavailable: {', '.join(report.failing)}",
            (_NO_STORE, ("Retry-After", str(RETRY_AFTER_S))),
        )

    def crl_response(self, request: HttpRequest, crl: CrlPublisher) -> HttpResponse:
        """The answer to a request for the CRL (regenerated first when due)."""
        _require_get(request)
        return HttpResponse(200, (("Content-Type", PKIX_CRL),), crl.current())

    def refresh_crl(self) -> None:
        """Regenerate each CRL if due; a failure is logged, never raised."""
        publishers = [*([] if self.crl is None else [self.crl]), *self.more_crls.values()]
        for publisher in publishers:
            try:
                publisher.refresh_if_due()
            except EstError as exc:
                log.warning("could not regenerate the CRL %s: %s", publisher.path, exc.detail)


def _require_get(request: HttpRequest) -> None:
    if request.method != "GET":
        raise MethodNotAllowed(f"{request.method} is not allowed here", allowed=("GET",))
