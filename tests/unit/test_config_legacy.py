"""Config files of the older python-est and of est_proxy: mapped, obsolete, passphrases."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_est.config import load_config
from python_est.config.model import Passphrase
from python_est.config.passphrase import read_passphrase
from python_est.errors import ConfigError

# est_proxy's documented keys (grindsa/est_proxy docs/est_proxy.cfg.md, and its openssl CA
# handler's docs/openssl.md), written as its docs show them, with ":" separators.
EST_PROXY = """\
[DEFAULT]
debug: False
connection_log: False

[Logging]
log_format: '%(asctime)s - est_proxy - %(levelname)s - %(message)s'

[ClientAuth]
address: 127.0.0.1
port: 1443
key_file: certs/est-srv.key.pem
cert_file: certs/est-srv.crt.pem

[CAhandler]
handler_file: examples/ca_handler/openssl_ca_handler.py
issuing_ca_key: ca/sub-ca-key.pem
issuing_ca_key_passphrase: Test1234
issuing_ca_cert: ca/sub-ca-cert.pem
issuing_ca_crl: ca/sub-ca-crl.pem
cert_validity_days: 30
cert_save_path: ca/certs
ca_cert_chain_list: ["ca/root-ca-cert.pem"]
openssl_conf: ca/openssl.conf
whitelist: ["foo.bar\\\\$"]
blacklist: ["host.foo.bar$"]
save_cert_as_hex: True
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "legacy.cfg"
    path.write_text(text)
    return path


def test_every_documented_est_proxy_key_is_mapped_or_named_obsolete(tmp_path: Path) -> None:
    handler = tmp_path / "examples" / "ca_handler" / "openssl_ca_handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text("class CAhandler: ...\n")
    config = load_config(write(tmp_path, EST_PROXY))
    assert (config.server.address, config.server.port) == ("127.0.0.1", 1443)
    assert config.tls.cert_file == tmp_path / "certs" / "est-srv.crt.pem"
    assert config.tls.key_file == tmp_path / "certs" / "est-srv.key.pem"
    assert config.ca.cert_file == tmp_path / "ca" / "sub-ca-cert.pem"
    assert config.ca.key_file == tmp_path / "ca" / "sub-ca-key.pem"
    assert config.ca.chain_files == (tmp_path / "ca" / "root-ca-cert.pem",)
    assert config.ca.key_passphrase == Passphrase(
        "pass", "Test1234", "CAhandler", "issuing_ca_key_passphrase"
    )
    assert "Test1234" not in repr(config)
    assert config.labels[""].profile.validity_days == 30
    assert config.ledger.export_dir == tmp_path / "ca" / "certs"
    obsolete = [w for w in config.warnings if "no longer used" in w]
    named = {w.split("] ")[1].split(":")[0] for w in obsolete}
    # Issue 18 item 1: the handler file runs, and its section's keys are its own settings.
    assert named == {"connection_log", "log_format"}
    assert config.labels[""].backend == "handler"
    assert ("whitelist", '["foo.bar\\\\$"]') in config.labels[""].handler_options
    assert any("passphrase is in the config file" in w for w in config.warnings)


def test_several_unknown_keys_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        "[CAhandler]\nhost: ca.example\nuser: est\n[RADIUS]\nserver: 10.0.0.1\n[server]\nport = 1\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert str(err.value).endswith(
        "3 unknown sections or keys: [CAhandler] host, [CAhandler] user, [RADIUS]"
    )


def test_one_unknown_key_is_named_as_before(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[server\] bogus: unknown key$"):
        load_config(write(tmp_path, "[server]\nbogus = 1\n"))


def test_the_legacy_bootstrap_endpoint_is_served_where_it_asks_with_a_warning(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, "[Bootstrap]\nendpoint = /.well-known/est/bootstrap\n"))
    assert config.bootstrap.path == "/.well-known/est/bootstrap"
    assert any("inside the EST namespace" in w for w in config.warnings)
    default = load_config(write(tmp_path, "[server]\nport = 1\n"))
    assert default.bootstrap.path == "/bootstrap"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[Bootstrap]\nendpoint = /.well-known/est/simpleenroll\n", "the EST operation"),
        ("[Bootstrap]\nendpoint = /.well-known/est/a/b\n", "one path segment"),
        ("[bootstrap]\npath = /.well-known/est/bootstrap\n", "outside /.well-known/"),
    ],
)
def test_only_the_legacy_key_may_use_the_est_namespace(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("file:ca.pass", ("file", "ca.pass")),
        ("env:CA_PASS", ("env", "CA_PASS")),
        ("credential:ca-passphrase", ("credential", "ca-passphrase")),
    ],
)
def test_key_passphrase_names_a_source(
    tmp_path: Path, value: str, expected: tuple[str, str]
) -> None:
    config = load_config(write(tmp_path, f"[ca]\nkey_passphrase = {value}\n"))
    assert config.ca.key_passphrase is not None
    kind, name = expected
    resolved = str(tmp_path / name) if kind == "file" else name
    assert (config.ca.key_passphrase.kind, config.ca.key_passphrase.value) == (kind, resolved)


@pytest.mark.parametrize("value", ["Test1234", "pass:Test1234", "env:", "credential:../x"])
def test_key_passphrase_is_never_the_passphrase_itself(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[ca\] key_passphrase: "):
        load_config(write(tmp_path, f"[ca]\nkey_passphrase = {value}\n"))


def test_est_proxy_passphrase_variable_maps_to_an_environment_variable(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[CAhandler]\nissuing_ca_key_passphrase_variable: OPENSSL_PASSPHRASE\n")
    )
    assert config.ca.key_passphrase == Passphrase(
        "env", "OPENSSL_PASSPHRASE", "CAhandler", "issuing_ca_key_passphrase_variable"
    )


def test_passphrase_sources_are_read_or_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ca.pass").write_bytes(b"s3cret\n")
    assert read_passphrase(Passphrase("file", str(tmp_path / "ca.pass")), "cfg") == b"s3cret"
    monkeypatch.setenv("CA_PASS", "from-env")
    assert read_passphrase(Passphrase("env", "CA_PASS"), "cfg") == b"from-env"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_passphrase(Passphrase("credential", "ca.pass"), "cfg") == b"s3cret"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"\[ca\] key_passphrase: .*LoadCredential=ca.pass:"):
        read_passphrase(Passphrase("credential", "ca.pass"), "cfg")
    with pytest.raises(ConfigError, match="variable NOPE is not set"):
        read_passphrase(Passphrase("env", "NOPE"), "cfg")
    with pytest.raises(ConfigError, match=r"missing\.pass does not exist"):
        read_passphrase(Passphrase("file", str(tmp_path / "missing.pass")), "cfg")
