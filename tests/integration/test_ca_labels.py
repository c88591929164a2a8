"""A CA per label (issue 16 item 1) over real TLS: two labels, two CAs, attacks between them.

Label `a` keeps the `[ca]` CA; label `b` has `[ca:second]`, created with `python-est ca create`
as an operator would. Each /cacerts returns its own chain and `openssl verify` accepts each
label's certificates with that chain only; a certificate of one CA is refused on the other
label's /simplereenroll and /simpleenroll; revocation, the CRL and `ledger verify` go per CA.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from est_harness import (
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    write_credentials,
)
from est_harness.config import TEST_CFG, merge_config
from est_harness.inproc import running_server
from python_est import wire
from python_est.ca import certificate_pem
from python_est.cli import main
from python_est.config import load_config
from python_est.state import open_state
from tests.conftest import require_tool

USER, PASSWORD = "device-1", "label-password-1"
TWO_CAS = "[ca:second]\nkey_type = ec-p256\n[label:a]\nvalidity_days = 30\n[label:b]\nca = second\n"
Start = Callable[[str], RunningServer]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a server whose config adds `extra`, after `python-est ca create second`."""
    with ExitStack() as stack:

        def run(extra: str) -> RunningServer:
            root = tmp_path / "server"
            root.mkdir()
            cfg = root / "est.cfg"
            cfg.write_text(merge_config(TEST_CFG, extra))
            assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
            server = stack.enter_context(running_server(root, extra))
            assert server.state.users is not None
            server.state.users.add(USER, PASSWORD)
            return server

        yield run


@pytest.fixture
def server(start: Start) -> RunningServer:
    return start(TWO_CAS)


def cacerts(server: RunningServer, label: str) -> list[x509.Certificate]:
    target = f"/.well-known/est/{label}cacerts"
    reply = https(
        server.port, build_request("GET", target, port=server.port), cafile=server.ca_file
    )
    assert reply.status == 200, reply.body
    return wire.decode_certs_only(reply.body)


def enroll(
    server: RunningServer, label: str, user: str = USER
) -> tuple[x509.Certificate, PrivateKeyTypes]:
    csr, key = make_csr(user)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    target = f"/.well-known/est/{label}simpleenroll"
    request = build_request("POST", target, csr_body(csr), headers, server.port)
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert, key


def reenroll(
    server: RunningServer, label: str, credentials: tuple[Path, Path], operation: str
) -> tuple[int, str]:
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10"}
    target = f"/.well-known/est/{label}{operation}"
    request = build_request("POST", target, csr_body(csr), headers, server.port)
    reply = https(server.port, request, cafile=server.ca_file, client_cert=credentials)
    return reply.status, reply.body.decode(errors="replace")


def openssl_verify(tmp_path: Path, chain: list[x509.Certificate], cert: x509.Certificate) -> bool:
    openssl = require_tool("openssl")
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(b"".join(certificate_pem(c) for c in chain))
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificate_pem(cert))
    result = subprocess.run(
        [openssl, "verify", "-CAfile", str(anchors), str(leaf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip().endswith(": OK")


def test_each_label_answers_its_own_chain_and_issues_from_its_ca(
    server: RunningServer, tmp_path: Path
) -> None:
    second = server.state.cas["second"]
    assert cacerts(server, "a/") == list(server.state.ca.chain)
    assert cacerts(server, "") == list(server.state.ca.chain)
    assert cacerts(server, "b/") == list(second.chain)
    assert second.root != server.state.ca.root
    cert_a, _ = enroll(server, "a/")
    cert_b, _ = enroll(server, "b/")
    assert cert_a.issuer == server.state.ca.certificate.subject
    assert cert_b.issuer == second.certificate.subject
    # openssl verify with each label's /cacerts: its own certificates only.
    assert openssl_verify(tmp_path, cacerts(server, "a/"), cert_a)
    assert openssl_verify(tmp_path, cacerts(server, "b/"), cert_b)
    assert not openssl_verify(tmp_path, cacerts(server, "a/"), cert_b)
    assert not openssl_verify(tmp_path, cacerts(server, "b/"), cert_a)
    entry_a = server.state.ledger.get(cert_a.serial_number)
    entry_b = server.state.ledger.get(cert_b.serial_number)
    assert entry_a is not None and (entry_a.label, entry_a.ca) == ("a", "default")
    assert entry_b is not None and (entry_b.label, entry_b.ca) == ("b", "second")
    assert server.state.ledger.get_issued_by("second", cert_b.serial_number) == entry_b
    assert server.state.ledger.get_issued_by("default", cert_b.serial_number) is None


def test_a_label_renews_its_own_ca_certificates(server: RunningServer, tmp_path: Path) -> None:
    cert_b, key_b = enroll(server, "b/")
    status, body = reenroll(
        server, "b/", write_credentials(tmp_path, "b", cert_b, key_b), "simplereenroll"
    )
    assert status == 200, body
    [renewed] = wire.decode_certs_only(body.encode())
    assert renewed.issuer == server.state.cas["second"].certificate.subject


@pytest.mark.parametrize("operation", ["simplereenroll", "simpleenroll"])
@pytest.mark.parametrize(("issued_on", "used_on"), [("a/", "b/"), ("b/", "a/"), ("b/", "")])
def test_a_certificate_of_one_ca_is_refused_on_the_other_label(
    server: RunningServer, tmp_path: Path, issued_on: str, used_on: str, operation: str
) -> None:
    # The attacker holds a valid certificate of one label and presents it on a label of the
    # other CA, to renew there or to authenticate a new enrollment.
    cert, key = enroll(server, issued_on)
    before = server.state.ledger.count()
    status, body = reenroll(server, used_on, write_credentials(tmp_path, "x", cert, key), operation)
    assert status in {401, 403}, body
    if operation == "simplereenroll":
        assert status == 403 and "not issued under this label's CA" in body
    assert server.state.ledger.count() == before


def prepared(tmp_path: Path, extra: str) -> Path:
    """A server folder whose config adds `extra`, with `[ca:second]` created; its config."""
    root = tmp_path / "server"
    root.mkdir()
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, extra))
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
    return cfg


def cross_renewal(server: RunningServer, tmp_path: Path) -> tuple[int, str]:
    """Enroll on label a, then present that certificate to renew on label b."""
    assert server.state.users is not None
    server.state.users.add(USER, PASSWORD)
    cert, key = enroll(server, "a/")
    before = server.state.ledger.count()
    reply = reenroll(server, "b/", write_credentials(tmp_path, "a", cert, key), "simplereenroll")
    assert server.state.ledger.count() == before
    return reply


def test_reenroll_from_another_ca_s_label_is_refused_even_when_both_roots_are_trusted(
    tmp_path: Path,
) -> None:
    # Both roots as explicit client trust anchors and `reenroll_from = a` on b: the TLS layer
    # and the label's anchors accept the certificate, and the renewal rule still refuses it.
    extra = merge_config(TWO_CAS, "[label:b]\nreenroll_from = a\n")
    cfg = prepared(tmp_path, extra)
    with open_state(load_config(cfg), create=True) as state:
        roots = certificate_pem(state.ca.root) + certificate_pem(state.cas["second"].root)
    (tmp_path / "anchors.pem").write_bytes(roots)
    extra = merge_config(extra, f"[tls]\nclient_trust_anchors = {tmp_path / 'anchors.pem'}\n")
    with running_server(cfg.parent, extra) as server:
        status, body = cross_renewal(server, tmp_path)
    assert status == 403 and "not issued by this EST CA" in body


def test_the_ledger_s_ca_decides_when_two_ca_names_share_one_key(tmp_path: Path) -> None:
    # `[ca:twin]` names the very files of `[ca]`: the signature check cannot tell them apart,
    # the ledger's record of the issuing CA does.
    state = tmp_path / "server" / "state" / "ca"
    twin = f"[ca:twin]\ncert_file = {state / 'ca.pem'}\nkey_file = {state / 'ca.key'}\n"
    extra = merge_config(TWO_CAS, twin, "[label:b]\nca = twin\nreenroll_from = a\n")
    cfg = prepared(tmp_path, "[ca:second]\n")
    with open_state(load_config(cfg), create=True):
        pass
    with running_server(cfg.parent, extra) as server:
        status, body = cross_renewal(server, tmp_path)
    assert status == 403, body
    assert "issued by CA 'default'" in body and "its CA 'twin'" in body


def test_revoke_the_crl_and_ledger_verify_go_per_ca(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert_a, _ = enroll(server, "a/")
    cert_b, _ = enroll(server, "b/")
    cfg = str(server.root / "est.cfg")
    serial_b = f"{cert_b.serial_number:X}"
    # --ca names the wrong CA: nothing is revoked.
    assert main(["-c", cfg, "certs", "revoke", serial_b, "--ca", "default"]) == 1
    assert "issued by CA default" in capsys.readouterr().err
    assert not server.state.ledger.is_revoked(cert_b.serial_number)
    assert main(["-c", cfg, "certs", "revoke", serial_b, "--ca", "second"]) == 0
    capsys.readouterr()
    second = server.state.cas["second"]
    crls = {}
    for path in ("/crl/ca.crl", "/crl/second.crl"):
        reply = https(
            server.port, build_request("GET", path, port=server.port), cafile=server.ca_file
        )
        assert reply.status == 200, reply.body
        crls[path] = x509.load_der_x509_crl(reply.body)
    assert crls["/crl/second.crl"].issuer == second.certificate.subject
    assert crls["/crl/second.crl"].is_signature_valid(second.certificate.public_key())  # type: ignore[arg-type]
    assert crls["/crl/second.crl"].get_revoked_certificate_by_serial_number(cert_b.serial_number)
    assert crls["/crl/ca.crl"].issuer == server.state.ca.certificate.subject
    assert len(crls["/crl/ca.crl"]) == 0
    assert main(["-c", cfg, "certs", "list", "--ca", "second"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listed] == [serial_b]
    assert main(["-c", cfg, "certs", "list", "--ca", "default"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        f"{cert_a.serial_number:X}"
    ]
    assert main(["-c", cfg, "ledger", "verify", "--ca", "second"]) == 0
    assert "1 certificate(s) of CA second" in capsys.readouterr().out
    assert main(["-c", cfg, "ledger", "verify"]) == 0
    assert main(["-c", cfg, "certs", "list", "--ca", "nope"]) == 1
    assert "no such CA" in capsys.readouterr().err


def test_a_label_naming_a_ca_not_created_yet_stops_start_up_with_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, TWO_CAS))
    assert main(["-c", str(cfg), "init"]) == 2
    err = capsys.readouterr().err
    assert "[ca:second]" in err and "ca create second" in err
    # Nothing was half made: the default CA is not created either.
    assert not (tmp_path / "state" / "ca").exists()
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
    key = (tmp_path / "state" / "cas" / "second" / "ca.key").read_bytes()
    # Never replaced.
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "state" / "cas" / "second" / "ca.key").read_bytes() == key
