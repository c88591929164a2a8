"""A `[ca:NAME]` CA whose key is on a PKCS#11 token (SoftHSM2), over real TLS (issue 16).

`python-est ca create tok` makes the key on the token and only the certificate under the state
directory; label `t` (CA `tok`) then enrolls, renews and revokes with every signature made on
the token, and openssl checks its /cacerts chain, its CRL and the OCSP answers of the EST port.
Every way the section can be wrong is one line naming `[ca:tok]` and the key; a key label
that exists is never created over; a root rollover of a token CA is refused before anything
is written.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    running_server,
    write_credentials,
)
from est_harness.config import TEST_CFG, write_config
from est_harness.process import run_cli
from python_est import wire
from python_est.ca import certificate_pem
from python_est.config import load_config
from python_est.errors import CaError, ConfigError
from python_est.ledger import serial_hex
from python_est.state import open_state
from tests.conftest import run_openssl
from tests.softhsm_support import SoftToken, new_label, soft_token

pytestmark = pytest.mark.integration

USER, PASSWORD = "device-1", "token label password"
LABEL = "[label:t]\nca = tok\n[crl]\nbase_url = https://est.example.net:8443\n"


def named_token(token: SoftToken, key_label: str, *, pin: str = "", extra: str = "") -> str:
    """A `[ca:tok]` with its key `key_label` on the token, and label `t` using it."""
    keys = token.config(key_label, pin=pin).replace("[ca]\n", "[ca:tok]\n", 1)
    return keys + extra + LABEL


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture(params=["rsa-3072", "ec-p256"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    token = soft_token()
    root = tmp_path / "server"
    extra = named_token(token, new_label("named"), extra=f"key_type = {request.param}\n")
    config = write_config(root, extra, base=TEST_CFG)
    made = run_cli(config, "ca", "create", "tok")
    assert made.returncode == 0, made.stderr
    assert "created on the token" in made.stdout and "not extractable" in made.stdout
    # Only the certificate is written: the key stays on the token.
    assert sorted(p.name for p in (root / "state" / "cas" / "tok").iterdir()) == ["ca.pem"]
    with running_server(root, extra) as running:
        assert running.state.users is not None
        running.state.users.add(USER, PASSWORD)
        yield running
        running.state.close()


def post(
    server: RunningServer, op: str, *, auth: bool = True, cert: tuple[Path, Path] | None = None
) -> tuple[int, bytes]:
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10"}
    if auth:
        headers["Authorization"] = basic(USER, PASSWORD)
    raw = build_request("POST", f"/.well-known/est/t/{op}", csr_body(csr), headers, server.port)
    reply = https(server.port, raw, cafile=server.ca_file, client_cert=cert)
    return reply.status, reply.body


def enroll(server: RunningServer) -> tuple[x509.Certificate, PrivateKeyTypes]:
    csr, key = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    target = "/.well-known/est/t/simpleenroll"
    raw = build_request("POST", target, csr_body(csr), headers, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert, key


def get(server: RunningServer, path: str) -> bytes:
    reply = https(server.port, build_request("GET", path, port=server.port), cafile=server.ca_file)
    assert reply.status == 200, reply.body
    return reply.body


def ocsp_verdict(server: RunningServer, tmp_path: Path, leaf: Path, issuer: Path) -> str:
    # The TLS server certificate is the [ca] CA's; the answer is signed by the tok CA.
    trust = tmp_path / "trust.pem"
    trust.write_bytes(server.ca_file.read_bytes() + issuer.read_bytes())
    done = run_openssl(
        "ocsp", "-issuer", str(issuer), "-cert", str(leaf), "-CAfile", str(trust),
        "-url", f"https://127.0.0.1:{server.port}/ocsp", "-timeout", "20",
    )  # fmt: skip
    text = done.stdout + done.stderr
    assert done.returncode == 0 and "Response verify OK" in text, text
    return text


def test_a_label_of_a_token_ca_enrolls_renews_and_revokes(
    server: RunningServer, tmp_path: Path
) -> None:
    tok = server.state.cas["tok"]
    assert not hasattr(tok.key, "private_bytes")  # the token's key object, not a copy
    chain = wire.decode_certs_only(get(server, "/.well-known/est/t/cacerts"))
    assert chain == list(tok.chain)
    anchors = tmp_path / "tok.pem"
    anchors.write_bytes(b"".join(certificate_pem(c) for c in chain))

    cert, key = enroll(server)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(certificate_pem(cert))
    verified = run_openssl("verify", "-CAfile", str(anchors), str(leaf))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.label, entry.ca) == ("t", "tok")
    assert f"{leaf}: good" in ocsp_verdict(server, tmp_path, leaf, anchors)

    credentials = write_credentials(tmp_path, "device", cert, key)
    status, body = post(server, "simplereenroll", auth=False, cert=credentials)
    assert status == 200, body
    [renewed] = wire.decode_certs_only(body)
    renewed.verify_directly_issued_by(tok.certificate)
    # The token CA's certificate is refused on the default label (another CA's).
    csr, _ = make_csr(USER)
    raw = build_request(
        "POST", "/.well-known/est/simplereenroll", csr_body(csr),
        {"Content-Type": "application/pkcs10"}, server.port,
    )  # fmt: skip
    assert https(server.port, raw, cafile=server.ca_file, client_cert=credentials).status == 403
    # And a certificate of the default CA is refused on the token CA's label.
    csr, other_key = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request(
        "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
    )
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [other] = reply.certificates()
    other_credentials = write_credentials(tmp_path, "other", other, other_key)
    status, body = post(server, "simplereenroll", auth=False, cert=other_credentials)
    assert status == 403, body
    # /healthz signs a probe with every CA, the token CA's key among them.
    assert get(server, "/healthz").startswith(b"ok")

    revoked = run_cli(
        server.root / "est.cfg", "certs", "revoke", serial_hex(cert.serial_number),
        "--ca", "tok", "--reason", "keyCompromise",
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    status, body = post(server, "simplereenroll", auth=False, cert=credentials)
    assert status == 403, body

    crl_der = tmp_path / "tok.crl"
    crl_der.write_bytes(get(server, "/crl/tok.crl"))
    crl_check = run_openssl(
        "crl", "-inform", "DER", "-in", str(crl_der), "-noout", "-CAfile", str(anchors)
    )
    assert "verify OK" in crl_check.stderr + crl_check.stdout, crl_check.stderr
    crl = x509.load_der_x509_crl(crl_der.read_bytes())
    assert crl.issuer == tok.certificate.subject
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    text = ocsp_verdict(server, tmp_path, leaf, anchors)
    assert f"{leaf}: revoked" in text and "Reason: keyCompromise" in text, text

    # Nothing under the state directory holds the token CA's key.
    files = [p for p in (server.root / "state" / "cas").rglob("*") if p.is_file()]
    assert files and not any(b"PRIVATE KEY" in p.read_bytes() for p in files)


def test_ca_create_never_creates_over_an_existing_key_label(tmp_path: Path) -> None:
    token = soft_token()
    key_label = new_label("taken")
    first = write_config(tmp_path / "first", named_token(token, key_label), base=TEST_CFG)
    assert run_cli(first, "ca", "create", "tok").returncode == 0
    again = run_cli(first, "ca", "create", "tok")
    assert again.returncode == 2 and "never replaced" in again.stderr, again.stderr
    # Another state directory naming the same key label: the key on the token is kept.
    second = write_config(tmp_path / "second", named_token(token, key_label), base=TEST_CFG)
    refused = run_cli(second, "ca", "create", "tok")
    assert refused.returncode == 2, refused.stderr
    assert "[ca:tok] pkcs11_key_label" in refused.stderr, refused.stderr
    assert "exists already; it is never overwritten" in refused.stderr, refused.stderr
    assert not (tmp_path / "second" / "state" / "cas").exists()
    # The first CA still loads with its key.
    with open_state(load_config(first), create=True) as state:
        state.cas["tok"].issue_client_certificate(common_name="still signs")


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ("label", "pkcs11_key_label", "python-est -c {cfg} ca create tok"),
        ("pin", "pkcs11_pin", "is wrong"),
        ("token", "pkcs11_token", "no token labelled"),
    ],
)
def test_a_wrong_token_setting_is_one_line_naming_the_ca_section(
    tmp_path: Path, change: str, key: str, words: str
) -> None:
    token = soft_token()
    key_label = new_label("wrong")
    good = write_config(tmp_path / "good", named_token(token, key_label), base=TEST_CFG)
    assert run_cli(good, "ca", "create", "tok").returncode == 0
    assert run_cli(good, "init").returncode == 0
    wrong_pin = tmp_path / "wrong-pin"
    wrong_pin.write_text("not-the-pin\n")
    text = named_token(token, key_label)
    if change == "label":
        text = text.replace(key_label, new_label("absent"))
    elif change == "pin":
        text = text.replace(f"file:{token.pin_file}", f"file:{wrong_pin}")
    else:
        text = text.replace(f"pkcs11_token = {token.label}", "pkcs11_token = no-such-token")
    config = write_config(tmp_path / "good", text, base=TEST_CFG)
    with pytest.raises(ConfigError) as raised:
        open_state(load_config(config), create=False)
    line = str(raised.value)
    assert "\n" not in line
    assert f"[ca:tok] {key}" in line and words.format(cfg=config) in line, line
    shown = run_cli(config, "ca", "show", "tok")
    assert shown.returncode == 2 and f"[ca:tok] {key}" in shown.stderr, shown.stderr


def test_rollover_of_a_token_ca_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    token = soft_token()
    extra = named_token(token, new_label("roll")) + token.config(new_label("rootroll"))
    config = write_config(tmp_path, extra, base=TEST_CFG)
    assert run_cli(config, "ca", "create", "tok").returncode == 0
    assert run_cli(config, "init", "--create-token-key").returncode == 0
    before = listing(tmp_path / "state")
    for args, section in [
        (("ca", "rollover"), "[ca]"),
        (("ca", "rollover", "tok"), "[ca:tok]"),
        (("ca", "rollover", "tok", "--finish"), "[ca:tok]"),
    ]:
        done = run_cli(config, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{section} pkcs11_key_label" in done.stderr, done.stderr
        assert "PKCS#11 token" in done.stderr and "nothing was changed" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert listing(tmp_path / "state") == before
    # A key file left in the token CA's folder is never read: the key is the token's.
    (tmp_path / "state" / "cas" / "tok" / "ca.key").write_text("not a key\n")
    shown = run_cli(config, "ca", "show", "tok")
    assert shown.returncode == 0, shown.stderr
    assert f"key:          PKCS#11 pkcs11:token={token.label};object=" in shown.stdout


def test_a_reload_shares_the_named_token_session_and_closing_lets_it_go(tmp_path: Path) -> None:
    token = soft_token()
    config_path = write_config(tmp_path, named_token(token, new_label("reload")), base=TEST_CFG)
    assert run_cli(config_path, "ca", "create", "tok").returncode == 0
    assert run_cli(config_path, "init").returncode == 0
    config = load_config(config_path)
    running = open_state(config, create=False)
    reloaded = open_state(config, create=False, ledger=running.ledger)
    # One session per key however often the configuration is reloaded (HSMs bound them).
    assert reloaded.cas["tok"].key is running.cas["tok"].key
    running.close()  # the old generation lets go of its share; the new one still signs
    reloaded.cas["tok"].issue_client_certificate(common_name="after-reload")
    reloaded.close()  # the last holder: the token's session is closed
    with pytest.raises(CaError):
        reloaded.cas["tok"].issue_client_certificate(common_name="closed")
