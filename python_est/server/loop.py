"""`EstServer`: the connections' workers (`workers`: each accepts for itself), reload and
graceful stop. The thread running `serve_forever` only watches: it evicts a connection waiting
for its client when every worker is busy and a new one is queued, and drains on stop.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol

from python_est.errors import EstError, HandshakeFailed
from python_est.messages import HttpResponse, bare_challenge, error_response, text_response
from python_est.policy import PeerIdentity
from python_est.routes import Handler, RoutingTable, as_table
from python_est.server.clientwait import ClientSocket
from python_est.server.http11 import RequestParser
from python_est.server.linger import Lingerer
from python_est.server.outcome import Outcome, audit_refusal, basic_user, printable
from python_est.server.proxied import NoProxyHeader, proxied_client
from python_est.server.proxyproto import Network, is_trusted
from python_est.server.stream import Stream, read_request, serialized
from python_est.server.system import Listener, bind_listener, queued_connections
from python_est.server.table import ConnectionTable, Held
from python_est.server.workers import Workers

log = logging.getLogger("python_est.server")

_POLL = 0.5  # seconds between checks for stop, and for eviction while every worker is busy
_CUT_WAIT = 5.0  # seconds for connection threads to notice that their socket was cut


class Handshaker(Protocol):
    """What the server needs from the TLS layer (`python_est.tls.TlsEndpoint`)."""

    def handshake(
        self, sock: socket.socket, address: str, deadline: float
    ) -> tuple[Stream, PeerIdentity]: ...


class EstServer:
    """A threaded TLS server that answers one HTTP/1.1 request per connection.

    Args:
        address: IP address (or "localhost") to listen on.
        port: TCP port; 0 picks a free one (see `server_address`).
        handshaker: runs the TLS handshake.
        handler: the routing table (`python_est.routes`); any other handler is served as a
            table of one route tagged "other".
        max_connections: connections served at once; more wait in the listen queue.
        max_connections_per_address: connections one client address (an IPv6 /64) may hold at
            once; beyond it a new connection is closed as soon as it is accepted, so a few
            slow or hostile clients cannot take every worker (slowloris; and eviction, see
            `python_est.server.table`). 0: no cap.
        backlog: length of the kernel's listen queue.
        handshake_timeout: seconds from accept to a completed handshake.
        request_timeout: seconds from the handshake to a complete request.
        header_timeout: seconds from the handshake to the end of the request head (request
            line and headers); the earlier of this and `request_timeout` applies until then.
        max_body_bytes: larger request bodies are refused with 413 (request heads are
            limited by `python_est.server.http11`, 431).
        listener: an already listening socket (from `bind_listener`, possibly shared with
            other processes) to serve instead of binding `address` and `port`.
        observer: called with each finished connection's `Outcome` (metrics); it survives
            `replace_app`, and an exception in it is logged, never raised.
        proxy_protocol: connections from `trusted_proxies` must begin with a PROXY protocol
            header; the client address it names is then the connection's address (the
            per-address cap, the identity given to the handshake, the log line).
        trusted_proxies: the addresses and networks allowed (and, with `proxy_protocol`,
            required) to send a PROXY header; everyone else is a direct client.
    """

    def __init__(
        self,
        *,
        address: str,
        port: int,
        handshaker: Handshaker,
        handler: Handler,
        max_connections: int,
        backlog: int,
        handshake_timeout: float,
        request_timeout: float,
        max_body_bytes: int,
        listener: Listener | None = None,
        observer: Callable[[Outcome], None] | None = None,
        max_connections_per_address: int = 0,
        proxy_protocol: bool = False,
        trusted_proxies: Iterable[Network] = (),
        header_timeout: float = 10.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._app: tuple[Handshaker, RoutingTable] = (handshaker, as_table(handler))
        self.observer = observer
        self.handshake_timeout = handshake_timeout
        self.request_timeout = request_timeout
        self.header_timeout = header_timeout
        self.max_body_bytes = max_body_bytes
        self._listener = listener if listener is not None else bind_listener(address, port, backlog)
        self._listener.setblocking(False)
        self._stop = threading.Event()
        self._selector: selectors.BaseSelector | None = None
        self._workers = Workers(max_connections, self._accept, self._take, self._stop)
        self._grace = 0.0
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._lingerer: Lingerer | None = None  # from serve_forever on
        self._table = ConnectionTable(max_connections_per_address)
        self._proxies: tuple[Network, ...] | None = None
        self.set_proxy_protocol(proxy_protocol, trusted_proxies)

    @property
    def server_address(self) -> tuple[str, int]:
        """The (host, port) actually listened on."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def handshaker(self) -> Handshaker:
        return self._app[0]

    @handshaker.setter
    def handshaker(self, value: Handshaker) -> None:
        self._app = (value, self._app[1])

    @property
    def handler(self) -> RoutingTable:
        return self._app[1]

    @handler.setter
    def handler(self, value: Handler) -> None:
        self._app = (self._app[0], as_table(value))

    @property
    def in_flight(self) -> int:
        """Connections accepted and not yet finished."""
        return len(self._table)

    @property
    def max_connections_per_address(self) -> int:
        return self._table.per_address

    def connections_from(self, address: str) -> int:
        """Connections counted against `address` now (for its per-address share)."""
        return self._table.held_by(address)

    def set_proxy_protocol(self, enabled: bool, trusted_proxies: Iterable[Network]) -> None:
        """Expect PROXY headers from `trusted_proxies` on new connections (or, disabled, none)."""
        # One assignment: a connection is accepted under either the old or the new setting.
        self._proxies = tuple(trusted_proxies) if enabled else None

    def replace_app(self, handshaker: Handshaker, handler: Handler) -> None:
        """Serve new connections with `handshaker` and `handler`; those in flight keep theirs."""
        self._app = (
            handshaker,
            as_table(handler),
        )  # one assignment: no connection sees a mixed pair

    def serve_forever(self) -> None:
        """Serve connections until a stop is requested, then drain and return."""
        self._stopped.clear()
        self._lingerer = Lingerer()
        self._lingerer.start()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_recv, selectors.EVENT_READ)
        try:
            self._workers.start()
            while not self._stop.wait(_POLL):
                self._evict_if_full()
        finally:
            self._stop.set()
            with self._workers.accept_lock:  # no worker is in accept(); later ones see the stop
                self._selector.close()
                self._listener.close()
            self._drain()
            self._lingerer.stop()
            self._stopped.set()

    def request_stop(self, grace: float = 5.0) -> None:
        """Stop accepting; connections in flight get up to `grace` seconds. Returns at once."""
        self._grace = grace
        self._stop.set()
        try:
            self._wake_send.send(b"\0")
        except OSError:
            pass  # already woken or closed

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting and wait until connections in flight are done (at most ~`grace` s).

        Must not be called from the thread running `serve_forever`.
        """
        self.request_stop(grace)
        self._stopped.wait()

    def start_in_thread(self) -> threading.Thread:
        """Run `serve_forever` in a daemon thread (for tests and embedding)."""
        self._stopped.clear()
        thread = threading.Thread(target=self.serve_forever, name="est-accept", daemon=True)
        thread.start()
        return thread

    def __enter__(self) -> EstServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _take(self, accepted: tuple[ClientSocket, str]) -> None:
        """Serve one accepted connection in the worker that accepted it."""
        sock, address = accepted
        proxies = self._proxies
        # A proxy's connections carry many clients: each is capped once its header names it
        # (in `_serve`), not here under the proxy's own address.
        proxied = proxies is not None and is_trusted(address, proxies)
        held = self._table.admit(sock, address, counted=not proxied, wait=sock.wait)
        if held is None:
            sock.close_at_once()  # closed before any TLS: the cheapest refusal
            return
        self._serve(held, self._app, proxied)

    def _evict_if_full(self) -> None:
        """With every worker busy and connections queued, evict as many connections that keep
        their worker waiting for their own client (`table`), so that the queued ones get
        workers. One per check would let a few hundred slow connections keep a normal client
        in the listen queue for many seconds (docs/security.md §8)."""
        if not self._workers.full:
            return
        queued = queued_connections(self._listener)
        if queued:
            self._table.evict_idle(limit=queued)  # each thread logs its own when it ends

    def _drain(self) -> None:
        if not self._table.wait_empty(self._grace):
            cut = self._table.cut_all()  # their threads see EOF or EPIPE now
            log.warning("%d connection(s) still open after %.0fs; closing them", cut, self._grace)
            self._table.wait_empty(_CUT_WAIT)
        # A worker still busy (say, signing) ends by itself; its socket is already cut.
        self._wake_recv.close()
        self._wake_send.close()

    def _accept(self) -> tuple[ClientSocket, str] | None:
        """Wait for and accept one connection (the leader, under the accept lock); None if none."""
        selector = self._selector
        assert selector is not None
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=_POLL):
                if key.fileobj is not self._listener:
                    return None  # woken for shutdown
                try:
                    sock, peer = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another process or wakeup took it, or the client gave up
                except OSError as exc:
                    # e.g. EMFILE: back off instead of spinning; the connection stays queued.
                    log.warning("accept failed: %s", exc)
                    time.sleep(_POLL)
                    return None
                sock.setblocking(True)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client = ClientSocket.adopt(sock)
                client.lingerer = self._lingerer
                return client, str(peer[0])
        return None

    def _serve(
        self, held: Held, app: tuple[Handshaker, RoutingTable], proxied: bool = False
    ) -> None:
        started = time.monotonic()
        sock, address = held.sock, held.address
        outcome = Outcome(address)
        report = True
        try:
            client = address
            if proxied:
                try:
                    client, named = proxied_client(sock, address, started + self.handshake_timeout)
                except NoProxyHeader as exc:
                    outcome.failure = str(exc)
                    outcome.handshake_seconds = time.monotonic() - started
                    return
                if named:
                    outcome.address, outcome.proxy = client, address
                if not self._table.count_as(held, client):
                    report = False  # refused as at accept: no log line or metrics of its own
                    return
            self._exchange(held, client, started, outcome, app)
        except Exception:
            # A bug in our own code: log it, and keep the worker and the process alive.
            log.exception("connection from %s failed", address)
        finally:
            sock.close()
            self._table.release(held)
            if held.evicted:
                cause = f" ({outcome.failure})" if outcome.failure else ""
                outcome.failure = f"evicted while waiting for the client{cause}"
            if report:
                outcome.log(started)
                self._observe(outcome, started)

    def _observe(self, outcome: Outcome, started: float) -> None:
        if self.observer is None:
            return
        outcome.seconds = time.monotonic() - started
        try:
            self.observer(outcome)
        except Exception:
            log.exception("connection observer failed")

    def _exchange(
        self,
        held: Held,
        address: str,
        started: float,
        outcome: Outcome,
        app: tuple[Handshaker, RoutingTable],
    ) -> None:
        handshaker, routes = app
        deadline = started + self.handshake_timeout
        try:
            stream, peer = handshaker.handshake(held.sock, address, deadline)
        except HandshakeFailed as exc:
            outcome.handshake_seconds = time.monotonic() - started
            outcome.failure = f"handshake failed: {exc}"
            return
        outcome.handshake_seconds = time.monotonic() - started
        outcome.peer = peer
        try:
            response = self._respond(stream, peer, outcome, routes, held)
            if response is not None:
                outcome.status = response.status
                outcome.note = response.note
                stream.sendall(serialized(response))  # one write: one TLS record
        except TimeoutError:
            outcome.failure = "deadline passed while sending"
        except OSError as exc:  # includes ConnectionError from the TLS layer
            outcome.failure = f"connection lost: {exc}"
        finally:
            self._table.finished(held)  # before close: the client sees our FIN only after it
            stream.close()

    def _respond(
        self,
        stream: Stream,
        peer: PeerIdentity,
        outcome: Outcome,
        routes: RoutingTable,
        held: Held,
    ) -> HttpResponse | None:
        parser = RequestParser(max_body=self.max_body_bytes)
        try:
            request = read_request(
                stream,
                parser,
                header_timeout=self.header_timeout,
                request_timeout=self.request_timeout,
            )
        except EstError as err:
            return error_response(err)
        except TimeoutError:
            # tlslite shuts the connection down on any read error, so no 408 can follow.
            phase = "request" if parser.headers_complete else "request head"
            outcome.failure = f"{phase} deadline passed"
            return None
        except OSError as exc:
            outcome.failure = f"no request: {exc}"
            return None
        if not self._table.serving(held):
            outcome.failure = "request complete, but its connection was already cut"
            return None
        outcome.request = f"{request.method} {printable(request.target)}"
        outcome.basic_user = basic_user(request)
        try:
            route = routes.resolve(request)
            outcome.tag = route.tag
            return route(request, peer)
        except EstError as err:
            audit_refusal(request, peer, err)
            return bare_challenge(error_response(err), request)
        except Exception:
            log.exception("handler failed on %s from %s", outcome.request, peer.address)
            return text_response(500, "Internal Server Error")
