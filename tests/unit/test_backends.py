"""Issuing backends (issue 18 item 1) as values: upstream answers to statuses, CA-handler
answers to certificates or refusals, and the config keys that choose them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est import wire
from python_est.backends import (
    Deferred,
    EstBackend,
    HandlerBackend,
    HandlerLoadError,
    Order,
    UpstreamReply,
    UpstreamUnreachable,
)
from python_est.backends.handler import fingerprint
from python_est.config import LabelConfig, load_config
from python_est.config.convert import to_upstream_url
from python_est.errors import ConfigError, EstError
from python_est.ledger import SqliteLedger
from python_est.messages import Operation

TEXT = (("content-type", "text/plain; charset=utf-8"),)


def order() -> Order:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device1")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    now = datetime.now(timezone.utc)
    return Order(csr, LabelConfig(name="ra"), Operation.SIMPLEENROLL, now, "device1")


@pytest.fixture
def polls(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as ledger:
        yield ledger


def answering(reply: UpstreamReply) -> EstBackend:
    return EstBackend(lambda method, operation, content_type, body: reply, "ca.example:8443")


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "expected", "phrase"),
    [
        (400, b"bad CSR\n", None, 400, "upstream CA refused the request (HTTP 400): bad CSR"),
        (403, b"not yours\n", None, 403, "upstream CA refused the request: not yours"),
        (401, b"who?\n", None, 502, "refused this server's RA credentials"),
        (404, b"", None, 502, "answered HTTP 404"),
        (500, b"boom\x1b[2J\n", None, 502, "answered HTTP 500: boom\\x1b[2J"),
        (501, b"no\n", None, 501, "does not support /simpleenroll"),
        (503, b"busy\n", 9, 503, "is busy (HTTP 503)"),
        (302, b"", None, 502, "answered HTTP 302"),
    ],
)
def test_upstream_statuses_map_to_ours(
    status: int, body: bytes, retry_after: int | None, expected: int, phrase: str
) -> None:
    backend = answering(UpstreamReply(status, TEXT, body, retry_after))
    with pytest.raises(EstError) as info:
        backend.enroll(order())
    assert info.value.status == expected
    assert phrase in info.value.detail
    assert "\x1b" not in info.value.detail


def test_upstream_202_is_deferred_with_its_retry_after() -> None:
    with pytest.raises(Deferred) as info:
        answering(UpstreamReply(202, TEXT, b"held\n", 17)).enroll(order())
    assert info.value.retry_after == 17
    assert "held" in info.value.detail


@pytest.mark.parametrize(("untrusted", "status"), [(False, 503), (True, 502)])
def test_an_unreachable_upstream_is_503_and_an_untrusted_one_502(
    untrusted: bool, status: int
) -> None:
    def exchange(
        method: str, operation: str, content_type: str | None, body: bytes
    ) -> UpstreamReply:
        raise UpstreamUnreachable("connection refused", untrusted=untrusted)

    with pytest.raises(EstError) as info:
        EstBackend(exchange, "ca.example:8443").ca_certs()
    assert info.value.status == status


@pytest.mark.parametrize(
    "answer",
    [
        "None",
        "('error only',)",
        "(None, 'not a certificate', None)",
        "(None, None, None)",
        "(None, None, None, None, None)",
    ],
)
def test_handler_answers_that_are_not_est_proxys_are_502(
    tmp_path: Path, answer: str, polls: SqliteLedger
) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(
        "class CAhandler:\n"
        "    def __init__(self, debug=None, logger=None): pass\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *args): pass\n"
        f"    def enroll(self, csr): return {answer}\n"
    )
    backend = HandlerBackend(handler, {}, label="x", retry_after=5, polls=polls)
    with pytest.raises(EstError) as info:
        backend.enroll(order())
    assert info.value.status == 502


def test_a_handler_error_is_502_with_its_text_and_a_raise_is_contained(
    tmp_path: Path, polls: SqliteLedger
) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(
        "class CAhandler:\n"
        "    def __init__(self, debug=None, logger=None): pass\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *args): pass\n"
        "    def enroll(self, csr): return ('template not found', None, None)\n"
        "    def ca_certs_get(self): raise RuntimeError('secret path /etc/x')\n"
    )
    backend = HandlerBackend(handler, {}, label="x", retry_after=5, polls=polls)
    with pytest.raises(EstError, match="template not found") as info:
        backend.enroll(order())
    assert info.value.status == 502
    with pytest.raises(EstError) as raised:
        backend.ca_certs()
    assert raised.value.status == 502 and "/etc/x" not in raised.value.detail


DEFERRING = (
    "import uuid\n"
    "class CAhandler:\n"
    "    def __init__(self, debug=None, logger=None): pass\n"
    "    def __enter__(self): return self\n"
    "    def __exit__(self, *args): pass\n"
    "    def enroll(self, csr): return (None, None, uuid.uuid4().hex)\n"
    "    def poll(self, poll_id, csr): return (None, None, poll_id, False)\n"
)


def test_a_deferred_request_is_polled_per_requester(tmp_path: Path, polls: SqliteLedger) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(DEFERRING)
    backend = HandlerBackend(handler, {}, label="ra", retry_after=5, polls=polls)
    first = order()
    with pytest.raises(Deferred):
        backend.enroll(first)
    key = ("ra", "device1", fingerprint(first.csr))
    kept = polls.poll_id(*key)
    assert kept is not None
    # The same requester's retry polls the kept identifier (another backend instance: a
    # restart or another worker); a new key is a new request.
    again = HandlerBackend(handler, {}, label="ra", retry_after=5, polls=polls)
    with pytest.raises(Deferred):
        again.enroll(first)
    assert polls.poll_id(*key) == kept
    # Another requester replaying the same CSR starts its own request at the CA.
    with pytest.raises(Deferred):
        backend.enroll(replace(first, requester="mallory"))
    theirs = polls.poll_id("ra", "mallory", fingerprint(first.csr))
    assert theirs is not None and theirs != kept


@pytest.mark.parametrize(
    "text",
    ["class Other: pass\n", "raise SystemError('no')\n", "class CAhandler: pass\n"],
)
def test_a_handler_file_without_a_usable_class_is_refused(
    tmp_path: Path, text: str, polls: SqliteLedger
) -> None:
    handler = tmp_path / "h.py"
    handler.write_text(text)
    with pytest.raises(HandlerLoadError):
        HandlerBackend(handler, {}, label="x", retry_after=5, polls=polls)


@pytest.mark.parametrize(
    "url",
    [
        "https://ca.example",
        "https://ca.example:8443/.well-known/est",
        "https://ca.example:8443/.well-known/est/iot",
        "https://[::1]:8443/.well-known/est/",
    ],
)
def test_upstream_urls_accepted(url: str) -> None:
    assert to_upstream_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://ca.example/.well-known/est",
        "https://user:pw@ca.example",
        "https://ca.example/other/path",
        "https://ca.example/.well-known/est/a/b",
        "https://ca.example/.well-known/est?x=1",
        "https://ca.example:0",
        "https://",
        "https://ca.example/ .well-known",
    ],
)
def test_upstream_urls_refused(url: str) -> None:
    with pytest.raises(ValueError):
        to_upstream_url(url)


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ("backend = est", "upstream_url"),
        ("backend = est\nupstream_url = https://ca.example", "upstream_ca_file"),
        (
            "backend = est\nupstream_url = https://ca.example\nupstream_ca_file = ca.pem",
            "upstream_client_cert",
        ),
        (
            "backend = est\nupstream_url = https://ca.example\nupstream_ca_file = ca.pem\n"
            "upstream_user = ra",
            "upstream_password",
        ),
        (
            "backend = est\nupstream_url = https://ca.example\nupstream_ca_file = ca.pem\n"
            "upstream_client_cert = ra.pem",
            "upstream_client_key",
        ),
        ("backend = handler", "handler_file"),
        ("backend = other", "backend"),
        ("upstream_password = hunter2", "upstream_password"),
    ],
)
def test_backend_keys_refused_naming_the_key(tmp_path: Path, keys: str, named: str) -> None:
    path = tmp_path / "est.cfg"
    path.write_text(f"[label:ra]\n{keys}\n")
    with pytest.raises(ConfigError, match=rf"\[label:ra\] {named}:"):
        load_config(path)


def test_upstream_password_is_a_source_not_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "est.cfg"
    path.write_text(
        "[label:ra]\nbackend = est\nupstream_url = https://ca.example\n"
        "upstream_ca_file = ca.pem\nupstream_user = ra\nupstream_password = env:RA_PASSWORD\n"
    )
    label = load_config(path).labels["ra"]
    assert label.upstream_password is not None
    assert (label.upstream_password.kind, label.upstream_password.value) == ("env", "RA_PASSWORD")
    assert (label.upstream_password.section, label.upstream_password.key) == (
        "label:ra",
        "upstream_password",
    )
    assert label.upstream_ca_file == tmp_path / "ca.pem"


def test_upstream_cacerts_are_kept_for_a_minute() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Upstream CA")])
    now = datetime.now(timezone.utc)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256())
    )
    asked: list[str] = []

    def exchange(
        method: str, operation: str, content_type: str | None, body: bytes
    ) -> UpstreamReply:
        asked.append(operation)
        return UpstreamReply(200, (), wire.encode_certs_only((root,)))

    moment = [0.0]
    backend = EstBackend(exchange, "ca.example:8443", clock=lambda: moment[0])
    assert list(backend.ca_certs()) == [root]
    moment[0] = 59.0
    assert list(backend.ca_certs()) == [root]
    assert asked == ["cacerts"]
    moment[0] = 61.0
    backend.ca_certs()
    assert asked == ["cacerts", "cacerts"]


def _certificate(
    subject: str, public_key: ec.EllipticCurvePublicKey, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Upstream CA")]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(signer, hashes.SHA256())
    )


def test_upstream_chain_around_the_certificate_is_tolerated() -> None:
    wanted = order()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate("Upstream CA", ca_key.public_key(), ca_key)
    public_key = wanted.csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    leaf = _certificate("device1", public_key, ca_key)
    body = wire.encode_certs_only((root, leaf))
    assert answering(UpstreamReply(200, (), body)).enroll(wanted) == leaf
    # Only other keys' certificates: the upstream is broken.
    with pytest.raises(EstError, match="a key other than the CSR's") as info:
        answering(UpstreamReply(200, (), wire.encode_certs_only((root,)))).enroll(wanted)
    assert info.value.status == 502
