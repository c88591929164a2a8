"""The command line, called in-process with argv lists (no subprocess, no sockets)."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from python_est.cli import main
from python_est.config import load_config
from python_est.ledger import IssuedCertificate
from python_est.state import open_state


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_state_with_tight_permissions(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    out = capsys.readouterr().out
    state = cfg.parent / "state"
    assert "created CA" in out and "created ledger" in out
    assert mode(state) == 0o700
    assert mode(state / "ca") == 0o700
    assert mode(state / "ca" / "ca.key") == 0o600
    assert mode(state / "tls" / "server.key") == 0o600
    assert mode(state / "users.srp") == 0o600
    assert mode(state / "ledger.sqlite3") == 0o600
    # Idempotent: a second init keeps everything.
    before = (state / "ca" / "ca.pem").read_bytes()
    assert main(["-c", str(cfg), "init"]) == 0
    assert (state / "ca" / "ca.pem").read_bytes() == before


def test_server_certificate_names_localhost_loopback_and_extras(cfg: Path) -> None:
    assert (
        main(
            [
                "-c",
                str(cfg),
                "init",
                "--server-name",
                "est.example.net",
                "--server-name",
                "10.0.0.7",
            ]
        )
        == 0
    )
    state = open_state(load_config(cfg), create=False)
    from cryptography import x509

    san = (
        state.server.chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    assert "localhost" in dns and "est.example.net" in dns
    assert "127.0.0.1" in ips and "10.0.0.7" in ips


def test_init_refuse_existing_without_force(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    old = (cfg.parent / "state" / "ca" / "ca.pem").read_bytes()
    assert main(["-c", str(cfg), "init", "--refuse-existing"]) == 1
    assert "use --force" in capsys.readouterr().err
    assert (
        main(["-c", str(cfg), "init", "--refuse-existing", "--force", "--ca-key-type", "ec-p384"])
        == 0
    )
    assert (cfg.parent / "state" / "ca" / "ca.pem").read_bytes() != old


def test_config_error_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("[server]\nport = eighty\n")
    assert main(["-c", str(bad), "init"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}: [server] port:" in err


def test_user_admin_round_trip(
    cfg: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-pass\n"))
    assert (
        main(["-c", str(cfg), "user", "add", "dev1", "--password-stdin", "--allow", "dev1.example"])
        == 0
    )
    store = open_state(load_config(cfg), create=False).users
    assert store is not None
    assert store.check_password("dev1", "s3cret-pass")
    assert not store.check_password("dev1", "wrong")
    assert "s3cret-pass" not in (cfg.parent / "state" / "users.srp").read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("n3w-pass\n"))
    assert main(["-c", str(cfg), "user", "passwd", "dev1", "--password-stdin"]) == 0
    assert main(["-c", str(cfg), "user", "list"]) == 0
    assert "dev1\tmay request: dev1.example" in capsys.readouterr().out
    assert main(["-c", str(cfg), "user", "remove", "dev1"]) == 0
    assert main(["-c", str(cfg), "user", "remove", "dev1"]) == 1


def test_empty_password_from_stdin_is_refused(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["-c", str(cfg), "user", "add", "dev1", "--password-stdin"]) == 1


def test_certs_list_show_revoke(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = open_state(load_config(cfg), create=True)
    cert, _ = state.ca.issue_client_certificate(common_name="device-7")
    state.ledger.record(
        IssuedCertificate.from_certificate(
            cert, requester="dev1", auth_method="basic", label="", operation="simpleenroll"
        )
    )
    serial = f"{cert.serial_number:X}"
    assert main(["-c", str(cfg), "certs", "list"]) == 0
    listing = capsys.readouterr().out
    assert serial in listing and "CN=device-7" in listing and "valid" in listing
    assert main(["-c", str(cfg), "certs", "show", serial.lower()]) == 0
    assert "-----BEGIN CERTIFICATE-----" in capsys.readouterr().out
    assert main(["-c", str(cfg), "certs", "revoke", serial, "--reason", "keyCompromise"]) == 0
    assert state.ledger.is_revoked(cert.serial_number)
    assert main(["-c", str(cfg), "certs", "list", "--revoked"]) == 0
    assert "keyCompromise" in capsys.readouterr().out
    assert main(["-c", str(cfg), "certs", "revoke", "ABCDEF"]) == 1
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-7"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("nonsenseName", "csrattrs"), ("rsaEncryption=1024", "csrattrs")],
)
def test_bad_csrattrs_is_a_config_error_naming_the_label(
    tmp_path: Path, spec: str, problem: str
) -> None:
    from python_est.app import check_csrattrs
    from python_est.errors import ConfigError

    path = tmp_path / "est.cfg"
    path.write_text(f"[label:iot]\ncsrattrs = {spec}\n")
    with pytest.raises(ConfigError) as info:
        check_csrattrs(load_config(path))
    assert f"[label:iot] {problem}:" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "needed", "password", "status"),
    [
        ("", 8, "seven77", 1),
        ("", 8, "eight888", 0),
        ("[srp]\nmin_password_length = 12\n", 12, "eleven11111", 1),
        ("[srp]\nmin_password_length = 0\n", 0, "x", 0),
    ],
)
def test_user_add_and_passwd_enforce_the_minimum_password_length(
    cfg: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    needed: int,
    password: str,
    status: int,
) -> None:
    cfg.write_text(cfg.read_text() + extra)
    assert main(["-c", str(cfg), "init"]) == 0
    for command in (["user", "add", "dev1"], ["user", "passwd", "dev1"]):
        monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
        assert main(["-c", str(cfg), *command, "--password-stdin"]) == (
            status if command[1] == "add" or status == 0 else 1
        )
        err = capsys.readouterr().err
        if status:
            assert f"at least {needed} are required ([srp] min_password_length)" in err
    store = open_state(load_config(cfg), create=False).users
    assert store is not None
    assert (store.list_users() == ["dev1"]) == (status == 0)
