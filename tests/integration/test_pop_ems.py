"""tls-unique linking only with the extended master secret (issue 13 item 11, RFC 7627).

Without EMS a man-in-the-middle can run two TLS 1.2 handshakes (victim to attacker, attacker
to us) that end with the same master secret and the same Finished messages (the triple-handshake
attack), so the victim's CSR, linked to its own tls-unique, would link to the attacker's
connection too. A tlslite client lets us turn EMS off; it reads tls-unique from its own
handshake and puts it in the CSR, exactly as a compliant client does.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.messages import Finished

from est_harness import Reply, RunningServer, basic, build_request, csr_body, parse_reply, read_all
from tests.integration.test_pop import PASSWORD, PATH, POP_LABEL, USER, linked_csr

pytestmark = pytest.mark.integration


class _Client(TLSConnection):  # type: ignore[misc]
    """A tlslite client that keeps the first Finished: tls-unique of a full handshake."""

    tls_unique: bytes | None = None

    def _note(self, msg: object) -> None:
        if self.tls_unique is None and isinstance(msg, Finished):
            self.tls_unique = bytes(msg.verify_data)

    def _sendMsg(self, msg: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        self._note(msg)
        return super()._sendMsg(msg, *args, **kwargs)

    def _getMsg(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # noqa: N802
        for result in super()._getMsg(*args, **kwargs):
            self._note(result)
            yield result


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(POP_LABEL)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def linked_enroll(port: int, *, ems: bool) -> tuple[Reply, bool]:
    """Enroll on the require_pop label with a correctly linked CSR; (reply, EMS negotiated)."""
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.useExtendedMasterSecret = ems
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        conn = _Client(raw)
        conn.handshakeClientCert(settings=settings)
        assert conn.tls_unique is not None and len(conn.tls_unique) == 12
        challenge = base64.b64encode(conn.tls_unique).decode("ascii")
        body = csr_body(linked_csr(challenge))
        headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
        conn.sendall(build_request("POST", PATH, body, headers, port))
        return parse_reply(read_all(conn)), bool(conn.extendedMasterSecret)


def test_linked_csr_without_extended_master_secret_is_refused(server: RunningServer) -> None:
    reply, negotiated = linked_enroll(server.port, ems=False)
    assert not negotiated
    assert reply.status == 400, reply.body
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = reply.body.decode()
    assert "extended master secret" in text and "RFC 7627" in text
    assert server.state.ledger.list_certificates() == []  # nothing issued


def test_the_same_client_with_extended_master_secret_is_served(server: RunningServer) -> None:
    reply, negotiated = linked_enroll(server.port, ems=True)
    assert negotiated
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert cert.subject.rfc4514_string() == "CN=device-1"


def test_a_label_without_require_pop_does_not_ask_for_it(server: RunningServer) -> None:
    # Only linking needs EMS: the same EMS-less client enrolls where no linking is required.
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.useExtendedMasterSecret = False
    body = csr_body(linked_csr(None, common_name=USER))  # the default label: own name
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientCert(settings=settings)
        path = "/.well-known/est/simpleenroll"
        conn.sendall(build_request("POST", path, body, headers, server.port))
        reply = parse_reply(read_all(conn))
    assert not conn.extendedMasterSecret
    assert reply.status == 200, reply.body
