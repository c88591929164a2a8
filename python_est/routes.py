"""The routing table: one map from a request's path to a route, tagged (operation, label).

Every request the server reads is resolved here once, before it is answered: a fixed path
(`/healthz`, the CRL, the bootstrap page) by exact match, then path trees (OCSP GET carries its
request in the path), anything else by the table's default resolver (the EST paths,
`est_resolver`). The route's `RouteTag` is what metrics and logs read, so no other module
parses a path or a log line again to learn what a request was.

Tag values stay in small fixed sets whatever clients send: an operation is an EST operation
name or a fixed route's name ("healthz", "crl", "bootstrap", "ocsp"), "other" for anything
unknown (and then label ""), or "invalid" for a request that did not parse (set by the server,
which has no request to resolve). A CA label is a configured one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from python_est.errors import EstError, NotFound
from python_est.messages import EstPath, HttpRequest, HttpResponse, parse_est_path
from python_est.policy import PeerIdentity

Handler = Callable[[HttpRequest, PeerIdentity], HttpResponse]
"""Turns a request and the peer's identity into a response, or raises an `EstError`."""

Housekeeping = Callable[[], None]


@dataclass(frozen=True)
class RouteTag:
    """What a request was, in bounded values: (operation, label)."""

    operation: str
    label: str = ""


OTHER = RouteTag("other")
INVALID = RouteTag("invalid")


@dataclass(frozen=True)
class Route:
    """A handler and the tag of the requests it answers.

    `then` runs after the handler, whatever it returned or raised (the CRL refresh that keeps
    an answering server's CRL fresh without a timer thread).
    """

    tag: RouteTag
    handler: Handler
    then: Housekeeping | None = None

    def __call__(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        if self.then is None:
            return self.handler(request, peer)
        try:
            return self.handler(request, peer)
        finally:
            self.then()


Resolver = Callable[[HttpRequest], Route]


class RoutingTable:
    """Fixed paths first, in the order added (the first route added for a path wins), then
    `default` for every other path.

    A table is itself a `Handler`: calling it resolves the request and runs its route.
    """

    def __init__(self, default: Resolver) -> None:
        self._fixed: dict[str, Route] = {}
        self._prefixes: list[tuple[str, Route]] = []
        self._default = default

    @classmethod
    def single(cls, handler: Handler) -> RoutingTable:
        """A table that sends every request to `handler`, tagged "other"."""
        route = Route(OTHER, handler)
        return cls(lambda request: route)

    def add(
        self, path: str, operation: str, handler: Handler, *, then: Housekeeping | None = None
    ) -> None:
        """Answer requests for exactly `path` (query ignored) with `handler`, tagged `operation`."""
        self._fixed.setdefault(path, Route(RouteTag(operation), handler, then))

    def add_tree(
        self, path: str, operation: str, handler: Handler, *, then: Housekeeping | None = None
    ) -> None:
        """Answer `path` and every path below it (`path/...`) with `handler`.

        For resources that carry data in the path (OCSP GET, RFC 6960 appendix A.1). Exact
        paths added with `add` come first.
        """
        self._prefixes.append((path.rstrip("/") + "/", Route(RouteTag(operation), handler, then)))
        self.add(path, operation, handler, then=then)

    def resolve(self, request: HttpRequest) -> Route:
        """The route that answers `request`."""
        fixed = self._fixed.get(request.path)
        if fixed is not None:
            return fixed
        for prefix, route in self._prefixes:
            if request.path.startswith(prefix):
                return route
        return self._default(request)

    def __call__(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        return self.resolve(request)(request, peer)


EstLookup = Callable[[EstPath], Handler]
"""The handler of an EST operation on a label; raises `NotFound` for an unknown label."""


def est_resolver(lookup: EstLookup, *, then: Housekeeping | None = None) -> Resolver:
    """Resolve `/.well-known/est[/label]/operation` paths through `lookup`.

    A path that is not an EST path, or names an unknown label, gets a route tagged "other" that
    raises the refusal (404) when it runs, as the service itself would. Found routes are kept:
    there is one per configured label and operation, fixed for the table's life (a reload
    builds a new table).
    """
    found: dict[EstPath, Route] = {}

    def resolve(request: HttpRequest) -> Route:
        try:
            path = parse_est_path(request.target)
            route = found.get(path)
            if route is None:
                route = Route(RouteTag(path.operation.value, path.label), lookup(path), then)
                found[path] = route
        except NotFound as err:
            return Route(OTHER, _refusal(err), then)
        return route

    return resolve


def as_table(handler: Handler) -> RoutingTable:
    """`handler` if it is a table already, else a table that sends everything to it."""
    return handler if isinstance(handler, RoutingTable) else RoutingTable.single(handler)


def _refusal(err: EstError) -> Handler:
    def refuse(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        raise err

    return refuse
