"""BootstrapPage with a real EstService (CA, SQLite ledger, user store): requests in, pages out.

Values in, values out: the status, the headers, what the page shows, and what the ledger holds.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from python_est import wire
from python_est.bootstrap import CONTENT_SECURITY_POLICY, BootstrapPage
from python_est.ca import CertificateAuthority
from python_est.config import LabelConfig
from python_est.errors import MethodNotAllowed, NotFound
from python_est.keys import KeyType
from python_est.ledger import SqliteLedger
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService
from python_est.users import UserStore

PATH = "/bootstrap"
PASSWORD = "alice-pw-\u00e4+%2B="  # what the ancestor's parser mangled
TLS12 = TlsInfo(
    "TLS1.2",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    tls_unique=bytes(12),
    extended_master_secret=True,
)
BROWSER = PeerIdentity("192.0.2.30:50000", TLS12)
SRP_PEER = PeerIdentity(
    "192.0.2.31:50001",
    TlsInfo("TLS1.2", "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA"),
    srp_user="alice",
)
BOUNDARY = "----WebKitFormBoundaryAbC123"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Bootstrap Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def service(ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path) -> EstService:
    users = UserStore.create(tmp_path / "users.srp", reload_interval=None)
    users.add("alice", PASSWORD)
    users.add("<b>x</b>", "pw-of-a-tag")
    return EstService(
        labels={"": LabelConfig(serverkeygen_key_type=KeyType.EC_P256)},
        ca=ca,
        ledger=ledger,
        users=users,
        limiter=LoginLimiter(MemoryCounters(), Limits(3, window=60, lockout=90)),
        realm="test",
    )


@pytest.fixture
def page(service: EstService) -> BootstrapPage:
    return BootstrapPage(service, path=PATH)


def csr(
    common_name: str = "alice", encoding: serialization.Encoding = serialization.Encoding.PEM
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(encoding)


def form_post(fields: dict[str, str]) -> HttpRequest:
    body = urlencode(fields).encode("ascii")
    return HttpRequest("POST", PATH, (("content-type", "application/x-www-form-urlencoded"),), body)


def multipart_post(fields: dict[str, str], file: tuple[str, bytes] | None = None) -> HttpRequest:
    body = b""
    for name, value in fields.items():
        body += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value.encode("utf-8") + b"\r\n"
    if file is not None:
        filename, data = file
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csr_file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        body += data + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return HttpRequest("POST", PATH, (("content-type", content_type),), body)


def text(response: HttpResponse) -> str:
    return response.body.decode("utf-8")


def alert(response: HttpResponse) -> str:
    match = re.search(r'<div class="alert" role="alert">(.*?)</div>', text(response), re.S)
    assert match is not None, "no error message on the page"
    return html.unescape(match.group(1))


def shown_certificate(response: HttpResponse) -> x509.Certificate:
    match = re.search(r'<pre id="certificate-pem">(.*?)</pre>', text(response), re.S)
    assert match is not None
    return x509.load_pem_x509_certificate(html.unescape(match.group(1)).encode("ascii"))


def downloads(response: HttpResponse) -> dict[str, bytes]:
    found = re.findall(r'download="([^"]+)" href="data:[^;]+;base64,([^"]+)"', text(response))
    return {name: base64.b64decode(data) for name, data in found}


def assert_security_headers(response: HttpResponse) -> None:
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    assert response.header("X-Frame-Options") == "DENY"
    assert response.header("Cache-Control") == "no-store"
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.header("Referrer-Policy") == "same-origin"
    assert response.header("WWW-Authenticate") is None


# --- GET ------------------------------------------------------------------------------------


def test_get_shows_the_form_with_security_headers(
    page: BootstrapPage, ca: CertificateAuthority
) -> None:
    response = page.handle(HttpRequest("GET", PATH, ()), BROWSER)
    assert response.status == 200
    assert_security_headers(response)
    body = text(response)
    for name in ("user", "password", "csr", "csr_file", "mode", "passphrase", "common_name"):
        assert f'name="{name}"' in body
    assert 'enctype="multipart/form-data"' in body
    assert "<script" not in body
    assert ca.root.fingerprint(hashes.SHA256()).hex(":").upper() in body


def test_csp_denies_everything_but_the_hashed_style_and_same_origin_forms() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", directives["style-src"])


def test_get_on_an_srp_connection_does_not_ask_for_the_password(page: BootstrapPage) -> None:
    response = page.handle(HttpRequest("GET", PATH, ()), SRP_PEER)
    body = text(response)
    assert response.status == 200
    assert 'name="password"' not in body
    assert "TLS-SRP as <strong>alice</strong>" in body


def test_disabled_page_is_404(service: EstService) -> None:
    disabled = BootstrapPage(service, path=PATH, enabled=False)
    with pytest.raises(NotFound) as info:
        disabled.handle(HttpRequest("GET", PATH, ()), BROWSER)
    assert info.value.status == 404


def test_other_methods_are_405(page: BootstrapPage) -> None:
    with pytest.raises(MethodNotAllowed) as info:
        page.handle(HttpRequest("PUT", PATH, ()), BROWSER)
    assert info.value.status == 405
    assert dict(info.value.headers())["Allow"] == "GET, POST"


# --- POST: enrollment with a CSR -------------------------------------------------------------


def test_pasted_pem_csr_is_enrolled_and_recorded(
    page: BootstrapPage, ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": csr().decode()}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 200, alert(response)
    assert_security_headers(response)
    cert = shown_certificate(response)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.rfc4514_string() == "CN=alice"
    (entry,) = ledger.list_certificates()
    assert (entry.serial, entry.requester, entry.auth_method) == (
        cert.serial_number,
        "alice",
        "basic",
    )
    files = downloads(response)
    assert set(files) == {"alice.pem", "alice-chain.pem", "alice.p7b"}
    assert x509.load_pem_x509_certificates(files["alice-chain.pem"]) == [cert, ca.root]
    assert x509.load_pem_x509_certificate(files["alice.pem"]) == cert
    p7 = serialization.pkcs7.load_der_pkcs7_certificates(files["alice.p7b"])
    assert cert in p7


@pytest.mark.parametrize("encoding", [serialization.Encoding.DER, serialization.Encoding.PEM])
def test_uploaded_csr_file_is_enrolled(
    page: BootstrapPage, ca: CertificateAuthority, encoding: serialization.Encoding
) -> None:
    request = multipart_post(
        {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": ""},
        ("device.csr", csr(encoding=encoding)),
    )
    response = page.handle(request, BROWSER)
    assert response.status == 200, alert(response)
    shown_certificate(response).verify_directly_issued_by(ca.certificate)


def test_srp_connection_enrolls_without_a_password(
    page: BootstrapPage, ledger: SqliteLedger
) -> None:
    response = page.handle(multipart_post({"mode": "csr", "csr": csr().decode()}), SRP_PEER)
    assert response.status == 200, alert(response)
    (entry,) = ledger.list_certificates()
    assert (entry.requester, entry.auth_method) == ("alice", "srp")


def test_wrong_password_is_401_without_a_challenge(
    page: BootstrapPage, ledger: SqliteLedger
) -> None:
    fields = {"user": "alice", "password": "wrong", "mode": "csr", "csr": csr().decode()}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 401
    assert_security_headers(response)
    assert alert(response) == "Invalid user name or password."
    body = text(response)
    assert 'value="alice"' in body  # the user name is kept
    assert "wrong" not in body  # the password never is
    assert ledger.list_certificates() == []


def test_missing_password_is_401_and_costs_no_attempt(page: BootstrapPage) -> None:
    fields = {"user": "alice", "password": "", "mode": "csr", "csr": csr().decode()}
    for _ in range(5):
        response = page.handle(form_post(fields), BROWSER)
        assert response.status == 401
        assert alert(response) == "Enter your user name and password."
    fields["password"] = PASSWORD
    assert page.handle(form_post(fields), BROWSER).status == 200


def test_repeated_failures_lock_out_with_429_like_basic(page: BootstrapPage) -> None:
    fields = {"user": "alice", "password": "wrong", "mode": "csr", "csr": csr().decode()}
    statuses = [page.handle(form_post(fields), BROWSER).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    fields["password"] = PASSWORD
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 429
    assert response.header("Retry-After") is not None
    assert "too many" in alert(response).lower()
    # The visitor learns how long the lockout lasts, as a 429 to a device does.
    assert f"locked for another {response.header('Retry-After')} s" in alert(response)


def test_bad_csr_is_400_and_the_pasted_text_is_escaped(page: BootstrapPage) -> None:
    pasted = "<script>alert(1)</script>"
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": pasted}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 400
    body = text(response)
    assert pasted not in body
    assert html.escape(pasted) in body
    assert "CSR" in alert(response)


def test_refused_name_is_403(page: BootstrapPage, ledger: SqliteLedger) -> None:
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": csr("bob").decode()}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 403
    assert "'bob' is not allowed for user 'alice'" in alert(response)
    assert ledger.list_certificates() == []


def test_user_text_is_escaped_everywhere(page: BootstrapPage) -> None:
    fields = {"user": '"><img src=x>', "password": "x", "mode": "csr", "csr": csr().decode()}
    response = page.handle(form_post(fields), BROWSER)
    body = text(response)
    assert response.status == 401
    assert "<img" not in body
    assert 'value="&quot;&gt;&lt;img src=x&gt;"' in body


def test_issued_subject_is_escaped_on_the_result_page(page: BootstrapPage) -> None:
    fields = {"user": "<b>x</b>", "password": "pw-of-a-tag", "csr": csr("<b>x</b>").decode()}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == 200, alert(response)
    assert re.search(r"<b[^o]|</b>", text(response)) is None  # no <b> tag, only <body>
    subject = shown_certificate(response).subject.rfc4514_string()
    assert "&lt;b" in html.escape(subject)
    assert f"<code>{html.escape(subject)}</code>" in text(response)
    assert "b_x_b.pem" in downloads(response)  # a safe file name


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"mode": "csr"}, 400, "Paste a certificate signing request"),
        ({"mode": "other", "csr": "x"}, 400, "Choose whether"),
        ({"mode": "csr", "csr": "-----BEGIN CERTIFICATE-----\nAA==\n"}, 400, "PEM"),
        ({"user": "a:b", "mode": "csr", "csr": "x"}, 401, "Invalid user name or password."),
    ],
)
def test_form_problems_re_show_the_form(
    page: BootstrapPage, fields: dict[str, str], status: int, message: str
) -> None:
    fields = {"user": "alice", "password": PASSWORD, **fields}
    response = page.handle(form_post(fields), BROWSER)
    assert response.status == status
    assert message in alert(response)
    assert "<form" in text(response)


def test_csr_pasted_and_uploaded_at_once_is_400(page: BootstrapPage) -> None:
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": csr().decode()}
    response = page.handle(
        multipart_post(fields, ("x.der", csr(encoding=serialization.Encoding.DER))), BROWSER
    )
    assert response.status == 400
    assert "not both" in alert(response)


def test_unsupported_form_encoding_is_415(page: BootstrapPage) -> None:
    request = HttpRequest("POST", PATH, (("content-type", "application/json"),), b"{}")
    response = page.handle(request, BROWSER)
    assert response.status == 415
    assert_security_headers(response)


# --- POST: server-generated key ---------------------------------------------------------------


def keygen_fields(**changes: str) -> dict[str, str]:
    fields = {
        "user": "alice",
        "password": PASSWORD,
        "mode": "serverkeygen",
        "common_name": "alice",
        "passphrase": "correct horse",
        "passphrase2": "correct horse",
    }
    return {**fields, **changes}


def test_server_generated_key_comes_as_pkcs12_under_the_passphrase(
    page: BootstrapPage, ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    response = page.handle(multipart_post(keygen_fields()), BROWSER)
    assert response.status == 200, alert(response)
    cert = shown_certificate(response)
    cert.verify_directly_issued_by(ca.certificate)
    blob = downloads(response)["alice.p12"]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(blob, b"wrong passphrase")
    loaded = pkcs12.load_pkcs12(blob, b"correct horse")
    assert loaded.cert is not None and loaded.cert.certificate == cert
    assert loaded.key is not None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert loaded.key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(
        der, spki
    )
    assert [c.certificate for c in loaded.additional_certs] == [ca.root]
    (entry,) = ledger.list_certificates()
    assert entry.server_generated_key and entry.operation == "serverkeygen"
    assert "PRIVATE KEY" not in text(response)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"passphrase": "short", "passphrase2": "short"}, "at least 8 characters"),
        ({"passphrase2": "correct horsf"}, "differ"),
        ({"common_name": ""}, "common name"),
        ({"common_name": "x" * 65}, "1 to 64 characters"),
    ],
)
def test_server_keygen_form_problems_are_400(
    page: BootstrapPage, ledger: SqliteLedger, changes: dict[str, str], message: str
) -> None:
    response = page.handle(multipart_post(keygen_fields(**changes)), BROWSER)
    assert response.status == 400
    assert message in alert(response)
    assert 'id="mode-serverkeygen" checked' in text(response)
    assert ledger.list_certificates() == []


def test_server_keygen_for_a_foreign_name_is_403(page: BootstrapPage) -> None:
    response = page.handle(multipart_post(keygen_fields(common_name="mallory")), BROWSER)
    assert response.status == 403


# --- manual approval (RFC 7030 §4.2.3) ---------------------------------------------------


@pytest.fixture
def manual_page(ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path) -> BootstrapPage:
    users = UserStore.create(tmp_path / "manual-users.srp", reload_interval=None)
    users.add("alice", PASSWORD)
    service = EstService(
        labels={"": LabelConfig(), "held": LabelConfig(name="held", approval="manual")},
        ca=ca,
        ledger=ledger,
        users=users,
        limiter=LoginLimiter(MemoryCounters(), Limits(3, window=60, lockout=90)),
        realm="test",
        pending_retry_after=30,
    )
    return BootstrapPage(service, path=PATH, label="held")


def test_held_request_shows_a_notice_then_the_certificate_once_approved(
    manual_page: BootstrapPage, ledger: SqliteLedger, ca: CertificateAuthority
) -> None:
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr", "csr": csr().decode()}
    response = manual_page.handle(form_post(fields), BROWSER)
    assert response.status == 202
    assert response.header("Retry-After") == "30"
    assert_security_headers(response)
    assert "waiting for approval" in text(response)
    assert "Submit the same CSR again in 30 seconds" in text(response)
    assert fields["csr"].strip() in html.unescape(text(response))  # kept for the retry
    (pending,) = ledger.list_pending()
    assert pending.label == "held" and pending.requester == "alice"

    assert manual_page.handle(form_post(fields), BROWSER).status == 202  # still pending
    ledger.decide_pending(pending.id, approve=True)
    response = manual_page.handle(form_post(fields), BROWSER)
    assert response.status == 200, alert(response)
    shown_certificate(response).verify_directly_issued_by(ca.certificate)


def test_held_server_keygen_says_a_csr_is_needed(manual_page: BootstrapPage) -> None:
    response = manual_page.handle(multipart_post(keygen_fields()), BROWSER)
    assert response.status == 202
    assert "send a CSR instead" in text(response)


def test_certs_only_body_of_the_service_is_what_the_page_decodes(
    service: EstService, ca: CertificateAuthority
) -> None:
    # The page's chain download comes from /cacerts: the same certificates a device installs.
    response = service.handle(HttpRequest("GET", "/.well-known/est/cacerts", ()), BROWSER)
    assert wire.decode_certs_only(response.body) == list(ca.chain)


def test_compatible_pkcs12_is_offered_labelled_and_delivered(page: BootstrapPage) -> None:
    form = text(page.handle(HttpRequest("GET", "/bootstrap", ()), BROWSER))
    assert 'name="p12_format" value="aes256" id="p12-aes256" checked' in form
    assert "Compatible: 3DES with a SHA-1 MAC (weaker)" in form
    response = page.handle(multipart_post(keygen_fields(p12_format="compatible")), BROWSER)
    assert response.status == 200, alert(response)
    assert "PKCS#12, compatible: 3DES, SHA-1 MAC" in text(response)
    loaded = pkcs12.load_pkcs12(downloads(response)["alice-compatible.p12"], b"correct horse")
    assert loaded.cert is not None and loaded.cert.certificate == shown_certificate(response)


def test_an_unknown_pkcs12_format_is_refused_before_anything_is_issued(
    page: BootstrapPage, ledger: SqliteLedger
) -> None:
    response = page.handle(multipart_post(keygen_fields(p12_format="rc2-40")), BROWSER)
    assert response.status == 400
    assert alert(response) == "Choose a PKCS#12 format: AES-256 or compatible."
    assert ledger.list_certificates() == []
