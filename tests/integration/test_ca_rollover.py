"""Root rollover (issue 16 item 3, RFC 7030 §4.1.3) over real TLS, checked with OpenSSL.

One state directory goes through the whole procedure of docs/ca.md: enroll under the old root,
`python-est ca rollover`, restart; /cacerts returns the four certificates, the new root issues,
a client that trusts only the old root verifies a new certificate with `openssl verify` from
/cacerts, old certificates still renew and each root signs the CRL of its own certificates at
its own URL; `--finish` refuses while old certificates are valid, `--force` retires the old
root, and afterwards only the new root is served and trusted.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from est_harness import basic, build_request, csr_body, https, make_csr, write_credentials
from est_harness.config import TEST_CFG, merge_config
from est_harness.inproc import RunningServer, running_server
from python_est.ca import certificate_pem, load_pem_certificates
from python_est.cli import main
from python_est.config import load_config
from python_est.state import open_state
from tests.conftest import require_tool

USER, PASSWORD = "device-1", "rollover-password-1"
EXTRA = "[crl]\nbase_url = https://pki.example\n"


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def get(server: RunningServer, path: str, cafile: Path) -> bytes:
    reply = https(server.port, build_request("GET", path, port=server.port), cafile=cafile)
    assert reply.status == 200, reply.body
    return reply.body


def enroll(server: RunningServer, cafile: Path) -> tuple[x509.Certificate, PrivateKeyTypes]:
    csr, key = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    target = "/.well-known/est/simpleenroll"
    reply = https(
        server.port,
        build_request("POST", target, csr_body(csr), headers, server.port),
        cafile=cafile,
    )
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert, key


def reenroll(
    server: RunningServer, cafile: Path, credentials: tuple[Path, Path]
) -> tuple[int, bytes]:
    csr, _ = make_csr(USER)
    target = "/.well-known/est/simplereenroll"
    request = build_request(
        "POST", target, csr_body(csr), {"Content-Type": "application/pkcs10"}, server.port
    )
    reply = https(server.port, request, cafile=cafile, client_cert=credentials)
    return reply.status, reply.body


def openssl_cacerts(tmp_path: Path, body: bytes) -> list[x509.Certificate]:
    """The certificates of a /cacerts body as `openssl pkcs7 -print_certs` reads them."""
    openssl = require_tool("openssl")
    der = tmp_path / "cacerts.p7"
    der.write_bytes(base64.b64decode(b"".join(body.split())))
    out = subprocess.run(
        [openssl, "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return load_pem_certificates(out.stdout)


def openssl_verify(
    tmp_path: Path,
    anchor: x509.Certificate,
    untrusted: list[x509.Certificate],
    leaf: x509.Certificate,
) -> bool:
    openssl = require_tool("openssl")
    (tmp_path / "anchor.pem").write_bytes(certificate_pem(anchor))
    (tmp_path / "leaf.pem").write_bytes(certificate_pem(leaf))
    command = [openssl, "verify", "-CAfile", str(tmp_path / "anchor.pem")]
    if untrusted:
        (tmp_path / "untrusted.pem").write_bytes(b"".join(map(certificate_pem, untrusted)))
        command += ["-untrusted", str(tmp_path / "untrusted.pem")]
    result = subprocess.run(
        [*command, str(tmp_path / "leaf.pem")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip().endswith(": OK")


def crl(server: RunningServer, path: str, cafile: Path) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(get(server, path, cafile))


def test_the_whole_rollover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "server"
    root.mkdir()
    cfg = root / "est.cfg"
    old_trust = tmp_path / "old-root.pem"
    # 1. Before: certificates under the old root.
    with running_server(root, EXTRA) as server:
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD)
        old_root = server.state.ca.root
        old_trust.write_bytes(certificate_pem(old_root))
        old_cert, old_key = enroll(server, old_trust)
        doomed, _ = enroll(server, old_trust)
    assert main(["-c", str(cfg), "ca", "rollover"]) == 0
    assert "the new root" in capsys.readouterr().out
    assert main(["-c", str(cfg), "ca", "rollover"]) == 2  # one at a time
    assert "in progress" in capsys.readouterr().err

    # 2. During: four certificates, the new root issues, both kinds of device manage.
    with running_server(root, EXTRA) as server:
        new_root = server.state.ca.root
        assert new_root != old_root and new_root.subject == old_root.subject
        body = get(server, "/.well-known/est/cacerts", old_trust)
        served = openssl_cacerts(tmp_path, body)
        assert len(served) == 4 and {old_root, new_root} <= set(served)
        links = [c for c in served if not signed_by(c, c)]
        assert len(links) == 2
        assert {signed_by(c, old_root) or signed_by(c, new_root) for c in links} == {True}
        new_cert, _ = enroll(server, old_trust)
        assert signed_by(new_cert, new_root) and not signed_by(new_cert, old_root)
        # A device that trusts only the old root: the link certificate from /cacerts suffices,
        # and without it the new certificate does not verify.
        assert openssl_verify(tmp_path, old_root, links, new_cert)
        assert not openssl_verify(tmp_path, old_root, [], new_cert)
        # A device that already trusts only the new root still verifies the old certificates.
        assert openssl_verify(tmp_path, new_root, links, old_cert)
        cdp = new_cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [p.full_name[0].value for p in cdp if p.full_name] == [
            "https://pki.example/crl/ca-g2.crl"
        ]
        # A device that trusts only the new root authenticates the server (OldWithNew in the
        # TLS chain) and reads /cacerts.
        new_trust = tmp_path / "new-root.pem"
        new_trust.write_bytes(certificate_pem(new_root))
        assert get(server, "/.well-known/est/cacerts", new_trust) == body
        # An old certificate renews, into the new root.
        status, renewed = reenroll(
            server, old_trust, write_credentials(tmp_path, "old", old_cert, old_key)
        )
        assert status == 200, renewed
        # Each root signs the CRL of its own certificates.
        assert main(["-c", str(cfg), "certs", "revoke", f"{doomed.serial_number:X}"]) == 0
        assert main(["-c", str(cfg), "certs", "revoke", f"{new_cert.serial_number:X}"]) == 0
        old_crl, new_crl = (
            crl(server, "/crl/ca.crl", old_trust),
            crl(server, "/crl/ca-g2.crl", old_trust),
        )
        assert old_crl.is_signature_valid(old_root.public_key())  # type: ignore[arg-type]
        assert new_crl.is_signature_valid(new_root.public_key())  # type: ignore[arg-type]
        assert [r.serial_number for r in old_crl] == [doomed.serial_number]
        assert [r.serial_number for r in new_crl] == [new_cert.serial_number]
    assert main(["-c", str(cfg), "ledger", "verify"]) == 0  # old and new roots' certificates
    capsys.readouterr()

    # 3. Finish: refused while an old certificate is valid, then forced.
    assert main(["-c", str(cfg), "ca", "rollover", "--finish"]) == 1
    assert "still valid" in capsys.readouterr().err
    assert main(["-c", str(cfg), "ca", "rollover", "--finish", "--force"]) == 0
    out = capsys.readouterr().out
    assert "retired" in out and "issued again by the new root" in out
    assert (root / "state" / "ca" / "retired" / "g1" / "ca.key").exists()
    assert main(["-c", str(cfg), "ledger", "verify"]) == 0  # the retired root's certificates
    assert "ledger OK: 4 certificate(s)" in capsys.readouterr().out
    with running_server(root, EXTRA) as server:
        assert server.state.ca.root == new_root
        body = get(server, "/.well-known/est/cacerts", new_trust)  # the server chains to it
        assert openssl_cacerts(tmp_path, body) == [new_root]
        # The old root authenticates nobody any more; the new root's certificates renew.
        status, refused = reenroll(
            server, new_trust, write_credentials(tmp_path, "old", old_cert, old_key)
        )
        assert status == 403, refused
        assert server.state.users is not None
        cert, key = enroll(server, new_trust)
        status, body = reenroll(server, new_trust, write_credentials(tmp_path, "new", cert, key))
        assert status == 200, body
        # The old root's CRL is no longer served; the new root's is.
        reply = https(
            server.port, build_request("GET", "/crl/ca.crl", port=server.port), cafile=new_trust
        )
        assert reply.status == 404
        assert [r.serial_number for r in crl(server, "/crl/ca-g2.crl", new_trust)] == [
            new_cert.serial_number
        ]


def test_a_named_ca_rolls_over_and_what_cannot_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, "[ca]\nissuing_ca = yes\n[ca:second]\n"))
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
    assert main(["-c", str(cfg), "init"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "ca", "rollover"]) == 2
    assert "offline" in capsys.readouterr().err
    assert main(["-c", str(cfg), "ca", "rollover", "second", "--finish"]) == 1
    assert "no rollover in progress" in capsys.readouterr().err
    assert main(["-c", str(cfg), "ca", "rollover", "nope"]) == 1
    with open_state(load_config(cfg), create=False) as state:
        before = state.cas["second"]
    assert main(["-c", str(cfg), "ca", "rollover", "second"]) == 0
    with open_state(load_config(cfg), create=False) as state:
        assert state.rollovers["second"].old.certificate == before.certificate
        assert state.cas["second"].certificate != before.certificate
        assert "default" not in state.rollovers
    capsys.readouterr()
    assert main(["-c", str(cfg), "ca", "show", "second"]) == 0
    assert "rollover:     in progress" in capsys.readouterr().out
    assert main(["-c", str(cfg), "ca", "rollover", "second", "--finish"]) == 0
    with open_state(load_config(cfg), create=False) as state:
        assert state.rollovers == {} and state.generations["second"] == 2
    files = tmp_path / "files.cfg"
    ca_dir = tmp_path / "state" / "cas" / "second"
    files.write_text(
        merge_config(
            TEST_CFG, f"[ca:own]\ncert_file = {ca_dir / 'ca.pem'}\nkey_file = {ca_dir / 'ca.key'}\n"
        )
    )
    assert main(["-c", str(files), "ca", "rollover", "own"]) == 2
    assert "rolled over by its owner" in capsys.readouterr().err


def test_what_cannot_roll_over_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A CA given as files ([ca] or [ca:NAME]) and an offline root (issuing_ca): one line each,
    # exit 2, and neither the state directory nor the CA files change.
    made = tmp_path / "made.cfg"
    made.write_text(merge_config(TEST_CFG, "[ca:second]\n[ca:offline]\nissuing_ca = yes\n"))
    assert main(["-c", str(made), "ca", "create", "second"]) == 0
    assert main(["-c", str(made), "ca", "create", "offline"]) == 0
    assert main(["-c", str(made), "init"]) == 0
    ca_dir = tmp_path / "state" / "cas" / "second"
    files = tmp_path / "files.cfg"
    files.write_text(
        merge_config(
            TEST_CFG,
            f"[ca]\ncert_file = {ca_dir / 'ca.pem'}\nkey_file = {ca_dir / 'ca.key'}\n"
            f"[ca:own]\ncert_file = {ca_dir / 'ca.pem'}\nkey_file = {ca_dir / 'ca.key'}\n"
            "[ca:offline]\nissuing_ca = yes\n",
        )
    )

    def snapshot() -> dict[str, bytes]:
        return {
            str(path): path.read_bytes()
            for path in sorted((tmp_path / "state").rglob("*"))
            if path.is_file() and "ledger" not in path.name
        }

    before = snapshot()
    for args, where in (
        (["ca", "rollover"], "[ca] cert_file"),
        (["ca", "rollover", "--finish"], "[ca] cert_file"),
        (["ca", "rollover", "own"], "[ca:own] cert_file"),
        (["ca", "rollover", "own", "--finish"], "[ca:own] cert_file"),
        (["ca", "rollover", "offline"], "[ca:offline] issuing_ca"),
    ):
        capsys.readouterr()
        assert main(["-c", str(files), *args]) == 2, args
        err = capsys.readouterr().err
        assert where in err and len(err.strip().splitlines()) == 1, err
    assert snapshot() == before
    assert not list((tmp_path / "state").rglob("rollover"))
