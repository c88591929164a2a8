"""Several CAs (issue 16 items 1 and 5) without sockets: `[ca:NAME]` config, the ledger's CA
column, the expiry warning of /healthz and the `ca` commands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from python_est.ca import CertificateAuthority
from python_est.cli import main
from python_est.config import load_config
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate, SqliteLedger, UnknownSerial
from python_est.messages import HttpRequest
from python_est.ops import HealthCheck, OpsEndpoints
from python_est.ops.health import expiry_warnings

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text("[server]\nstate_dir = state\n" + text)
    return path


def test_a_ca_section_takes_the_keys_of_ca_and_a_name_of_its_own(tmp_path: Path) -> None:
    cfg = load_config(
        config_file(
            tmp_path,
            "[CAhandler]\nissuing_ca_cert = old.pem\nissuing_ca_key = old.key\n"
            "[ca:iot]\nkey_type = ec-p384\nvalidity_days = 99\nexpiry_warning_days = 7\n"
            "key_passphrase = env:IOT_PASS\n[label:b]\nca = iot\n",
        )
    )
    iot = cfg.cas["iot"]
    assert (iot.key_type, iot.validity_days, iot.expiry_warning_days) == (KeyType.EC_P384, 99, 7)
    assert iot.common_name == "python-est iot CA"
    assert iot.key_passphrase is not None and iot.key_passphrase.value == "IOT_PASS"
    # The older products' [CAhandler] keys are [ca]'s only.
    assert iot.cert_file is None and cfg.ca.cert_file is not None
    assert cfg.labels["b"].ca == "iot" and cfg.labels[""].ca == "default"
    assert cfg.ca_names == ("default", "iot")
    assert cfg.crl.for_ca("iot").path == "/crl/iot.crl"
    assert cfg.crl.for_ca("iot").file == cfg.crl.file.parent / "iot.crl"
    assert cfg.crl.for_ca("default") == cfg.crl
    assert cfg.crl.for_ca("iot").for_generation(3).path == "/crl/iot-g3.crl"
    assert cfg.crl.for_generation(2).file == cfg.crl.file.parent / "ca-g2.crl"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[ca:default]\n", "[ca:default]", "reserved"),
        ("[ca:a.b]\n", "[ca:a.b]", "letters, digits"),
        ("[ca:-x]\n", "[ca:-x]", "letters, digits"),
        ("[ca:ca]\n", "[ca:ca]", "would be the [crl] one"),
        ("[ca:ca-g2]\n", "[ca:ca-g2]", "rolled-over root"),
        ("[ca:x]\nkey_type = dsa\n", "[ca:x] key_type", "unknown key type"),
        ("[ca:x]\ncert_file = a.pem\n", "[ca:x] key_file", "given together"),
        ("[ca:x]\nbogus = 1\n", "[ca:x] bogus", "unknown key"),
        ("[label:b]\nca = nope\n", "[label:b] ca", "no CA 'nope'"),
        ("[profile]\nca = nope\n", "[profile] ca", "no CA 'nope'"),
    ],
)
def test_bad_ca_sections_and_references_name_the_key(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(tmp_path, text))
    assert where in str(caught.value) and problem in str(caught.value)


def test_crl_urls_name_each_label_s_own_ca(tmp_path: Path) -> None:
    cfg = load_config(
        config_file(
            tmp_path, "[crl]\nbase_url = https://pki.example\n[ca:iot]\n[label:b]\nca = iot\n"
        )
    )
    assert cfg.labels["b"].profile.crl_urls == ("https://pki.example/crl/iot.crl",)
    assert cfg.labels[""].profile.crl_urls == ("https://pki.example/crl/ca.crl",)


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create_root(
        common_name="Unit CA", key_type=KeyType.EC_P256, validity_days=30
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def _entry(ca: CertificateAuthority, name: str, ca_name: str) -> IssuedCertificate:
    cert, _ = ca.issue_client_certificate(common_name=name)
    return IssuedCertificate.from_certificate(
        cert, requester=name, auth_method="basic", label="", operation="simpleenroll", ca=ca_name
    )


def test_the_ledger_lists_gets_and_revokes_per_ca(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    one, two = _entry(ca, "one", "default"), _entry(ca, "two", "iot")
    ledger.record(one)
    ledger.record(two)
    assert [e.serial for e in ledger.list_certificates(ca="iot")] == [two.serial]
    assert [e.serial for e in ledger.list_certificates(ca="default")] == [one.serial]
    assert ledger.get_issued_by("iot", two.serial) == ledger.get(two.serial)
    assert ledger.get_issued_by("default", two.serial) is None
    with pytest.raises(UnknownSerial):
        ledger.revoke(two.serial, "keyCompromise", ca="default")
    assert not ledger.is_revoked(two.serial)
    revoked = ledger.revoke(two.serial, "keyCompromise", ca="iot")
    assert revoked.ca == "iot" and ledger.is_revoked(two.serial)
    assert ledger.list_certificates(ca="iot", revoked=True) == [revoked]
    assert ledger.list_certificates(ca="default", revoked=True) == []


def test_expiry_warnings_name_each_ca_within_its_days(ca: CertificateAuthority) -> None:
    ends = ca.certificate.not_valid_after_utc
    cas = {"default": ca, "iot": ca}
    assert expiry_warnings(cas, {"default": 10, "iot": 0}, ends - timedelta(days=11)) == []
    [line] = expiry_warnings(cas, {"default": 10, "iot": 0}, ends - timedelta(days=9))
    assert line.startswith("warning: CA default: CN=Unit CA expires ") and "(in 9 days)" in line
    assert len(expiry_warnings(cas, {"default": 10, "iot": 10}, ends - timedelta(days=1))) == 2


def test_healthz_stays_200_and_says_the_warning(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    near = ca.certificate.not_valid_after_utc - timedelta(days=3)
    health = HealthCheck(
        ca, ledger, None, clock=lambda: near, more_cas={"iot": ca}, expiry_warning_days={"iot": 5}
    )
    report = health.report()
    assert report.ok and len(report.warnings) == 1 and "CA iot" in report.warnings[0]
    response = OpsEndpoints(health, None).health_response(
        HttpRequest(method="GET", target="/healthz", headers=())
    )
    assert response.status == 200
    assert response.body.decode().splitlines()[0] == "ok"
    assert "warning: CA iot" in response.body.decode()


def test_a_failing_named_ca_is_named_in_healthz(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    expired = CertificateAuthority.create_root(
        common_name="Old", key_type=KeyType.EC_P256, validity_days=1
    )
    later = datetime.now(timezone.utc) + timedelta(days=2)
    report = HealthCheck(ca, ledger, None, clock=lambda: later, more_cas={"iot": expired}).report()
    assert report.failing == ("CA iot",)


def test_ca_commands_list_show_and_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(
        config_file(
            tmp_path,
            "[ca]\nkey_type = ec-p256\n[ca:iot]\nkey_type = ec-p256\n[label:b]\nca = iot\n",
        )
    )
    assert main(["-c", cfg, "ca", "list"]) == 1  # nothing exists yet
    out = capsys.readouterr().out
    assert "default\tunavailable" in out and "iot\tunavailable" in out and "ca create iot" in out
    assert main(["-c", cfg, "ca", "create", "iot"]) == 0
    assert "created CA iot" in capsys.readouterr().out
    assert main(["-c", cfg, "ca", "create", "nope"]) == 2
    assert "no [ca:nope] section" in capsys.readouterr().err
    assert main(["-c", cfg, "ca", "show", "iot"]) == 0
    shown = capsys.readouterr().out
    key = tmp_path / "state" / "cas" / "iot" / "ca.key"
    assert f"key:          file {key} (generated)" in shown
    assert "subject:      CN=python-est iot CA" in shown and "labels:       b" in shown
    assert "SHA-256:      " in shown and "CRL:          /crl/iot.crl" in shown
    assert main(["-c", cfg, "ca", "show", "nope"]) == 1
    assert "no CA 'nope'" in capsys.readouterr().err


def test_a_ca_sections_secret_sources_name_that_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from python_est.config.passphrase import read_passphrase

    monkeypatch.delenv("TOK_PIN", raising=False)
    cfg = load_config(
        config_file(
            tmp_path,
            "[ca:tok]\npkcs11_module = lib.so\npkcs11_token = t\npkcs11_key_label = k\n"
            "pkcs11_pin = env:TOK_PIN\n[ca:files]\ncert_file = c.pem\nkey_file = c.key\n"
            "key_passphrase = env:TOK_PIN\n",
        )
    )
    token = cfg.cas["tok"].pkcs11
    passphrase = cfg.cas["files"].key_passphrase
    assert token is not None and passphrase is not None
    for source, where in (
        (token.pin, "[ca:tok] pkcs11_pin"),
        (passphrase, "[ca:files] key_passphrase"),
    ):
        with pytest.raises(ConfigError) as raised:
            read_passphrase(source, cfg.source)
        assert where in str(raised.value), raised.value
