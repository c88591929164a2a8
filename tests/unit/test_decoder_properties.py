"""Property tests for the decoders that test_wire.py and test_http11.py do not cover.

The rule for each: any input either decodes or raises the project's own error for it
(`EstError` for what a client sends, `ConfigError` for the INI file, `UserStoreError` for the
user store and imported verifier files, `ValueError` where the contract says so), never
anything else. Start-up values must also be usable: a timeout the loader accepts must be one a
socket accepts.
"""

from __future__ import annotations

import base64
import configparser
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from python_est.bootstrap import Form, parse_form
from python_est.config import Config, load_config
from python_est.errors import AuthenticationRequired, ConfigError, EstError, UserStoreError
from python_est.messages import HttpRequest
from python_est.policy import BasicCredentials, PeerIdentity, TlsInfo, parse_basic_authorization
from python_est.server.outcome import audit_refusal
from python_est.tls import Route, classify_client_hello
from python_est.tls.hello import srp_username
from python_est.users.fileformat import decode as decode_user_store
from python_est.users.imports import parse_openssl_srpvfile

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLE_CFG = Path(__file__).resolve().parents[2] / "config" / "python_est.cfg"


def _documented_keys() -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    parser.read(SAMPLE_CFG)
    keys = [(section, key) for section in parser.sections() for key in parser[section]]
    # The older product's sections, which the loader translates.
    keys += [("DEFAULT", "debug"), ("Daemon", "port"), ("SRP", "userdb"), ("CAhandler", "x")]
    keys += [("label:iot", "validity_days"), ("label:iot", "csrattrs"), ("label:", "x")]
    return keys


KEYS = _documented_keys()
TRICKY_VALUES = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "10",
    "0.5",
    "1e309",
    "inf",
    "-inf",
    "nan",
    "1e30",
    "2**40",
    "99999999999999999999",
    "65536",
    "yes",
    "no",
    "true",
    "maybe",
    "1.0",
    "1.1",
    "1.2",
    "1.3",
    "rsa-2048",
    "ec-p256",
    "rsa-1024",
    "aes256gcm",
    "3des",
    "rsa",
    "md5",
    "aead, sha256",
    "cert, srp, basic",
    "cert+basic",
    "any",
    "own",
    "manual",
    "auto",
    "/bootstrap",
    "bootstrap",
    "../state",
    "/x/y",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "localhost",
    "example.com",
    "a b",
    "clientAuth",
    "1.2.3.4",
    "2.5.29.37",
    "digital_signature",
    "dns, ip",
    "challengePassword",
    "id-ecPublicKey=secp384r1",
    "extensionRequest=macAddress",
    '["a", "b"]',
    "%(x)s",
    "\u00e9t\u00e9",
    "\t",
    "plain",
    "json",
    "debug",
    "x" * 300,
]
VALUES = st.sampled_from(TRICKY_VALUES) | st.text(max_size=30).filter(
    lambda text: "\n" not in text and "\r" not in text
)


@st.composite
def ini_texts(draw: st.DrawFn) -> str:
    """INI text built from the documented sections and keys with tricky values."""
    lines: list[str] = []
    for section, key in draw(st.lists(st.sampled_from(KEYS), max_size=8)):
        lines.append(f"[{section}]")
        lines.append(f"{key} = {draw(VALUES)}")
    return "\n".join(lines) + "\n"


def _load(text: str) -> Config | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "est.cfg"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_config(path)
        except ConfigError as exc:
            assert "\n" not in str(exc), "ConfigError must be one line"
            return None


def _assert_usable(config: Config) -> None:
    server = config.server
    for seconds in (server.handshake_timeout, server.request_timeout):
        # socket.settimeout and time arithmetic need finite values that fit in a C timeval.
        assert math.isfinite(seconds) and 0 < seconds <= 1e8, seconds
    assert 1 <= server.backlog <= 2**31 - 1  # socket.listen takes a C int
    assert 1 <= server.max_connections
    for seconds in (config.auth.failure_window, config.auth.lockout):
        assert math.isfinite(seconds) and 0 < seconds <= 1e8, seconds


@PROPERTY
@given(ini_texts())
@example("[server]\nhandshake_timeout = inf\n")
@example("[server]\nrequest_timeout = 1e300\n")
@example("[server]\nbacklog = 99999999999999999999\n")
@example("[auth]\nlockout = inf\n")
def test_config_loader_gives_a_config_or_a_config_error(text: str) -> None:
    config = _load(text)
    if config is not None:
        _assert_usable(config)


@PROPERTY
@given(st.text(max_size=400))
def test_arbitrary_text_is_a_config_or_a_config_error(text: str) -> None:
    config = _load(text)
    if config is not None:
        _assert_usable(config)


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "multipart/form-data; boundary=XyZ",
        'multipart/form-data; boundary="a b"',
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "text/plain",
        "",
        ";;;",
    ]
) | st.text(max_size=60)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> bytes:
    """Mostly well-formed multipart/form-data bodies for boundary XyZ, with damage."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.text(max_size=8))
        disposition = draw(
            st.sampled_from(
                [
                    f'form-data; name="{name}"',
                    f'form-data; name="{name}"; filename="{name}.csr"',
                    "form-data",
                    "attachment; name=x",
                    f"form-data; name={name}",
                ]
            )
        )
        content = draw(st.binary(max_size=40))
        head = f"Content-Disposition: {disposition}\r\n".encode("utf-8", "surrogatepass")
        parts.append(b"--XyZ\r\n" + head + b"\r\n" + content + b"\r\n")
    body = b"".join(parts) + draw(st.sampled_from([b"--XyZ--\r\n", b"--XyZ--", b"", b"--XyZ"]))
    cut = draw(st.integers(0, len(body)))
    return body if draw(st.booleans()) else body[:cut]


URLENCODED_BODIES = st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=6).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
)


@PROPERTY
@given(CONTENT_TYPES, st.binary(max_size=300) | multipart_bodies() | URLENCODED_BODIES)
def test_form_parsing_gives_a_form_or_an_est_error(content_type: str | None, body: bytes) -> None:
    try:
        form = parse_form(content_type, body)
    except EstError as err:
        assert 400 <= err.status < 500
        return
    assert isinstance(form, Form)
    for name, value in form.fields:
        assert isinstance(name, str) and isinstance(value, str)


@PROPERTY
@given(multipart_bodies())
def test_multipart_forms_give_a_form_or_a_bad_request(body: bytes) -> None:
    try:
        parse_form("multipart/form-data; boundary=XyZ", body)
    except EstError as err:
        assert err.status == 400


@PROPERTY
@given(
    st.text(max_size=60)
    | st.binary(max_size=60).map(lambda raw: "Basic " + base64.b64encode(raw).decode())
)
def test_basic_authorization_gives_credentials_none_or_value_error(value: str) -> None:
    try:
        result = parse_basic_authorization(value)
    except ValueError:
        return
    assert result is None or isinstance(result, BasicCredentials)


@PROPERTY
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda body: b'{"format": "python-est-users", "version": 1, ' + body,
        st.binary(max_size=200),
    )
)
def test_user_store_decoder_gives_a_snapshot_or_a_user_store_error(raw: bytes) -> None:
    try:
        decode_user_store(raw, None)
    except UserStoreError:
        pass


@PROPERTY
@given(
    st.lists(
        st.lists(
            st.sampled_from(["V", "R", "I", "x", "", "2048", "1024", "AAAA", "./", "user"])
            | st.text(max_size=12),
            max_size=7,
        ).map("\t".join),
        max_size=5,
    ).map("\n".join)
)
def test_openssl_srpvfile_parser_gives_users_or_a_user_store_error(text: str) -> None:
    try:
        parse_openssl_srpvfile(text)
    except UserStoreError:
        pass


@PROPERTY
@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"\x16\x03\x01" + b))
def test_client_hello_peek_never_raises(record: bytes) -> None:
    assert classify_client_hello(record) in set(Route)
    name = srp_username(record)
    assert name is None or isinstance(name, str)


AUTH_VALUES = st.text(max_size=40).map(lambda t: "Basic " + t) | st.binary(max_size=40).map(
    lambda raw: "Basic " + base64.b64encode(raw).decode()
)


@PROPERTY
@given(AUTH_VALUES, st.sampled_from(["simpleenroll", "simplereenroll", "serverkeygen"]))
def test_refusal_audit_takes_any_authorization_header(value: str, operation: str) -> None:
    # Found by scripts/fuzz.py: a non-ASCII Basic token crashed the audit line, and the
    # client got no response at all instead of its 401.
    request = HttpRequest(
        method="POST",
        target=f"/.well-known/est/{operation}",
        headers=(("authorization", value),),
    )
    peer = PeerIdentity(
        address="192.0.2.1",
        tls=TlsInfo(version="TLS1.2", cipher_suite="x", tls_unique=None, resumed=False),
        client_cert=None,
        srp_user=None,
    )
    audit_refusal(request, peer, AuthenticationRequired("invalid user name or password"))


def test_per_address_cap_defaults_to_a_quarter_of_the_workers() -> None:
    config = _load("[server]\nmax_connections = 40\n")
    assert config is not None and config.server.max_connections_per_address == 10
    config = _load("[server]\nmax_connections_per_address = 0\n")  # 0: no cap
    assert config is not None and config.server.max_connections_per_address == 0
    assert _load("[server]\nmax_connections_per_address = -1\n") is None
