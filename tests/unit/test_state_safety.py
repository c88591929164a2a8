"""Only `init` and a first `serve` create state; nothing replaces a CA that issued certificates.

Each destructive path of issue 15 item 4 has a test here showing that nothing is created,
replaced or lost, and that the message names the state path and the next command.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

from python_est.cli import main
from python_est.config import load_config
from python_est.errors import LedgerError
from python_est.ledger import IssuedCertificate, SqliteLedger
from python_est.ops import HealthCheck
from python_est.state import open_state


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text("[server]\nstate_dir = state\nport = 0\n[ca]\nkey_type = ec-p256\n")
    return path


def files_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


ADMIN_COMMANDS = [
    ["user", "list"],
    ["user", "add", "dev1", "--password-stdin"],
    ["user", "remove", "dev1"],
    ["user", "import", "openssl", "srpvfile"],
    ["certs", "list"],
    ["certs", "show", "01"],
    ["certs", "revoke", "01"],
    ["certs", "crl"],
    ["requests", "list"],
    ["lockouts", "list"],
    ["ledger", "verify"],
    ["kek", "add", "k1"],
    ["kek", "list"],
    ["kek", "remove", "k1"],
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_admin_commands_create_nothing_and_name_init(
    cfg: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    before = files_under(cfg.parent)
    assert main(["-c", str(cfg), *command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(cfg.parent / "state") in err
    assert f"`python-est -c {cfg} init`" in err
    assert files_under(cfg.parent) == before


def test_without_c_the_message_names_the_folder_and_plain_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["user", "list"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "check -c" in err and "`python-est init`" in err
    assert files_under(tmp_path) == []


def test_db_upgrade_creates_no_ledger(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(cfg), "db", "upgrade"]) == 1
    assert f"`python-est -c {cfg} init`" in capsys.readouterr().err
    assert files_under(cfg.parent / "state") == []


def issue_one(cfg: Path) -> None:
    with open_state(load_config(cfg), create=False) as state:
        cert, _ = state.ca.issue_client_certificate(common_name="device-7")
        state.ledger.record(
            IssuedCertificate.from_certificate(
                cert, requester="dev1", auth_method="basic", label="", operation="simpleenroll"
            )
        )


@pytest.mark.parametrize(
    "command", [["init"], ["init", "--force"], ["serve"]], ids=lambda c: " ".join(c)
)
def test_a_ledger_with_certificates_and_no_ca_key_gets_no_new_root(
    cfg: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    issue_one(cfg)
    shutil.rmtree(cfg.parent / "state" / "ca")
    capsys.readouterr()
    assert main(["-c", str(cfg), *command]) in (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    if command == ["serve"]:
        # serve points at init, and init (above) refuses: the chain ends at the backup.
        assert "no CA yet" in err and "init" in err
    else:
        assert "ledger holds 1 certificate(s)" in err and "restore ca/ca.key" in err
    assert not (cfg.parent / "state" / "ca").exists()


def test_a_lost_ca_key_beside_its_certificate_is_refused(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    issue_one(cfg)
    ca_pem = cfg.parent / "state" / "ca" / "ca.pem"
    before = ca_pem.read_bytes()
    (cfg.parent / "state" / "ca" / "ca.key").unlink()
    capsys.readouterr()
    for command in (["init"], ["init", "--force"], ["serve"]):
        assert main(["-c", str(cfg), *command]) in (1, 2)
        assert "ca.key is missing" in capsys.readouterr().err
    assert ca_pem.read_bytes() == before
    assert not (cfg.parent / "state" / "ca" / "ca.key").exists()


def test_an_empty_ledger_without_ca_may_start_over(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(cfg), "init"]) == 0
    shutil.rmtree(cfg.parent / "state" / "ca")
    assert main(["-c", str(cfg), "init"]) == 0
    assert "created CA" in capsys.readouterr().out


def test_a_first_start_cut_short_names_init_which_completes_it(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if the first start died after writing the CA: the next start must not guess.
    assert main(["-c", str(cfg), "init"]) == 0
    state = cfg.parent / "state"
    shutil.rmtree(state / "tls")
    (state / "ledger.sqlite3").unlink()
    capsys.readouterr()
    assert main(["-c", str(cfg), "serve"]) == 2
    assert f"run `python-est -c {cfg} init`" in capsys.readouterr().err
    assert not (state / "tls").exists()
    assert main(["-c", str(cfg), "init"]) == 0
    out = capsys.readouterr().out
    assert "created TLS server certificate" in out and "created ledger" in out


def test_a_deleted_ledger_file_refuses_writes_and_fails_health(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    with open_state(load_config(cfg), create=True) as state:
        health = HealthCheck(state.ca, state.ledger, state.users, cache_seconds=0)
        assert health.report().ok
        shutil.rmtree(tmp_path / "state")
        cert, _ = state.ca.issue_client_certificate(common_name="device-8")
        entry = IssuedCertificate.from_certificate(
            cert, requester="dev1", auth_method="basic", label="", operation="simpleenroll"
        )
        with pytest.raises(LedgerError) as raised:
            state.ledger.record(entry)
        assert raised.value.status == 500
        assert "ledger" in health.report().failing
    assert not (tmp_path / "state").exists()


def test_a_replaced_ledger_file_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with SqliteLedger(path) as ledger:
        path.rename(tmp_path / "moved.sqlite3")
        SqliteLedger(path).close()  # a different file under the same name
        with pytest.raises(LedgerError):
            ledger.probe()
