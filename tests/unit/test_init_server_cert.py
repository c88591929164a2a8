"""`init --server-cert` follows `[server] server_names`; the check that warns at start."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from python_est.ca import CertificateAuthority
from python_est.cli import main
from python_est.config import load_config
from python_est.keys import KeyType
from python_est.state import open_state
from python_est.state.guards import missing_server_names


def sans(cfg: Path) -> list[str]:
    with open_state(load_config(cfg), create=False) as state:
        ext = state.server.chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return [str(name.value) for name in ext.value]


def test_server_cert_reissues_for_changed_server_names_and_keeps_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    base = "[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n"
    cfg.write_text(base)
    assert main(["-c", str(cfg), "init"]) == 0
    ca_before = (tmp_path / "state" / "ca" / "ca.pem").read_bytes()
    assert "est.example.net" not in sans(cfg)
    cfg.write_text(base.replace("[ca]", "server_names = est.example.net, 192.0.2.10\n[ca]"))
    with open_state(load_config(cfg), create=False) as state:
        old = state.server.chain[0]
    assert missing_server_names(load_config(cfg), old) == ["est.example.net", "192.0.2.10"]
    capsys.readouterr()
    assert main(["-c", str(cfg), "init", "--server-cert"]) == 0
    out = capsys.readouterr().out
    assert "new server certificate" in out and "systemctl reload python-est" in out
    assert "est.example.net" in sans(cfg) and "192.0.2.10" in sans(cfg)
    assert (tmp_path / "state" / "ca" / "ca.pem").read_bytes() == ca_before
    with open_state(load_config(cfg), create=False) as state:
        assert missing_server_names(load_config(cfg), state.server.chain[0]) == []


def test_server_cert_without_state_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = state\n")
    assert main(["-c", str(cfg), "init", "--server-cert"]) == 2
    assert f"`python-est -c {cfg} init`" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [cfg]


def test_server_cert_leaves_a_configured_certificate_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[tls]\ncert_file = mine.pem\nkey_file = mine.key\n")
    assert main(["-c", str(cfg), "init", "--server-cert"]) == 1
    assert "[tls] cert_file names your own server certificate" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [cfg]


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        ("est.example.net", []),
        ("EST.Example.NET", []),
        ("a.wild.example", []),
        ("a.b.wild.example", ["a.b.wild.example"]),
        ("192.0.2.10, 2001:db8::1", ["2001:db8::1"]),
        ("other.example, est.example.net", ["other.example"]),
    ],
)
def test_missing_server_names(tmp_path: Path, names: str, missing: list[str]) -> None:
    ca = CertificateAuthority.create(common_name="N", key_type=KeyType.EC_P256, validity_days=1)
    cert, _ = ca.issue_server_certificate(
        common_name="est.example.net",
        dns_names=["est.example.net", "*.wild.example"],
        ip_addresses=[ipaddress.ip_address("192.0.2.10")],
        key_type=KeyType.EC_P256,
        validity_days=1,
    )
    cfg = tmp_path / "est.cfg"
    cfg.write_text(f"[server]\nserver_names = {names}\n")
    assert missing_server_names(load_config(cfg), cert) == missing
