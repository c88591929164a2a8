"""`EstServer.replace_app` and `request_stop`: what a reload and a graceful stop rely on.

A connection keeps the handshaker and handler it was accepted with; new connections get the new
pair. A stop lets connections in flight finish before `serve_forever` returns.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from est_harness import Reply, build_request, https
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.policy import PeerIdentity
from tests.conftest import wait_until
from tests.tls_support import Pki, make_pki, running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def answering(text: str, gate: threading.Event | None = None) -> Callable[..., HttpResponse]:
    def handler(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        if gate is not None:
            assert gate.wait(10)
        return text_response(200, text)

    return handler


def get(port: int, cafile: Path) -> Reply:
    return https(port, build_request("GET", "/x", port=port), cafile=cafile)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the probe reached the listen queue just as the closing listener dropped it
        # (the workers accept for themselves, so the socket can close between two accepts).
        return True
    return False


def test_connections_in_flight_keep_the_app_they_started_with(pki: Pki) -> None:
    gate = threading.Event()
    with running_server(pki, None, handler=answering("old", gate)) as server:
        port = server.server_address[1]
        with ThreadPoolExecutor(1) as pool:
            in_flight: Future[Reply] = pool.submit(get, port, pki.ca_path)
            wait_until(lambda: server.in_flight == 1)
            server.replace_app(server.handshaker, answering("new"))
            assert get(port, pki.ca_path).body == b"new\n"
            gate.set()
            assert in_flight.result(10).body == b"old\n"


def test_stop_waits_for_the_connection_in_flight(pki: Pki) -> None:
    gate = threading.Event()
    with running_server(pki, None, handler=answering("finished", gate)) as server:
        port = server.server_address[1]
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(get, port, pki.ca_path)
            wait_until(lambda: server.in_flight == 1)
            stopping = pool.submit(server.shutdown, 10.0)
            wait_until(lambda: refused(port))  # no longer accepting
            assert not stopping.done()
            gate.set()
            assert in_flight.result(10).body == b"finished\n"
            stopping.result(10)
        assert server.in_flight == 0
