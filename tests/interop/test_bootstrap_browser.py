"""The bootstrap page in a real browser: headless Debian Chromium driven by Playwright.

Over HTTPS, with only this server's key accepted (`--ignore-certificate-errors-spki-list` pins
its SubjectPublicKeyInfo; nothing else is trusted): fill in the form, upload a CSR file, submit,
and check that the certificate shown verifies against /cacerts; then the server-generated-key
path, opening the downloaded PKCS#12 with the passphrase. Every page is saved as a screenshot
under test-artifacts/ (gitignored).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from est_harness import RunningServer, running_server
from python_est.client import EstClient, Trust, load_certificates
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "browser test password"
PASSPHRASE = "pkcs12 passphrase"
# What the machine notes require for Chromium here (no sandbox as root, no network chatter).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("browser")) as running:
        assert running.state.users is not None
        running.state.users.add("alice", PASSWORD, allowed_names=["alice", "browser-device"])
        yield running


@pytest.fixture(scope="module")
def browser(server: RunningServer) -> Iterator[Any]:
    chromium = require_tool("chromium")
    spki = (
        server.state.server.chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"]
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh, empty --user-data-dir of its own.
        launched = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(15000)
    problems: list[str] = []
    opened.on("console", lambda message: problems.append(message.text))
    opened.problems = problems
    try:
        yield opened
    finally:
        context.close()


def make_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"bootstrap-{name}.png"), full_page=True)


def ca_chain(server: RunningServer) -> list[x509.Certificate]:
    """/cacerts, fetched by our client with the test CA as trust anchor."""
    anchors = tuple(load_certificates(server.ca_file))
    return EstClient("127.0.0.1", server.port, trust=Trust(anchors), timeout=10).cacerts()


def verify_against_cacerts(cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
    issuer = next(c for c in chain if c.subject == cert.issuer)
    cert.verify_directly_issued_by(issuer)


def submit(page: Any) -> Any:
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value


def download(page: Any, link_text: str) -> bytes:
    with page.expect_download() as info:
        page.click(f"a.button:has-text('{link_text}')")
    return Path(info.value.path()).read_bytes()


def test_form_loads_with_its_style_under_the_csp(page: Any, server: RunningServer) -> None:
    response = page.goto(server.url("/bootstrap"))
    assert response.status == 200
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["x-frame-options"] == "DENY"
    screenshot(page, "form")
    # The inline style is allowed by its hash: the submit button has the accent colour.
    color = page.eval_on_selector("button[type=submit]", "b => getComputedStyle(b).backgroundColor")
    assert color == "rgb(31, 95, 191)"
    # Only the CSR fields show until the other mode is chosen (CSS only, no JavaScript).
    assert page.is_visible("#csr") and not page.is_visible("#passphrase")
    page.click("label[for=mode-serverkeygen]")
    assert page.is_visible("#passphrase") and not page.is_visible("#csr")
    assert not [p for p in page.problems if "Content Security Policy" in p]


def test_upload_a_csr_and_get_a_certificate_that_verifies(
    page: Any, server: RunningServer, tmp_path: Path
) -> None:
    key, pem = make_csr("browser-device")
    csr_file = tmp_path / "browser-device.csr"
    csr_file.write_bytes(pem)

    page.goto(server.url("/bootstrap"))
    page.fill("#user", "alice")
    page.fill("#password", PASSWORD)
    page.set_input_files("#csr_file", str(csr_file))
    response = submit(page)
    screenshot(page, "result-csr")
    assert response.status == 200, page.inner_text("main")
    assert page.inner_text("h1") == "Certificate issued"

    cert = x509.load_pem_x509_certificate(page.inner_text("#certificate-pem").encode("ascii"))
    verify_against_cacerts(cert, ca_chain(server))
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=browser-device"
    # The data: URL downloads work under default-src 'none'.
    pem = download(page, "Certificate (PEM)")
    assert x509.load_pem_x509_certificate(pem) == cert
    chain = x509.load_pem_x509_certificates(download(page, "Chain (PEM)"))
    assert chain[0] == cert and chain[1:] == ca_chain(server)
    assert not [p for p in page.problems if "Content Security Policy" in p]


def test_server_generated_key_arrives_as_pkcs12(page: Any, server: RunningServer) -> None:
    page.goto(server.url("/bootstrap"))
    page.click("label[for=mode-serverkeygen]")
    page.fill("#user", "alice")
    page.fill("#password", PASSWORD)
    page.fill("#common_name", "browser-device")
    page.fill("#passphrase", PASSPHRASE)
    page.fill("#passphrase2", PASSPHRASE)
    response = submit(page)
    screenshot(page, "result-serverkeygen")
    assert response.status == 200, page.inner_text("main")

    shown = x509.load_pem_x509_certificate(page.inner_text("#certificate-pem").encode("ascii"))
    loaded = pkcs12.load_pkcs12(download(page, "PKCS#12"), PASSPHRASE.encode())
    assert loaded.cert is not None and loaded.key is not None
    assert loaded.cert.certificate == shown
    assert loaded.key.public_key() == shown.public_key()
    verify_against_cacerts(shown, ca_chain(server))
    entry = server.state.ledger.get(shown.serial_number)
    assert entry is not None and entry.server_generated_key and entry.requester == "alice"


def test_wrong_password_re_shows_the_form_with_401(page: Any, server: RunningServer) -> None:
    page.goto(server.url("/bootstrap"))
    page.fill("#user", "alice")
    page.fill("#password", "not the password")
    page.fill("#csr", make_csr("alice")[1].decode("ascii"))
    response = submit(page)
    screenshot(page, "error")
    assert response.status == 401
    assert page.inner_text("[role=alert]") == "Invalid user name or password."
    assert page.input_value("#user") == "alice"
    assert page.input_value("#password") == ""


def test_a_form_on_another_site_cannot_submit_the_page(page: Any, server: RunningServer) -> None:
    # Issue 13: the visitor has the page open (so the form cookie is set) and then visits an
    # attacker's site whose form posts to the page with the attacker's choice of fields.
    page.goto(server.url("/bootstrap"))
    before = server.state.ledger.count()
    fields = {"user": "alice", "password": PASSWORD, "mode": "csr"}
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    csr = make_csr("alice")[1].decode("ascii")
    attacker = (
        f'<form id="f" method="post" action="{server.url("/bootstrap")}">{inputs}'
        f'<textarea name="csr">{csr}</textarea></form>'
    )
    page.route(
        "https://attacker.example/",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attacker),
    )
    page.goto("https://attacker.example/")
    with page.expect_navigation() as navigation:
        page.eval_on_selector("#f", "form => form.submit()")
    response = navigation.value
    screenshot(page, "cross-site")
    assert response.status == 403
    assert "another site" in page.inner_text("[role=alert]")
    assert server.state.ledger.count() == before
