"""Issuing backends, chosen per label: `embedded` (this CA), `est` (RA mode), `handler`.

See `base` for the interface and docs/architecture.md ("Issuing backends").
"""

from python_est.backends.base import (
    Backend,
    Deferred,
    Order,
    PollStore,
    PrivateKey,
    recorded_ca,
)
from python_est.backends.embedded import EmbeddedBackend
from python_est.backends.handler import HandlerBackend, HandlerLoadError
from python_est.backends.upstream import (
    EstBackend,
    Exchange,
    UpstreamReply,
    UpstreamUnreachable,
)

__all__ = [
    "Backend",
    "Deferred",
    "EmbeddedBackend",
    "EstBackend",
    "Exchange",
    "HandlerBackend",
    "HandlerLoadError",
    "Order",
    "PollStore",
    "PrivateKey",
    "UpstreamReply",
    "UpstreamUnreachable",
    "recorded_ca",
]
