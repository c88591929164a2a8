"""Issue 13 items 1-3, performed as attacks over real TLS against a real server on 127.0.0.1.

Each test plays a low-privileged but valid credential (a password user, a device certificate,
an RA certificate) trying to obtain a certificate it is not entitled to, and observes the
refusal; the ledger shows that nothing was issued.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from est_harness import RunningServer, build_request, https, write_credentials
from python_est.oids import ID_KP_CMC_RA
from tests.policy_support import (
    PASSWORD,
    cmc_ra_certificates,
    cn,
    der_csr,
    ekus,
    enroll_user,
    held_id,
    issued_to,
    policy_server,
    post,
    refused,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return policy_server(start_est_server)


# --- item 1: reenrollment stays on its label -------------------------------------------------


def test_password_user_cannot_climb_to_an_ra_label(server: RunningServer, tmp_path: Path) -> None:
    # The chain from the issue: enroll on the default label, reenroll on a label granting
    # cmcRA/serverAuth (which would skip its approval), then enroll CN=admin as an RA.
    _, creds = issued_to(server, tmp_path, "device1", "device1")
    der, _ = der_csr(cn("device1"))
    refused(
        post(server, "ra/simplereenroll", der, client=creds),
        403,
        "issued under the default label",
        "label 'ra' accepts only its own certificates",
    )
    # Its own label still renews it.
    assert post(server, "simplereenroll", der, client=creds).status == 200
    # Enrolling on the RA label directly is held for an operator, whatever approval says.
    held_id(enroll_user(server, "device1", cn("device1"), "ra/"))
    # Not an RA, so it cannot enroll CN=admin either.
    refused(
        post(server, "simpleenroll", der_csr(cn("admin"))[0], client=creds),
        403,
        "differs from the client certificate's subject",
    )
    assert cmc_ra_certificates(server) == []


def test_device_certificate_cannot_enroll_on_another_label(
    server: RunningServer, tmp_path: Path
) -> None:
    # The same climb through /simpleenroll and /serverkeygen: a device certificate asking for
    # its own names on a label it was not issued under (iot: another profile, auto approval).
    _, creds = issued_to(server, tmp_path, "device1", "device1")
    der, _ = der_csr(cn("device1"))
    for operation in ("simpleenroll", "serverkeygen"):
        refused(
            post(server, f"iot/{operation}", der, client=creds),
            403,
            "the client certificate was issued under the default label",
            "label 'iot' accepts only its own certificates",
        )
    assert [e.label for e in server.state.ledger.list_certificates()] == [""]
    # On its own label the certificate still enrolls for its own names.
    assert post(server, "simpleenroll", der, client=creds).status == 200


def test_cross_label_renewal_into_cmc_ra_needs_an_approve(
    server: RunningServer, tmp_path: Path
) -> None:
    # ra-renew accepts default-label certificates (reenroll_from = ""), and grants cmcRA:
    # the renewal is held until the operator decides, and only then issued.
    _, creds = issued_to(server, tmp_path, "device1", "device1")
    der, key = der_csr(cn("device1"))
    request_id = held_id(post(server, "ra-renew/simplereenroll", der, client=creds))
    assert held_id(post(server, "ra-renew/simplereenroll", der, client=creds)) == request_id
    assert cmc_ra_certificates(server) == []
    server.state.ledger.decide_pending(request_id, True, "checked by the operator")
    reply = post(server, "ra-renew/simplereenroll", der, client=creds)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert cert.public_key() == key.public_key()
    assert ID_KP_CMC_RA in ekus(cert)
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.label, entry.operation) == ("ra-renew", "simplereenroll")


def test_certificate_unknown_to_the_ledger_cannot_reenroll(
    server: RunningServer, tmp_path: Path
) -> None:
    # Signed by our CA (e.g. by hand), but never recorded: it renews nowhere.
    cert, key = server.state.ca.issue_client_certificate(common_name="device1")
    creds = write_credentials(tmp_path, "unrecorded", cert, key)
    der, _ = der_csr(cn("device1"))
    refused(post(server, "simplereenroll", der, client=creds), 403, "not in this CA's ledger")


@pytest.fixture
def ra_credentials(server: RunningServer, tmp_path: Path) -> tuple[Path, Path]:
    cert, key = server.state.ca.issue_client_certificate(
        common_name="ra-1", extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA)
    )
    return write_credentials(tmp_path, "ra-1", cert, key)


def test_ra_renews_on_behalf_of_a_device(
    server: RunningServer, tmp_path: Path, ra_credentials: tuple[Path, Path]
) -> None:
    device, _ = issued_to(server, tmp_path, "device1", "device1", "iot/")
    der, key = der_csr(cn("device1"))
    reply = post(server, "iot/simplereenroll", der, client=ra_credentials)
    assert reply.status == 200, reply.body
    [renewed] = reply.certificates()
    assert renewed.subject == device.subject and renewed.public_key() == key.public_key()
    entry = server.state.ledger.get(renewed.serial_number)
    assert entry is not None
    assert (entry.requester, entry.auth_method, entry.label, entry.operation) == (
        "CN=ra-1",
        "cert",
        "iot",
        "simplereenroll",
    )


@pytest.mark.parametrize(
    ("path", "subject", "why"),
    [
        ("iot/", cn("ghost"), "never issued"),
        ("iot/", cn("DEVICE1"), "case differs"),
        ("", cn("device1"), "issued under another label"),
    ],
)
def test_ra_on_behalf_renewal_of_a_subject_never_issued_there_is_refused(
    server: RunningServer,
    tmp_path: Path,
    ra_credentials: tuple[Path, Path],
    path: str,
    subject: x509.Name,
    why: str,
) -> None:
    issued_to(server, tmp_path, "device1", "device1", "iot/")
    before = server.state.ledger.count()
    reply = post(server, f"{path}simplereenroll", der_csr(subject)[0], client=ra_credentials)
    refused(reply, 403, "an RA renews on behalf of a device only")
    assert server.state.ledger.count() == before, why


def test_ra_on_behalf_renewal_of_a_revoked_device_is_refused(
    server: RunningServer, tmp_path: Path, ra_credentials: tuple[Path, Path]
) -> None:
    device, _ = issued_to(server, tmp_path, "device1", "device1", "iot/")
    server.state.ledger.revoke(device.serial_number, "keyCompromise")
    reply = post(server, "iot/simplereenroll", der_csr(cn("device1"))[0], client=ra_credentials)
    refused(reply, 403, "an RA renews on behalf of a device only")


def test_bootstrap_page_holds_cmc_ra_requests(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    from urllib.parse import urlencode

    server = start_est_server("[profile]\nextended_key_usage = clientAuth, cmcRA\n")
    assert server.state.users is not None
    server.state.users.add("device1", PASSWORD)
    csr = x509.load_der_x509_csr(der_csr(cn("device1"))[0])
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    body = urlencode({"user": "device1", "password": PASSWORD, "mode": "csr", "csr": pem})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = build_request("POST", "/bootstrap", body.encode(), headers, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert b"waiting for approval" in reply.body, reply.body[:300]
    assert server.state.ledger.count() == 0
    assert [p.operation for p in server.state.ledger.list_pending()] == ["simpleenroll"]


def test_serverkeygen_under_a_cmc_ra_profile_is_held(server: RunningServer) -> None:
    der, _ = der_csr(cn("device1"))
    held_id(post(server, "ra/serverkeygen", der, user="device1"))
    assert server.state.ledger.count() == 0


def test_manual_label_holds_renewals_from_other_labels_only(
    server: RunningServer, tmp_path: Path
) -> None:
    # [label:held] approval = manual, reenroll_from = "": a default-label certificate may
    # renew there, but only through the operator, like an enrollment.
    _, creds = issued_to(server, tmp_path, "device1", "device1")
    der, key = der_csr(cn("device1"))
    request_id = held_id(post(server, "held/simplereenroll", der, client=creds))
    server.state.ledger.decide_pending(request_id, True)
    reply = post(server, "held/simplereenroll", der, client=creds)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    # Its own certificate of that label then renews without waiting again.
    own = write_credentials(tmp_path, "held", cert, key)
    again = post(server, "held/simplereenroll", der_csr(cn("device1"))[0], client=own)
    assert again.status == 200, again.body
    assert len(server.state.ledger.list_pending()) == 1
