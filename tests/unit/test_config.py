"""Config loading: the shipped file, the embedded defaults, bad files and legacy files."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_est.config import AuthMethod, default_config, load_config
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.oids import ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH
from python_est.profile import SanType

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "python_est.cfg"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text(text)
    return path


def test_shipped_config_loads_with_documented_defaults() -> None:
    config = load_config(SHIPPED)
    assert config.server.port == 8443
    assert config.server.address == "0.0.0.0"
    assert config.server.state_dir == SHIPPED.parent.parent / "state"
    assert config.srp.user_db == SHIPPED.parent.parent / "state" / "users.srp"
    assert config.ledger.path == SHIPPED.parent.parent / "state" / "ledger.sqlite3"


def test_changing_only_state_dir_of_the_shipped_config_moves_every_state_file(
    tmp_path: Path,
) -> None:
    text = SHIPPED.read_text().replace("state_dir = ../state", "state_dir = /var/lib/est")
    config = load_config(write(tmp_path, text))
    state = Path("/var/lib/est")
    assert config.srp.user_db == state / "users.srp"
    assert config.ledger.path == state / "ledger.sqlite3"
    assert config.crl.file == state / "crl" / "ca.crl"
    assert "../state" not in SHIPPED.read_text().replace("state_dir = ../state", "")
    assert config.tls.min_version == config.tls.max_version == "1.2"
    assert "3des" not in config.tls.cipher_names
    assert "rsa" not in config.tls.key_exchange_names
    assert config.warnings == ()
    default = config.labels[""]
    assert default.profile.extended_key_usage == (ID_KP_CLIENT_AUTH,)
    assert default.reenroll_auth == (frozenset({AuthMethod.CERT}),)


def test_shipped_config_documents_every_key() -> None:
    from python_est.config.keys import KNOWN_KEYS

    text = SHIPPED.read_text()
    for section in (
        "server",
        "logging",
        "ca",
        "tls",
        "srp",
        "ledger",
        "auth",
        "bootstrap",
        "profile",
    ):
        assert f"[{section}]" in text
        for key in KNOWN_KEYS[section]:
            assert f"\n{key} =" in text, f"[{section}] {key} is not documented"


def test_embedded_default_resolves_state_dir_against_base(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert config.source == "<embedded default>"
    assert config.server.state_dir == tmp_path / "state"
    assert config.ledger.path == tmp_path / "state" / "ledger.sqlite3"
    assert config.server.address == "127.0.0.1"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nstate_dir = st\n[ca]\ncert_file = a.pem\nkey_file = a.key\n")
    config = load_config(path)
    assert config.server.state_dir == tmp_path / "st"
    assert config.ca.cert_file == tmp_path / "a.pem"
    assert config.ledger.path == tmp_path / "st" / "ledger.sqlite3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[nonsense]\na = 1\n", "[nonsense]: unknown section"),
        ("[server]\nprot = 1\n", "[server] prot: unknown key"),
        ("[server]\nport = 99999\n", "[server] port: port must be 0-65535"),
        ("[server]\nport = http\n", "[server] port:"),
        ("[srp]\nenabled = maybe\n", "[srp] enabled: expected yes/no"),
        ("[ca]\nkey_type = rsa-1024\n", "[ca] key_type: unknown key type"),
        ("[tls]\ncipher_names = aes256gcm, rot13\n", "[tls] cipher_names: unknown name 'rot13'"),
        (
            "[tls]\nmin_version = 1.3\nmax_version = 1.2\n",
            "[tls] min_version: is above max_version",
        ),
        ("[tls]\ncipher_names = 3des\n", "needs allow_legacy = yes"),
        ("[tls]\nkey_exchange_names = rsa\n", "needs allow_legacy = yes"),
        ("[tls]\nmin_version = 1.0\n", "needs allow_legacy = yes"),
        ("[tls]\nkey_exchange_names = dh_anon\nallow_legacy = yes\n", "never allowed"),
        (
            "[tls]\nsrp_min_version = 1.3\nmax_version = 1.3\n",
            "SRP suites exist only up to TLS 1.2",
        ),
        ("[label:cacerts]\n", "an EST operation name"),
        ("[label:a/b]\n", "contains a slash"),
        ("[profile]\nenroll_auth = cert, password\n", "unknown auth method 'password'"),
        ("[profile]\nextended_key_usage = clientAuth, bogus\n", "unknown extendedKeyUsage"),
        ("[profile]\nkey_usage = signing\n", "unknown keyUsage"),
        ("[srp]\ngroup_bits = 1024\n", "SRP group must be"),
        ("[bootstrap]\npath = /.well-known/est/bootstrap\n", "outside /.well-known/"),
        ("[ca]\ncert_file = ca.pem\n", "must be given together"),
        ("not an ini file\n", "not a valid INI file"),
    ],
)
def test_bad_files_name_file_section_key_and_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_workers_and_shutdown_grace(tmp_path: Path) -> None:
    default = default_config(tmp_path).server
    assert (default.workers, default.shutdown_grace) == (1, 30.0)
    config = load_config(write(tmp_path, "[server]\nworkers = 4\nshutdown_grace = 2.5\n"))
    assert (config.server.workers, config.server.shutdown_grace) == (4, 2.5)
    for text in ("[server]\nworkers = 0\n", "[server]\nshutdown_grace = -1\n"):
        with pytest.raises(ConfigError, match=r"\[server\] (workers|shutdown_grace):"):
            load_config(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.cfg")


def test_legacy_settings_are_expressible_with_allow_legacy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[tls]\nmin_version = 1.0\nsrp_min_version = 1.0\n"
        "cipher_names = aes128, aes256, 3des\nsrp_cipher_names = aes128, aes256, 3des\n"
        "mac_names = sha, sha256, md5\nkey_exchange_names = rsa, dhe_rsa\nallow_legacy = yes\n",
    )
    config = load_config(path)
    joined = "\n".join(config.warnings)
    for weak in ("min_version = 1.0", "srp_min_version = 1.0", "3des", "md5", "includes rsa"):
        assert weak in joined
    assert config.tls.key_exchange_names == ("rsa", "dhe_rsa")


def test_labels_inherit_from_profile_and_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[profile]\nvalidity_days = 30\nextended_key_usage = clientAuth, serverAuth\n"
        "[label:iot]\nvalidity_days = 7\nsan_types = dns\nenroll_auth = cert+basic, srp\n"
        "require_pop = yes\napproval = manual\nserverkeygen_key_type = ec-p256\n",
    )
    config = load_config(path)
    iot = config.labels["iot"]
    assert config.labels[""].profile.validity_days == 30
    assert iot.profile.validity_days == 7
    assert iot.profile.name == "iot"
    assert iot.profile.extended_key_usage == (ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH)
    assert iot.profile.san_types == frozenset({SanType.DNS})
    assert iot.enroll_auth == (
        frozenset({AuthMethod.CERT, AuthMethod.BASIC}),
        frozenset({AuthMethod.SRP}),
    )
    assert iot.require_pop and iot.approval == "manual"
    assert iot.serverkeygen_key_type is KeyType.EC_P256


LEGACY = """\
[DEFAULT]
debug = True

[Daemon]
address = 127.0.0.1
port = 9443
key_file = certs/server.key
cert_file = certs/server.crt

[CAhandler]
handler_file = examples/ca_handler/openssl_ca_handler.py
issuing_ca_key = certs/ca-key.pem
issuing_ca_cert = certs/ca-cert.pem
ca_cert_chain_list = ["certs/ca-cert.pem"]
cert_validity_days = 30
cert_save_path = certs/issued
openssl_conf = certs/openssl.cnf

[SRP]
userdb = certs/srp_users.db

[Bootstrap]
enabled = true
endpoint = /bootstrap
"""


def test_legacy_file_maps_onto_new_settings_with_warnings(tmp_path: Path) -> None:
    handler = tmp_path / "examples" / "ca_handler" / "openssl_ca_handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text("class CAhandler: ...\n")
    config = load_config(write(tmp_path, LEGACY))
    assert config.logging.level == "debug"
    assert (config.server.address, config.server.port) == ("127.0.0.1", 9443)
    assert config.tls.cert_file == tmp_path / "certs" / "server.crt"
    assert config.tls.key_file == tmp_path / "certs" / "server.key"
    assert config.ca.cert_file == tmp_path / "certs" / "ca-cert.pem"
    assert config.ca.key_file == tmp_path / "certs" / "ca-key.pem"
    assert config.ca.chain_files == (tmp_path / "certs" / "ca-cert.pem",)
    assert config.labels[""].profile.validity_days == 30
    assert config.ledger.export_dir == tmp_path / "certs" / "issued"
    assert config.srp.user_db == tmp_path / "certs" / "srp_users.db"
    assert config.bootstrap.enabled and config.bootstrap.path == "/bootstrap"
    # Issue 18 item 1: the handler file is run, and [CAhandler] is its configuration.
    assert config.warnings == ()
    default = config.labels[""]
    assert default.backend == "handler"
    assert default.handler_file == tmp_path / "examples" / "ca_handler" / "openssl_ca_handler.py"
    assert ("openssl_conf", "certs/openssl.cnf") in default.handler_options


def test_legacy_handler_file_that_is_missing_falls_back_to_the_embedded_ca(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, LEGACY))
    assert config.labels[""].backend == "embedded"
    assert any("handler_file" in w and "does not exist" in w for w in config.warnings)
    assert any("openssl_conf: no longer used" in w for w in config.warnings)


def test_new_sections_win_over_legacy_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[Daemon]\nport = 9443\n[server]\nport = 8444\n"))
    assert config.server.port == 8444


def test_ledger_url_selects_postgresql_and_defaults_to_sqlite(tmp_path: Path) -> None:
    assert default_config(tmp_path).ledger.url == ""
    assert default_config(tmp_path).ledger.pool_size == 8
    path = write(tmp_path, "[ledger]\nurl = postgresql://est@127.0.0.1:5432/est\npool_size = 3\n")
    config = load_config(path)
    assert config.ledger.url == "postgresql://est@127.0.0.1:5432/est"
    assert config.ledger.pool_size == 3


@pytest.mark.parametrize("url", ["mysql://db/est", "127.0.0.1:5432", "sqlite:///x.db"])
def test_ledger_url_must_be_postgresql(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"\[ledger\] url: must be a postgresql://"):
        load_config(write(tmp_path, f"[ledger]\nurl = {url}\n"))


def test_metrics_and_crl_defaults(tmp_path: Path) -> None:
    config = default_config(tmp_path)
    assert (config.metrics.enabled, config.metrics.address, config.metrics.port) == (
        False,
        "127.0.0.1",
        9464,
    )
    crl = config.crl
    assert crl.enabled and crl.path == "/crl/ca.crl" and crl.validity_hours == 168
    assert crl.file == tmp_path / "state" / "crl" / "ca.crl"
    assert crl.base_url == "" and crl.url is None
    assert all(label.profile.crl_urls == () for label in config.labels.values())


def test_shipped_config_documents_metrics_and_crl_keys() -> None:
    from python_est.config.keys import KNOWN_KEYS

    config = load_config(SHIPPED)
    assert not config.metrics.enabled and config.crl.enabled
    assert config.crl.file == SHIPPED.parent.parent / "state" / "crl" / "ca.crl"
    text = SHIPPED.read_text()
    for section in ("metrics", "crl"):
        assert f"[{section}]" in text
        for key in KNOWN_KEYS[section]:
            assert f"\n{key} =" in text, f"[{section}] {key} is not documented"


def test_crl_base_url_puts_a_distribution_point_in_every_label(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[metrics]\nenabled = yes\naddress = 0.0.0.0\nport = 0\n"
        "[crl]\nbase_url = https://est.example.net:8443/\npath = /pki/est.crl\n"
        "file = out/est.crl\nvalidity_hours = 48\n[label:iot]\nvalidity_days = 7\n",
    )
    config = load_config(path)
    assert (config.metrics.enabled, config.metrics.address, config.metrics.port) == (
        True,
        "0.0.0.0",
        0,
    )
    assert config.crl.file == tmp_path / "out" / "est.crl"
    assert config.crl.validity_hours == 48
    url = "https://est.example.net:8443/pki/est.crl"
    assert config.crl.url == url
    assert config.labels[""].profile.crl_urls == (url,)
    assert config.labels["iot"].profile.crl_urls == (url,)
    assert config.labels["iot"].profile.validity_days == 7


def test_a_disabled_crl_is_never_named_in_certificates(tmp_path: Path) -> None:
    path = write(tmp_path, "[crl]\nenabled = no\nbase_url = https://est.example.net\n")
    config = load_config(path)
    assert config.crl.url is None
    assert config.labels[""].profile.crl_urls == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[crl]\nbase_url = ftp://est.example.net\n", "[crl] base_url: must be an http"),
        ("[crl]\nbase_url = https://est.example.net/?x=1\n", "[crl] base_url: must be an http"),
        ("[crl]\nbase_url = https://est.example.net:99999\n", "[crl] base_url:"),
        ("[crl]\nbase_url = https://\n", "[crl] base_url: must be an http"),
        ("[crl]\npath = crl.der\n", "[crl] path: must be an absolute path"),
        ("[crl]\npath = /healthz\n", "[crl] path: /healthz is taken"),
        ("[crl]\npath = /bootstrap\n", "[crl] path: /bootstrap is taken"),
        ("[crl]\nvalidity_hours = 0\n", "[crl] validity_hours: must be a positive"),
        ("[crl]\ncolour = blue\n", "[crl] colour: unknown key"),
        ("[metrics]\nport = 70000\n", "[metrics] port: port must be 0-65535"),
        ("[metrics]\naddress = localhorst\n", "[metrics] address:"),
        ("[metrics]\nenabled = perhaps\n", "[metrics] enabled: expected yes/no"),
    ],
)
def test_bad_metrics_and_crl_settings_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)


def test_proxy_protocol_is_off_by_default_and_names_its_proxies(tmp_path: Path) -> None:
    import ipaddress

    default = default_config(tmp_path).server
    assert (default.proxy_protocol, default.trusted_proxies) == (False, ())
    assert load_config(SHIPPED).server.proxy_protocol is False
    config = load_config(
        write(
            tmp_path,
            "[server]\nproxy_protocol = yes\n"
            "trusted_proxies = 127.0.0.1, 10.0.0.0/8, 2001:db8::/64\n",
        )
    )
    assert config.server.proxy_protocol is True
    assert config.server.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/64"),
    )
    # Listing proxies without turning the protocol on is allowed (and changes nothing).
    listed = load_config(write(tmp_path, "[server]\ntrusted_proxies = 192.0.2.1\n"))
    assert listed.server.proxy_protocol is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nproxy_protocol = yes\n", "[server] trusted_proxies: must be set when"),
        ("[server]\nproxy_protocol = yes\ntrusted_proxies =\n", "[server] trusted_proxies:"),
        ("[server]\nproxy_protocol = maybe\n", "[server] proxy_protocol: expected yes/no"),
        ("[server]\ntrusted_proxies = 10.0.0.1/8\n", "[server] trusted_proxies: not an address"),
        ("[server]\ntrusted_proxies = haproxy.local\n", "[server] trusted_proxies: not an"),
        ("[server]\ntrusted_proxies = 10.0.0.0/33\n", "[server] trusted_proxies: not an"),
    ],
)
def test_bad_proxy_protocol_settings_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_pending_retry_after_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[server]\npending_retry_after = 5\n"))
    assert config.server.pending_retry_after == 5
    with pytest.raises(ConfigError, match=r"\[server\] pending_retry_after"):
        load_config(write(tmp_path, "[server]\npending_retry_after = 0\n"))


def test_auth_lockout_thresholds_are_read(tmp_path: Path) -> None:
    default = default_config(tmp_path).auth
    assert (default.max_failures, default.account_max_failures, default.address_max_failures) == (
        5,
        20,
        30,
    )
    assert default.known_good == 30 * 86400
    text = "[auth]\naccount_max_failures = 50\naddress_max_failures = 200\nknown_good = 3600\n"
    config = load_config(write(tmp_path, text)).auth
    assert (config.account_max_failures, config.address_max_failures, config.known_good) == (
        50,
        200,
        3600,
    )
    for key in ("account_max_failures", "address_max_failures", "known_good"):
        with pytest.raises(ConfigError, match=rf"\[auth\] {key}"):
            load_config(write(tmp_path, f"[auth]\n{key} = 0\n"))


def test_base64_lines_is_read_per_label(tmp_path: Path) -> None:
    text = "[profile]\nbase64_lines = single\n[label:libest]\nbase64_lines = wrapped\n[label:x]\n"
    labels = load_config(write(tmp_path, text)).labels
    assert (labels[""].base64_lines, labels["libest"].base64_lines) == ("single", "wrapped")
    assert labels["x"].base64_lines == "single"  # inherited from [profile]
    assert load_config(write(tmp_path, "")).labels[""].base64_lines == "auto"
    with pytest.raises(ConfigError, match=r"\[label:x\] base64_lines"):
        load_config(write(tmp_path, "[label:x]\nbase64_lines = 76\n"))


def test_label_sections_name_any_path_segment(tmp_path: Path) -> None:
    # configparser takes everything between the brackets; `[label:ca:1]` is the label `ca:1`.
    text = "[label:ca:1]\nvalidity_days = 7\n[label:ops@site;v=2]\n[label:%]\n"
    labels = load_config(write(tmp_path, text)).labels
    assert set(labels) == {"", "ca:1", "ops@site;v=2", "%"}
    assert labels["ca:1"].profile.validity_days == 7
    for bad, reason in (("..", "dot segment"), ("a b", "white space"), ("", "1 to 128")):
        with pytest.raises(ConfigError, match=reason):
            load_config(write(tmp_path, f"[label:{bad}]\n"))


def test_header_timeout_and_the_per_address_share(tmp_path: Path) -> None:
    default = default_config(tmp_path).server
    assert default.header_timeout == 10.0
    # A quarter of the workers per address: holding all 64 takes four addresses.
    assert (default.max_connections, default.max_connections_per_address) == (64, 16)
    shipped = load_config(SHIPPED).server
    assert (shipped.header_timeout, shipped.max_connections_per_address) == (10.0, 16)
    text = "[server]\nheader_timeout = 2.5\nmax_connections = 20\n"
    config = load_config(write(tmp_path, text)).server
    assert (config.header_timeout, config.max_connections_per_address) == (2.5, 5)
    assert (
        load_config(
            write(tmp_path, "[server]\nmax_connections = 3\n")
        ).server.max_connections_per_address
        == 1
    )
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match=r"\[server\] header_timeout:"):
            load_config(write(tmp_path, f"[server]\nheader_timeout = {bad}\n"))


def test_ocsp_defaults_and_the_shipped_config_documents_every_key(tmp_path: Path) -> None:
    from python_est.config.keys import KNOWN_KEYS

    ocsp = load_config(write(tmp_path, "")).ocsp
    assert ocsp.enabled and ocsp.path == "/ocsp" and ocsp.validity_minutes == 60
    assert ocsp.signer == "ca" and ocsp.url is None and not ocsp.http_enabled
    assert load_config(SHIPPED).ocsp == ocsp
    text = SHIPPED.read_text()
    assert "[ocsp]" in text
    for key in KNOWN_KEYS["ocsp"]:
        assert f"\n{key} =" in text, f"[ocsp] {key} is not documented"


def test_ocsp_base_url_puts_the_responder_in_every_label(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[ocsp]\nbase_url = http://ocsp.example.net:8080/\npath = /status\nsigner = delegated\n"
        "validity_minutes = 5\nhttp_enabled = yes\nhttp_address = ::1\nhttp_port = 0\n"
        "[label:iot]\nvalidity_days = 7\n",
    )
    config = load_config(path)
    url = "http://ocsp.example.net:8080/status"
    assert config.ocsp.url == url
    assert config.labels[""].profile.ocsp_urls == (url,)
    assert config.labels["iot"].profile.ocsp_urls == (url,)
    assert (config.ocsp.signer, config.ocsp.validity_minutes) == ("delegated", 5)
    assert (config.ocsp.http_enabled, config.ocsp.http_address, config.ocsp.http_port) == (
        True,
        "::1",
        0,
    )
    disabled = load_config(write(tmp_path, "[ocsp]\nenabled = no\nbase_url = http://o.example\n"))
    assert disabled.ocsp.url is None and disabled.labels[""].profile.ocsp_urls == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ocsp]\npath = /\n", "[ocsp] path: / is taken"),
        ("[ocsp]\npath = /healthz\n", "[ocsp] path: /healthz is taken"),
        ("[ocsp]\npath = /crl\n", "[ocsp] path: /crl is taken"),  # would cover /crl/ca.crl
        ("[ocsp]\npath = /.well-known/est/ocsp\n", "[ocsp] path: must be an absolute path"),
        ("[ocsp]\nsigner = hsm\n", "[ocsp] signer:"),
        ("[ocsp]\nvalidity_minutes = 0\n", "[ocsp] validity_minutes: must be a positive"),
        ("[ocsp]\nhttp_port = 70000\n", "[ocsp] http_port: port must be 0-65535"),
        ("[ocsp]\nbase_url = ftp://o.example\n", "[ocsp] base_url: must be an http"),
    ],
)
def test_bad_ocsp_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
