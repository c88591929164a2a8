"""RA mode (issue 18 item 1): one python-est in front of another, over real TLS on 127.0.0.1.

The RA ("front") applies its own policy, then forwards with its RA certificate (or Basic)
to the upstream's label; the upstream's answers, 202 and errors included, come back mapped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from est_harness import RunningServer, build_request, https, write_credentials
from python_est import wire
from python_est.cli import main
from python_est.ledger import PendingStatus, serial_hex
from tests.backend_support import ra_certificate, stub_upstream
from tests.policy_support import EST, PASSWORD, cn, der_csr, held_id, post, refused
from tests.webhook_support import decision, running_hook

pytestmark = pytest.mark.integration

UPSTREAM_CFG = """
[server]
pending_retry_after = 7
[label:fleet]
password_subjects = any
[label:held]
password_subjects = any
approval = manual
"""


def front_cfg(
    upstream: RunningServer,
    port: int,
    label: str,
    credentials: str,
    more: str = "",
    timeout: float = 3,
) -> str:
    # The upstream's timeout stays below the front's request deadline (5 s in the tests).
    return (
        f"[label:ra]\nbackend = est\n"
        f"upstream_url = https://127.0.0.1:{port}/.well-known/est/{label}\n"
        f"upstream_ca_file = {upstream.ca_file}\nupstream_timeout = {timeout}\n"
        f"{credentials}\n{more}\n"
        f"[tls]\nclient_trust_anchors = {upstream.ca_file}\n"
    )


Pair = tuple[RunningServer, RunningServer]


def pair(
    start: Callable[[str], RunningServer],
    tmp_path: Path,
    *,
    label: str = "fleet",
    credentials: str | None = None,
    port: int | None = None,
    more: str = "",
    timeout: float = 3,
) -> Pair:
    upstream = start(UPSTREAM_CFG)
    if credentials is None:
        cert, key = ra_certificate(upstream, tmp_path)
        credentials = f"upstream_client_cert = {cert}\nupstream_client_key = {key}"
    front = start(front_cfg(upstream, port or upstream.port, label, credentials, more, timeout))
    assert front.state.users is not None
    front.state.users.add("device1", PASSWORD)
    return front, upstream


def get(server: RunningServer, path: str) -> tuple[int, bytes]:
    raw = build_request("GET", f"{EST}/{path}", b"", {}, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    return reply.status, reply.body


def test_cacerts_is_the_upstream_chain(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path)
    status, body = get(front, "ra/cacerts")
    assert status == 200
    assert wire.decode_certs_only(body) == list(upstream.state.ca.chain)
    # The front's own labels keep its own CA.
    assert wire.decode_certs_only(get(front, "cacerts")[1]) == list(front.state.ca.chain)


def test_enroll_reenroll_and_serverkeygen_through_the_ra(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path)
    der, key = der_csr(cn("device1"))
    reply = post(front, "ra/simpleenroll", der, user="device1")
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    cert.verify_directly_issued_by(upstream.state.ca.certificate)
    assert cert.public_key() == key.public_key()
    # Both ledgers record it: the front with the device as requester, the upstream with the RA
    # (the device's Basic credentials were not forwarded: the upstream has no such user).
    mine, theirs = (
        front.state.ledger.get(cert.serial_number),
        upstream.state.ledger.get(cert.serial_number),
    )
    assert mine is not None and theirs is not None
    assert (mine.requester, mine.label, mine.operation) == ("device1", "ra", "simpleenroll")
    assert (theirs.requester, theirs.auth_method, theirs.label) == ("CN=ra-1", "cert", "fleet")

    # /simplereenroll with the certificate the upstream issued, presented to the front.
    creds = write_credentials(tmp_path, "device1", cert, key)
    der2, key2 = der_csr(cn("device1"))
    renewed = post(front, "ra/simplereenroll", der2, client=creds)
    assert renewed.status == 200, renewed.body
    [cert2] = renewed.certificates()
    assert cert2.public_key() == key2.public_key()
    cert2.verify_directly_issued_by(upstream.state.ca.certificate)
    entry = front.state.ledger.get(cert2.serial_number)
    assert entry is not None and entry.operation == "simplereenroll"

    # /serverkeygen: the upstream generates the key; it comes back with its certificate.
    der3, _ = der_csr(cn("device1"))
    generated = post(front, "ra/serverkeygen", der3, user="device1")
    assert generated.status == 200, generated.body
    parts = wire.parse_multipart(generated.headers["Content-Type"], generated.body)
    assert len(parts) == 2
    entry3 = [
        e for e in front.state.ledger.list_certificates(limit=10) if e.operation == "serverkeygen"
    ]
    assert len(entry3) == 1 and entry3[0].server_generated_key


def test_upstream_202_is_our_202_and_the_retry_is_correlated(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path, label="held")
    der, key = der_csr(cn("device1"))
    first = post(front, "ra/simpleenroll", der, user="device1")
    assert first.status == 202, first.body
    assert first.headers["Retry-After"] == "7"  # the upstream's, not ours (60)
    [pending] = upstream.state.ledger.list_pending()
    # The retry (a new connection, new CSR bytes, same key and subject) finds the same request.
    der_again, _ = der_csr(cn("device1"), key=key)
    assert post(front, "ra/simpleenroll", der_again, user="device1").status == 202
    assert [p.id for p in upstream.state.ledger.list_pending()] == [pending.id]
    upstream.state.ledger.decide_pending(pending.id, True)
    issued = post(front, "ra/simpleenroll", der_again, user="device1")
    assert issued.status == 200, issued.body
    [cert] = issued.certificates()
    assert cert.public_key() == key.public_key()
    assert front.state.ledger.get(cert.serial_number) is not None
    status = upstream.state.ledger.get_pending(pending.id)
    assert status is not None and status.status is PendingStatus.ISSUED


def test_a_local_hold_approved_then_held_upstream_forwards_each_retry_at_once(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    # Held twice: by the front's operator, then by the upstream's. Once the front's operator
    # approved, every retry is forwarded: the upstream's 202 gives the front's claim back, so
    # no retry hears "being issued" while a lease runs out.
    front, upstream = pair(start_est_server, tmp_path, label="held", more="approval = manual")
    der, key = der_csr(cn("device1"))
    refused(post(front, "ra/simpleenroll", der, user="device1"), 202, "awaits approval")
    assert upstream.state.ledger.list_pending() == []  # nothing forwarded while held here
    [local] = front.state.ledger.list_pending()
    front.state.ledger.decide_pending(local.id, True)

    deferred = post(front, "ra/simpleenroll", der, user="device1")
    refused(deferred, 202, "the upstream CA holds the request")
    assert deferred.headers["Retry-After"] == "7"
    [remote] = upstream.state.ledger.list_pending()
    released = front.state.ledger.get_pending(local.id)
    assert released is not None and released.status is PendingStatus.APPROVED
    assert released.claimed_by is None
    # Forwarded again (not "being issued"): the upstream still holds the same request.
    refused(post(front, "ra/simpleenroll", der, user="device1"), 202, "upstream CA holds")
    assert [p.id for p in upstream.state.ledger.list_pending()] == [remote.id]

    upstream.state.ledger.decide_pending(remote.id, True)
    issued = post(front, "ra/simpleenroll", der, user="device1")
    assert issued.status == 200, issued.body
    [cert] = issued.certificates()
    assert cert.public_key() == key.public_key()
    done = front.state.ledger.get_pending(local.id)
    assert done is not None and done.status is PendingStatus.ISSUED
    assert done.serial == cert.serial_number


def test_a_webhook_hold_approved_then_held_upstream_forwards_the_retry(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    with running_hook([decision("hold", "a human looks")]) as hook:
        front, upstream = pair(
            start_est_server, tmp_path, label="held", more=f"authorize_url = {hook.url()}"
        )
        der, _ = der_csr(cn("device1"))
        local_id = held_id(post(front, "ra/simpleenroll", der, user="device1"))
        front.state.ledger.decide_pending(local_id, True)
        refused(post(front, "ra/simpleenroll", der, user="device1"), 202, "upstream CA holds")
        [remote] = upstream.state.ledger.list_pending()
        upstream.state.ledger.decide_pending(remote.id, True)
        issued = post(front, "ra/simpleenroll", der, user="device1")
        assert issued.status == 200, issued.body
        done = front.state.ledger.get_pending(local_id)
        assert done is not None and done.status is PendingStatus.ISSUED


def test_an_upstream_failure_after_a_local_approval_releases_the_claim(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    # The upstream is down when the approved request is forwarded: 503, and the request is
    # approved again (no claim left), so the next retry is forwarded at once.
    front, _ = pair(start_est_server, tmp_path, port=closed_port(), more="approval = manual")
    der, _ = der_csr(cn("device1"))
    refused(post(front, "ra/simpleenroll", der, user="device1"), 202, "awaits approval")
    [local] = front.state.ledger.list_pending()
    front.state.ledger.decide_pending(local.id, True)
    refused(post(front, "ra/simpleenroll", der, user="device1"), 503, "unavailable")
    released = front.state.ledger.get_pending(local.id)
    assert released is not None and released.status is PendingStatus.APPROVED


def test_local_policy_applies_before_anything_is_forwarded(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path)
    # device1 may have only its own name here (password_subjects = own), though the upstream
    # would give the RA any name.
    der, _ = der_csr(cn("admin"))
    refused(post(front, "ra/simpleenroll", der, user="device1"), 403)
    # No credentials at all: refused here, never asked upstream.
    refused(post(front, "ra/simpleenroll", der), 401)
    assert upstream.state.ledger.count() == 0


def test_require_registration_and_the_webhook_apply_before_forwarding(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path, more="require_registration = yes")
    der, _ = der_csr(cn("device1"))
    refused(post(front, "ra/simpleenroll", der, user="device1"), 403, "regist")
    # An authorization webhook that cannot be reached refuses (fail-closed) before forwarding.
    front2, _ = pair(
        start_est_server,
        tmp_path,
        more=f"authorize_url = http://127.0.0.1:{closed_port()}/hook\nwebhook_timeout = 1",
    )
    refused(post(front2, "ra/simpleenroll", der, user="device1"), 503)
    assert upstream.state.ledger.count() == 0


def test_an_upstream_that_never_answers_is_503_after_the_timeout(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    with socket.socket() as silent:
        # Connections complete in the kernel's backlog; no TLS handshake is ever answered.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = int(silent.getsockname()[1])
        front, _ = pair(start_est_server, tmp_path, port=port, timeout=1)
        der, _ = der_csr(cn("device1"))
        reply = post(front, "ra/simpleenroll", der, user="device1")
    refused(reply, 503, "is unavailable", "timed out")
    assert front.state.ledger.count() == 0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_upstream_down_is_503_with_retry_after(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, _ = pair(start_est_server, tmp_path, port=closed_port())
    der, _ = der_csr(cn("device1"))
    reply = post(front, "ra/simpleenroll", der, user="device1")
    refused(reply, 503, "upstream EST server 127.0.0.1:", "is unavailable")
    assert reply.headers["Retry-After"] == "30"
    assert get(front, "ra/cacerts")[0] == 503
    assert front.state.ledger.count() == 0


def test_upstream_refusing_the_ra_credentials_is_502_without_a_challenge(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    secret = tmp_path / "ra.pass"
    secret.write_text("not the password\n")
    front, upstream = pair(
        start_est_server,
        tmp_path,
        credentials=f"upstream_user = ra\nupstream_password = file:{secret}",
    )
    assert upstream.state.users is not None
    upstream.state.users.add("ra", PASSWORD)
    der, _ = der_csr(cn("device1"))
    reply = post(front, "ra/simpleenroll", der, user="device1")
    refused(reply, 502, "refused this server's RA credentials")
    # A challenge passed on would invite the device to send its credentials for the upstream.
    assert "www-authenticate" not in {name.lower() for name in reply.headers}
    # With the right password the same RA enrolls (Basic alone authenticates the RA).
    secret.write_text(PASSWORD + "\n")
    front2 = start_est_server(
        front_cfg(
            upstream,
            upstream.port,
            "fleet",
            f"upstream_user = ra\nupstream_password = file:{secret}",
        )
    )
    assert front2.state.users is not None
    front2.state.users.add("device1", PASSWORD)
    ok = post(front2, "ra/simpleenroll", der, user="device1")
    assert ok.status == 200, ok.body
    [cert] = ok.certificates()
    entry = upstream.state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.requester, entry.auth_method) == ("ra", "basic")


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected", "phrase"),
    [
        (
            500,
            {"Content-Type": "text/plain"},
            b"database on fire\n",
            502,
            "answered HTTP 500: database on fire",
        ),
        (200, {"Content-Type": "application/pkcs7-mime"}, b"garbage!", 502, "unreadable answer"),
        (403, {"Content-Type": "text/plain"}, b"not in inventory\n", 403, "not in inventory"),
        (400, {"Content-Type": "text/plain"}, b"bad CSR\n", 400, "bad CSR"),
        (503, {"Content-Type": "text/plain", "Retry-After": "11"}, b"busy\n", 503, "busy"),
    ],
)
def test_upstream_answers_map_to_clear_statuses(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    status: int,
    headers: dict[str, str],
    body: bytes,
    expected: int,
    phrase: str,
) -> None:
    upstream = start_est_server(UPSTREAM_CFG)
    with stub_upstream(upstream, tmp_path) as stub:
        stub.status, stub.headers, stub.body = status, headers, body
        cert, key = ra_certificate(upstream, tmp_path)
        front = start_est_server(
            front_cfg(
                upstream,
                stub.port,
                "fleet",
                f"upstream_client_cert = {cert}\nupstream_client_key = {key}",
            )
        )
        assert front.state.users is not None
        front.state.users.add("device1", PASSWORD)
        der, _ = der_csr(cn("device1"))
        reply = post(front, "ra/simpleenroll", der, user="device1")
        refused(reply, expected, phrase)
        if expected == 503:
            assert reply.headers["Retry-After"] == "11"
        # The device's own Authorization never reaches the upstream.
        [seen] = stub.seen
        assert "authorization" not in seen
        assert seen["content-type"] == "application/pkcs10"
        assert front.state.ledger.count() == 0


def test_an_upstream_that_certifies_another_key_is_refused(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    upstream = start_est_server(UPSTREAM_CFG)
    # A valid certificate, but for someone else's key.
    other_der, _ = der_csr(cn("other"))
    other = upstream.state.ca.issue(
        x509.load_der_x509_csr(other_der), upstream.config.labels[""].profile
    )
    with stub_upstream(upstream, tmp_path) as stub:
        stub.status = 200
        stub.headers = {"Content-Type": "application/pkcs7-mime; smime-type=certs-only"}
        stub.body = wire.encode_certs_only((other,))
        cert, key = ra_certificate(upstream, tmp_path)
        front = start_est_server(
            front_cfg(
                upstream,
                stub.port,
                "fleet",
                f"upstream_client_cert = {cert}\nupstream_client_key = {key}",
            )
        )
        assert front.state.users is not None
        front.state.users.add("device1", PASSWORD)
        der, _ = der_csr(cn("device1"))
        refused(
            post(front, "ra/simpleenroll", der, user="device1"), 502, "a key other than the CSR's"
        )
        assert front.state.ledger.count() == 0


def test_a_certificate_the_upstream_issued_elsewhere_does_not_renew_here(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    front, upstream = pair(start_est_server, tmp_path)
    # Issued by the same upstream CA, but directly, not through this RA: not in our ledger.
    assert upstream.state.users is not None
    upstream.state.users.add("device1", PASSWORD)
    der, key = der_csr(cn("device1"))
    direct = post(upstream, "fleet/simpleenroll", der, user="device1")
    assert direct.status == 200, direct.body
    [cert] = direct.certificates()
    creds = write_credentials(tmp_path, "direct", cert, key)
    der2, _ = der_csr(cn("device1"))
    refused(post(front, "ra/simplereenroll", der2, client=creds), 403, "not issued by this EST CA")
    assert upstream.state.ledger.count() == 1


def test_revoking_an_upstream_certificate_says_the_upstream_was_not_told(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    front, upstream = pair(start_est_server, tmp_path)
    der, _ = der_csr(cn("device1"))
    [cert] = post(front, "ra/simpleenroll", der, user="device1").certificates()
    config = str(front.root / "est.cfg")
    assert main(["-c", config, "certs", "revoke", serial_hex(cert.serial_number)]) == 0
    assert "revoke this certificate at the upstream CA" in capsys.readouterr().err
    assert front.state.ledger.is_revoked(cert.serial_number)
    assert not upstream.state.ledger.is_revoked(cert.serial_number)


def test_ledger_verify_accepts_what_the_upstream_signed(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    front, _ = pair(start_est_server, tmp_path)
    der, _ = der_csr(cn("device1"))
    assert post(front, "ra/simpleenroll", der, user="device1").status == 200
    assert main(["-c", str(front.root / "est.cfg"), "ledger", "verify"]) == 0
    assert "ledger OK: 1 certificate(s)" in capsys.readouterr().out
