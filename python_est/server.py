"""The accept loop: bounded workers, deadlines, HTTP/1.1 framing, one response per connection.

This is the one place where exceptions become responses: an `EstError` becomes its status with a
short text/plain reason; anything else is a bug, logged with its traceback and answered with a
bare 500.

Capacity. A semaphore with `max_connections` slots gates `accept()`: while every worker is busy
the server does not accept, so further connections wait in the kernel's listen queue (`backlog`)
instead of being accepted and dropped. Every connection is bounded in time: the handshake must
finish within `handshake_timeout` and the request must then arrive within `request_timeout`.
Both are absolute deadlines applied to every socket call (see `python_est.tls`), so a client that
trickles bytes cannot hold a worker longer than that, and idle or half-open connections are
dropped when their deadline passes.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Protocol

from python_est.errors import EstError, HandshakeFailed
from python_est.http11 import CONTINUE, RequestParser, serialize_response
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.policy import PeerIdentity
from python_est.tls import TlsStream

log = logging.getLogger("python_est.server")

Handler = Callable[[HttpRequest, PeerIdentity], HttpResponse]

_RECV_SIZE = 65536
_POLL = 0.5  # seconds between checks for shutdown while every worker is busy


class Handshaker(Protocol):
    """What the server needs from the TLS layer (`python_est.tls.TlsEndpoint`)."""

    def handshake(
        self, sock: socket.socket, address: str, deadline: float
    ) -> tuple[TlsStream, PeerIdentity]: ...


class EstServer:
    """A threaded TLS server that answers one HTTP/1.1 request per connection.

    Args:
        address: IP address (or "localhost") to listen on.
        port: TCP port; 0 picks a free one (see `server_address`).
        handshaker: runs the TLS handshake; replace `handshaker` to reload credentials.
        handler: turns a request and the peer's identity into a response.
        max_connections: connections served at once; more wait in the listen queue.
        backlog: length of the kernel's listen queue.
        handshake_timeout: seconds from accept to a completed handshake.
        request_timeout: seconds from the handshake to a complete request.
        max_body_bytes: larger request bodies are refused with 413 (request heads are
            limited by `python_est.http11`, 431).
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
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.handshaker = handshaker
        self.handler = handler
        self.handshake_timeout = handshake_timeout
        self.request_timeout = request_timeout
        self.max_body_bytes = max_body_bytes
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._listener = socket.create_server((address, port), family=family, backlog=backlog)
        self._listener.setblocking(False)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool = ThreadPoolExecutor(max_connections, thread_name_prefix="est-conn")
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def server_address(self) -> tuple[str, int]:
        """The (host, port) actually listened on."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        """Accept and serve connections until `shutdown()` is called."""
        self._stopped.clear()
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_recv, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                if not self._slots.acquire(timeout=_POLL):
                    continue  # every worker busy: new connections wait in the listen queue
                accepted = self._accept(selector)
                if accepted is None:
                    self._slots.release()
                    continue
                with self._idle:
                    self._in_flight += 1
                self._pool.submit(self._serve, *accepted)
        finally:
            selector.close()
            self._stopped.set()

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting, then wait up to `grace` seconds for connections in progress."""
        self._stop.set()
        try:
            self._wake_send.send(b"\0")
        except OSError:
            pass  # already woken or closed
        self._stopped.wait()
        self._listener.close()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
        # Connections still running end at their own deadlines; don't block on them.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._wake_recv.close()
        self._wake_send.close()

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

    def _accept(self, selector: selectors.BaseSelector) -> tuple[socket.socket, str] | None:
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=_POLL):
                if key.fileobj is not self._listener:
                    return None  # woken for shutdown
                try:
                    sock, peer = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another wakeup took it, or the client gave up already
                except OSError as exc:
                    # e.g. EMFILE: back off instead of spinning; the connection stays queued.
                    log.warning("accept failed: %s", exc)
                    time.sleep(_POLL)
                    return None
                sock.setblocking(True)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock, str(peer[0])
        return None

    def _serve(self, sock: socket.socket, address: str) -> None:
        started = time.monotonic()
        outcome = _Outcome(address)
        try:
            self._exchange(sock, address, started, outcome)
        except Exception:
            # A bug in our own code: log it, and keep the worker and the process alive.
            log.exception("connection from %s failed", address)
        finally:
            sock.close()
            self._slots.release()
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
            outcome.log(started)

    def _exchange(
        self, sock: socket.socket, address: str, started: float, outcome: _Outcome
    ) -> None:
        try:
            stream, peer = self.handshaker.handshake(
                sock, address, started + self.handshake_timeout
            )
        except HandshakeFailed as exc:
            outcome.failure = f"handshake failed: {exc}"
            return
        outcome.peer = peer
        stream.set_deadline(time.monotonic() + self.request_timeout)
        try:
            response = self._respond(stream, peer, outcome)
            if response is not None:
                outcome.status = response.status
                outcome.note = response.note
                stream.sendall(_serialize(response))  # one write: one TLS record
        except TimeoutError:
            outcome.failure = "deadline passed while sending"
        except OSError as exc:  # includes ConnectionError from the TLS layer
            outcome.failure = f"connection lost: {exc}"
        finally:
            stream.close()

    def _respond(
        self, stream: TlsStream, peer: PeerIdentity, outcome: _Outcome
    ) -> HttpResponse | None:
        try:
            request = self._read_request(stream)
        except EstError as err:
            return _error_response(err)
        except TimeoutError:
            # tlslite shuts the connection down on any read error, so no 408 can follow.
            outcome.failure = "request deadline passed"
            return None
        except OSError as exc:
            outcome.failure = f"no request: {exc}"
            return None
        outcome.request = f"{request.method} {_printable(request.target)}"
        try:
            return self.handler(request, peer)
        except EstError as err:
            return _error_response(err)
        except Exception:
            log.exception("handler failed on %s from %s", outcome.request, peer.address)
            return text_response(500, "Internal Server Error")

    def _read_request(self, stream: TlsStream) -> HttpRequest:
        parser = RequestParser(max_body=self.max_body_bytes)
        continued = False
        while True:
            data = stream.recv(_RECV_SIZE)
            if not data:
                raise ConnectionError("peer closed before the request was complete")
            request = parser.feed(data)
            if request is not None:
                return request
            if parser.wants_continue and not continued:
                # RFC 9110 §10.1.1: the client waits for this before sending the body.
                stream.sendall(CONTINUE)
                continued = True


def _serialize(response: HttpResponse) -> bytes:
    try:
        return serialize_response(response)
    except ValueError:
        log.exception("handler returned a response that cannot be sent")
        return serialize_response(text_response(500, "Internal Server Error"))


def _error_response(err: EstError) -> HttpResponse:
    detail = " ".join(err.detail.split())
    text = err.title if detail in ("", err.title) else f"{err.title}: {detail}"
    return text_response(err.status, text, err.headers())


def _printable(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned[:200]


# What happened on one connection, for its single log line.
class _Outcome:
    def __init__(self, address: str) -> None:
        self.address = address
        self.peer: PeerIdentity | None = None
        self.request = "-"
        self.status: int | None = None
        self.note = ""
        self.failure = ""

    def log(self, started: float) -> None:
        elapsed = (time.monotonic() - started) * 1000
        if self.peer is None:
            log.info("%s - %s %.1fms", self.address, self.failure or "closed", elapsed)
            return
        tls = self.peer.tls
        auth = f"auth={self.peer.tls_auth.value}"
        cert = self.peer.client_cert
        refused = ""
        if self.peer.srp_user is not None:
            auth += f":{self.peer.srp_user}"
        elif cert is not None and cert.valid:
            auth += f":{cert.leaf.subject.rfc4514_string()}"
        elif cert is not None:
            refused = f'refused certificate "{cert.leaf.subject.rfc4514_string()}" ({cert.reason})'
        parts = [
            self.address,
            tls.version,
            tls.cipher_suite + (" resumed" if tls.resumed else ""),
            auth,
            f'"{self.request}"',
            "-" if self.status is None else str(self.status),
            f"{elapsed:.1f}ms",
        ]
        parts += [text for text in (self.note, refused, self.failure) if text]
        log.info(" ".join(parts))
