"""Manual approval of /serverkeygen for clients that sign every CSR with a throwaway key.

GlobalSign's est client makes a fresh key for each attempt; RFC 7030 §4.4.1 says the server
ignores the CSR key. The retry is recognised by label, requester, subject and SANs, over real
TLS, with the request approved by `python-est requests approve`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_harness import Reply, RunningServer, basic, build_request, csr_body, https, make_csr
from python_est import wire
from python_est.ledger import PendingStatus
from tests.integration.test_approval import HELD, PASSWORD, USER, cli, held, with_user

pytestmark = pytest.mark.integration

PATH = "/.well-known/est/held/serverkeygen"


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return with_user(start_est_server(HELD))


def serverkeygen(server: RunningServer) -> Reply:
    csr, _ = make_csr("gateway-3", dns_names=("gw3.example",))  # a new key every time
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request("POST", PATH, csr_body(csr), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file)


def test_throwaway_csr_keys_retry_one_request_and_get_the_key(server: RunningServer) -> None:
    request_id = held(serverkeygen(server))
    assert held(serverkeygen(server)) == request_id
    assert cli(server.root, "approve", request_id) == 0

    reply = serverkeygen(server)  # a third key
    assert reply.status == 200, reply.body
    (_, key_part), (_, cert_part) = wire.parse_multipart(reply.headers["Content-Type"], reply.body)
    key = serialization.load_der_private_key(wire.decode_base64_der(key_part, "key"), None)
    [cert] = wire.decode_certs_only(cert_part)
    assert cert.public_key() == key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw3.example"]

    [request] = server.state.ledger.list_pending()
    assert (request.id, request.status) == (request_id, PendingStatus.ISSUED)
    assert request.serial == cert.serial_number
    # The key was delivered; it is not kept, so a further retry cannot get it again.
    again = serverkeygen(server)
    assert again.status == 403 and b"delivered only once" in again.body
