"""Migration: the older tlslite-based python-est and est_proxy start on their own files.

Each test builds the legacy layout at run time (keys and certificates from `cryptography`, the
SRP users with tlslite's own `VerifierDB`), starts the server exactly as `python-est serve` does
(`open_state` then `build_server`), and enrolls over real TLS.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from tlslite.verifierdb import VerifierDB

from est_harness import basic, build_request, csr_body, https, make_csr, srp
from python_est.app import build_server
from python_est.cli import main
from python_est.config import Config, load_config
from python_est.errors import ConfigError
from python_est.state import open_state
from tests.conftest import captured_records

# pranavkumaarofficial/python-est, python_est.cfg at commit 07064d0 (the tlslite-based server
# before the FastAPI rewrite), byte for byte: note the two spaces after 0.0.0.0 and no final
# newline.
OLDER_PYTHON_EST_CFG = (
    b"[DEFAULT]\ndebug = True\n\n[Daemon]\naddress = 0.0.0.0  \nport = 8443\n"
    b"key_file = certs/server.key\ncert_file = certs/server.crt\n\n[CAhandler]\n"
    b"handler_file = python_est/handlers/openssl_ca_handler_fixed.py\n"
    b"issuing_ca_key = certs/ca-key.pem\nissuing_ca_cert = certs/ca-cert.pem\n"
    b'ca_cert_chain_list = ["certs/ca-cert.pem"]\ncert_validity_days = 365\n'
    b"openssl_conf = python_est/config/openssl.conf\ncert_save_path = certs/issued/\n\n"
    b"[SRP]\nuserdb = certs/srp_users.db\n\n[Bootstrap]\nenabled = true\n"
    b"endpoint = /.well-known/est/bootstrap"
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[str, rsa.RSAPrivateKey] | None, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: rsa.RSAPrivateKey, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
    )


def write_pki(
    certs: Path, names: dict[str, str], ca_cn: str, password: bytes | None = None
) -> x509.Certificate:
    """A CA and a server certificate (CN=localhost, no SAN) as `openssl req`/`x509` made them."""
    certs.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = _certificate(ca_cn, ca_key, None, ca=True)
    server_cert = _certificate("localhost", server_key, (ca_cn, ca_key), ca=False)
    (certs / names["ca_key"]).write_bytes(_pem_key(ca_key, password))
    (certs / names["ca_cert"]).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (certs / names["server_key"]).write_bytes(_pem_key(server_key))
    (certs / names["server_cert"]).write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return ca_cert


@contextmanager
def serving(config: Config) -> Iterator[int]:
    """Start the server `python-est serve` would start, on a free loopback port."""
    # The only change to the loaded file: its fixed 0.0.0.0:8443 cannot be bound by a test.
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, address="127.0.0.1", port=0)
    )
    with open_state(config, create=True) as state:
        server = build_server(config, state)
        thread = server.start_in_thread()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown(grace=2.0)
            thread.join(timeout=5)


def older_python_est(root: Path) -> tuple[Path, dict[str, bytes]]:
    certs = root / "certs"
    write_pki(
        certs,
        {
            "ca_key": "ca-key.pem",
            "ca_cert": "ca-cert.pem",
            "server_key": "server.key",
            "server_cert": "server.crt",
        },
        "Python-EST Root CA",
    )
    (certs / "issued").mkdir()
    # As its create_srp_users.py did: tlslite's VerifierDB, 1024-bit group for its users.
    db = VerifierDB(str(certs / "srp_users.db"))
    db.create()
    db["testuser"] = VerifierDB.makeVerifier("testuser", "testpass123", 1024)
    db["device001"] = VerifierDB.makeVerifier("device001", "SecureP@ss001", 2048)
    db.db.close()
    cfg = root / "python_est.cfg"
    cfg.write_bytes(OLDER_PYTHON_EST_CFG)
    files = {p.name: p.read_bytes() for p in certs.glob("srp_users.db*")}
    return cfg, files


def test_the_older_python_est_starts_on_its_own_files_and_its_users_enroll(
    tmp_path: Path,
) -> None:
    cfg, verifierdb = older_python_est(tmp_path)
    assert sorted(verifierdb) == ["srp_users.db.bak", "srp_users.db.dat", "srp_users.db.dir"]
    config = load_config(cfg)
    assert any("inside the EST namespace" in w for w in config.warnings)
    with captured_records("python_est", logging.WARNING) as records, serving(config) as port:
        weak = [r.getMessage() for r in records if "weak" in r.getMessage()]
        assert weak == [
            "user 'testuser' has a weak 1024-bit SRP group; `python-est user passwd testuser` "
            "moves it to 2048 bits"
        ]
        csr, _ = make_csr("testuser")
        request = build_request(
            "POST",
            "/.well-known/est/simpleenroll",
            csr_body(csr),
            {"Content-Type": "application/pkcs10"},
            port,
        )
        reply = srp(port, "testuser", "testpass123", request)
        assert reply.status == 200, reply.body
        [issued] = reply.certificates()
        assert issued.issuer == _name("Python-EST Root CA")
        page = srp(
            port,
            "device001",
            "SecureP@ss001",
            build_request("GET", "/.well-known/est/bootstrap", port=port),
        )
        assert page.status == 200 and b"<form" in page.body
    # The VerifierDB is read, never changed, and no store was made beside it.
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "certs").glob("srp_users.db*")
    } == verifierdb
    assert (tmp_path / "state" / "users.srp").exists()
    assert len(list((tmp_path / "certs" / "issued").glob("*.pem"))) == 1


def test_a_verifierdb_missed_by_the_first_start_stops_start_up_with_the_import_command(
    tmp_path: Path,
) -> None:
    cfg, verifierdb = older_python_est(tmp_path)
    config = load_config(cfg)
    # The CA and ledger exist (an earlier start), the store does not.
    (tmp_path / "state").mkdir(mode=0o700)
    open_state(
        dataclasses.replace(config, srp=dataclasses.replace(config.srp, enabled=False))
    ).close()
    with pytest.raises(ConfigError) as err:
        open_state(config, create=False)
    assert str(err.value).endswith(
        f"[SRP] userdb: {tmp_path}/certs/srp_users.db is a tlslite VerifierDB not imported into "
        f"{tmp_path}/state/users.srp yet: run "
        f"`python-est -c {cfg} user import tlslite {tmp_path}/certs/srp_users.db`"
    )
    assert not (tmp_path / "state" / "users.srp").exists()
    assert not (tmp_path / "certs" / "srp_users.db").exists()
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "certs").glob("srp_users.db*")
    } == verifierdb


def test_the_printed_import_command_brings_the_users_and_start_up_then_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, verifierdb = older_python_est(tmp_path)
    config = load_config(cfg)
    (tmp_path / "state").mkdir(mode=0o700)
    open_state(
        dataclasses.replace(config, srp=dataclasses.replace(config.srp, enabled=False))
    ).close()
    source = tmp_path / "certs" / "srp_users.db"
    # Exactly the command start-up printed above (python-est -c CFG user import tlslite PATH).
    assert main(["-c", str(cfg), "user", "import", "tlslite", str(source)]) == 0
    capsys.readouterr()
    with open_state(config, create=False) as state:
        assert state.users is not None
        assert sorted(state.users.list_users()) == ["device001", "testuser"]
        assert state.users.check_password("device001", "SecureP@ss001")
        assert not state.users.check_password("device001", "wrong")
    # The VerifierDB itself is never written.
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "certs").glob("srp_users.db*")
    } == verifierdb


def test_a_gdbm_verifierdb_without_the_module_names_the_package_and_creates_nothing(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "python_est.cfg"
    cfg.write_text("[SRP]\nuserdb = srp_users.db\n[ca]\nkey_type = ec-p256\n")
    # A gdbm file starts with its magic number (native byte order); whichdb recognises it
    # without the module.
    (tmp_path / "srp_users.db").write_bytes(struct.pack("=l", 0x13579ACE) + bytes(60))
    try:
        import dbm.gnu  # noqa: F401
    except ImportError:
        with pytest.raises(
            ConfigError, match=r"\[SRP\] userdb: .*install the package python3-gdbm"
        ):
            open_state(load_config(cfg), create=True)
    else:
        with pytest.raises(ConfigError, match=r"\[SRP\] userdb: "):
            open_state(load_config(cfg), create=True)
    assert not (tmp_path / "state").exists()


EST_PROXY_CFG = """\
[DEFAULT]
debug: False
connection_log: False

[Logging]
log_format: '%(asctime)s - est_proxy - %(levelname)s - %(message)s'

[Daemon]
address = 0.0.0.0
port = 9443
key_file = certs/est-srv.key.pem
cert_file = certs/est-srv.crt.pem

[CAhandler]
handler_file: examples/ca_handler/openssl_ca_handler.py
issuing_ca_key: ca/sub-ca-key.pem
issuing_ca_key_passphrase: Test1234
issuing_ca_cert: ca/sub-ca-cert.pem
issuing_ca_crl: ca/sub-ca-crl.pem
cert_validity_days: 30
cert_save_path: ca/certs
ca_cert_chain_list: []
save_cert_as_hex: True
"""


def est_proxy(root: Path, cfg_text: str) -> tuple[Path, x509.Certificate]:
    root.mkdir(parents=True, exist_ok=True)
    ca_cert = write_pki(
        root / "ca",
        {
            "ca_key": "sub-ca-key.pem",
            "ca_cert": "sub-ca-cert.pem",
            "server_key": "unused.key",
            "server_cert": "unused.crt",
        },
        "est_proxy test CA",
        password=b"Test1234",
    )
    # est_proxy's server certificate came from elsewhere; here the same CA signs it, with the
    # loopback address a client verifies.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = serialization.load_pem_private_key(
        (root / "ca" / "sub-ca-key.pem").read_bytes(), b"Test1234"
    )
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    now = datetime.datetime.now(datetime.timezone.utc)
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("est.example"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (root / "certs").mkdir()
    (root / "certs" / "est-srv.key.pem").write_bytes(_pem_key(key))
    (root / "certs" / "est-srv.crt.pem").write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
    )
    cfg = root / "est_proxy.cfg"
    cfg.write_text(cfg_text)
    return cfg, ca_cert


@pytest.mark.parametrize("source", ["est_proxy's key", "systemd credential"])
def test_est_proxy_starts_with_an_encrypted_ca_key_and_enrolls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    text = EST_PROXY_CFG
    if source == "systemd credential":
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "ca-passphrase").write_text("Test1234\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
        text = (
            text.replace("issuing_ca_key_passphrase: Test1234\n", "")
            + "\n[ca]\nkey_passphrase = credential:ca-passphrase\n"
        )
    cfg, ca_cert = est_proxy(tmp_path, text)
    config = load_config(cfg)
    with serving(config) as port:
        with open_state(config, create=False) as state:
            assert state.users is not None
            state.users.add("device1", "device1-password")
        csr, _ = make_csr("device1")
        request = build_request(
            "POST",
            "/.well-known/est/simpleenroll",
            csr_body(csr),
            {
                "Content-Type": "application/pkcs10",
                "Authorization": basic("device1", "device1-password"),
            },
            port,
        )
        reply = https(port, request, cafile=cfg.parent / "ca" / "sub-ca-cert.pem")
        assert reply.status == 200, reply.body
        [issued] = reply.certificates()
        assert issued.issuer == ca_cert.subject
    assert len(list((tmp_path / "ca" / "certs").glob("*.pem"))) == 1


def test_an_encrypted_ca_key_without_its_passphrase_stops_start_up_and_creates_nothing(
    tmp_path: Path,
) -> None:
    cfg, _ = est_proxy(tmp_path, EST_PROXY_CFG.replace("issuing_ca_key_passphrase: Test1234\n", ""))
    with pytest.raises(ConfigError, match=r"encrypted; set \[ca\] key_passphrase"):
        open_state(load_config(cfg), create=True)
    assert not (tmp_path / "state" / "ca").exists()
    wrong = EST_PROXY_CFG.replace("passphrase: Test1234", "passphrase: wrong")
    cfg.write_text(wrong)
    with pytest.raises(ConfigError, match="does not open with the passphrase"):
        open_state(load_config(cfg), create=True)
