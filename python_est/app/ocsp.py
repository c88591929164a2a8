"""The OCSP responder (`[ocsp]`), on the EST port and on its own plain-HTTP listener."""

from __future__ import annotations

from datetime import timedelta

from python_est.app.trust import all_cas
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.errors import NotFound
from python_est.messages import HttpRequest, HttpResponse
from python_est.ops.ocsp import OcspAuthority, OcspEndpoint, OcspResponder
from python_est.policy import PeerIdentity
from python_est.server import EstServer, Listener, PlainHandshaker
from python_est.state import State
from python_est.state.ocsp import load_ocsp_signer


def build_ocsp(config: Config, state: State) -> OcspEndpoint | None:
    """The OCSP responder `[ocsp]` describes, or None when it is off.

    It answers for every CA of the state (the CertID's issuer hashes pick one; another issuer
    is `unauthorized`), and for the old root of a rollover in progress, whose certificates are
    still valid. The delegated signer is issued by `[ca]` and signs for it alone; while `[ca]`
    rolls over, each root signs its own answers (the signer was issued by one of the two).

    Raises:
        ConfigError: `[ocsp] signer = delegated` and the signer cannot be used.
    """
    cfg = config.ocsp
    if not cfg.enabled:
        return None
    rolling = state.rollovers.get(DEFAULT_CA)
    authorities = [
        OcspAuthority(
            ca, load_ocsp_signer(config, ca) if name == DEFAULT_CA and rolling is None else None
        )
        for name, ca in all_cas(state).items()
    ]
    authorities += [OcspAuthority(rollover.old) for rollover in state.rollovers.values()]
    responder = OcspResponder(
        authorities, state.ledger, validity=timedelta(minutes=cfg.validity_minutes)
    )
    return OcspEndpoint(responder, path=cfg.path)


def build_ocsp_server(
    config: Config, server: EstServer, *, listener: Listener | None = None
) -> EstServer | None:
    """The plain-HTTP OCSP listener `[ocsp] http_enabled` asks for, or None.

    It answers only the routes `server` tags "ocsp", through `server`'s current routing
    table, so a reload of `server` (new CA, new signer) reaches it too; every other path is
    404.

    Args:
        config: the configuration.
        server: the EST server whose OCSP route is served.
        listener: the listening socket bound at start-up; None binds `[ocsp] http_address`
            and `http_port`. A given socket is always served (a worker restarted after a
            reload that turned OCSP off answers 404 rather than leave it unanswered).

    Raises:
        OSError: the address cannot be bound.
    """
    cfg, limits = config.ocsp, config.server
    if listener is None and not (cfg.enabled and cfg.http_enabled):
        return None

    def ocsp_only(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        route = server.handler.resolve(request)
        if route.tag.operation != "ocsp":
            raise NotFound("only OCSP is served on this port")
        return route(request, peer)

    return EstServer(
        address=cfg.http_address,
        port=cfg.http_port,
        handshaker=PlainHandshaker(),
        handler=ocsp_only,
        max_connections=limits.max_connections,
        max_connections_per_address=limits.max_connections_per_address,
        backlog=limits.backlog,
        handshake_timeout=limits.handshake_timeout,
        request_timeout=limits.request_timeout,
        header_timeout=limits.header_timeout,
        max_body_bytes=limits.max_body_bytes,
        listener=listener,
    )
