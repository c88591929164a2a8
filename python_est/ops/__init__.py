"""Operating the server: the health check, the CRL, OCSP and health routes, the metrics observer.

Split by concept: `health` (`HealthCheck`), `endpoints` (`OpsEndpoints`: `/healthz`, the CRL
path and the OCSP responder, first in the routing table), `ocsp` (the responder) and
`instrument` (the connection observer that feeds `python_est.ops.metrics`). `python_est.app`
builds them from the configuration.
"""

from __future__ import annotations

from python_est.ops.endpoints import PKIX_CRL, OpsEndpoints
from python_est.ops.health import HealthCheck, HealthReport
from python_est.ops.instrument import ConnectionFacts, ConnectionMetrics, auth_kind

__all__ = [
    "PKIX_CRL",
    "ConnectionFacts",
    "ConnectionMetrics",
    "HealthCheck",
    "HealthReport",
    "OpsEndpoints",
    "auth_kind",
]
