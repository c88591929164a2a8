"""Every base64 response decoded the way libest decodes it: `openssl base64 -d` without -A.

OpenSSL's base64 BIO silently mangles a line longer than about a thousand characters, so these
tests fail on one-line bodies of any real size. Bodies are fetched with curl (a User-Agent that
is not strongSwan's) and the decoded DER is read by `openssl pkcs7`, `x509`, `pkey` and
`asn1parse`. The per-label `base64_lines` override and the strongSwan rule (no User-Agent) are
checked on the same server.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from est_harness import RunningServer
from python_est import wire
from python_est.messages import CERTS_ONLY, PKCS8
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "b64-device", "b64-password-1"
CONFIG = """\
[ca]
issuing_ca = yes
[profile]
csrattrs = challengePassword, id-ecPublicKey=secp384r1, extensionRequest=macAddress
[label:flat]
base64_lines = single
[label:lines]
base64_lines = wrapped
"""


def run(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(args, input=stdin, capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-1000:]
    return result.stdout


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("curl")
    require_tool("openssl")
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def curl(server: RunningServer, path: str, *extra: str) -> tuple[str, bytes]:
    """GET or POST with curl; the Content-Type and the body of a 200."""
    out = run(
        "curl", "-sS", "-D", "-", "--cacert", str(server.ca_file), *extra, server.url(path)
    )  # fmt: skip
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "200", body[:300]
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return fields["Content-Type"], body


def openssl_decode(text: bytes) -> bytes:
    """libest's decoder; checked against Python's, which reads any layout."""
    der = run("openssl", "base64", "-d", stdin=text)
    assert der == base64.b64decode(text), "openssl base64 -d mangled the body"
    return der


def assert_lines(text: bytes, newline: bytes = b"\n") -> None:
    lines = text.split(newline)
    assert lines[-1] == b"" and all(0 < len(line) <= 64 for line in lines[:-1]), text[:200]


def certs_of(tmp: Path, der: bytes, name: str) -> list[x509.Certificate]:
    p7 = tmp / f"{name}.p7"
    p7.write_bytes(der)
    pem = run("openssl", "pkcs7", "-inform", "DER", "-in", str(p7), "-print_certs")
    return x509.load_pem_x509_certificates(pem)


def csr(tmp: Path, name: str, cn: str = USER) -> tuple[Path, Path]:
    """An openssl key and its CSR, base64 in 76-column lines (as `base64` writes it)."""
    key, der = tmp / f"{name}.key", tmp / f"{name}.csr.der"
    run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(key), "-subj", f"/CN={cn}", "-outform", "DER", "-out", str(der),
    )  # fmt: skip
    upload = tmp / f"{name}.b64"
    upload.write_bytes(base64.encodebytes(der.read_bytes()))
    return key, upload


def spki_of_key(key: Path) -> bytes:
    return run("openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER")


def spki_of(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


POST = ("-H", "Content-Type: application/pkcs10", "--data-binary")


def test_every_response_type_decodes_with_openssl_base64(
    server: RunningServer, tmp_path: Path
) -> None:
    # /cacerts: the whole chain (root and issuing CA, well over a thousand base64 characters).
    _, body = curl(server, "/.well-known/est/cacerts")
    assert_lines(body)
    der = openssl_decode(body)
    assert set(certs_of(tmp_path, der, "cacerts")) == set(server.state.ca.chain)
    # The same body on one line is what libest could not read: the decoder loses bytes.
    assert len(body) > 1000
    assert run("openssl", "base64", "-d", stdin=wire.one_line_base64(body)) != der

    # /csrattrs
    _, body = curl(server, "/.well-known/est/csrattrs")
    assert_lines(body)
    der = openssl_decode(body)
    run("openssl", "asn1parse", "-inform", "DER", stdin=der)
    assert wire.decode_csrattrs(der)

    # /simpleenroll with Basic
    key, upload = csr(tmp_path, "first")
    content_type, body = curl(
        server, "/.well-known/est/simpleenroll", "--user", f"{USER}:{PASSWORD}", *POST, f"@{upload}"
    )
    assert content_type == CERTS_ONLY
    assert_lines(body)
    [issued] = certs_of(tmp_path, openssl_decode(body), "issued")
    assert spki_of(issued) == spki_of_key(key)
    leaf = tmp_path / "issued.pem"
    leaf.write_bytes(issued.public_bytes(Encoding.PEM))
    run("openssl", "x509", "-in", str(leaf), "-noout")

    # /simplereenroll with the issued certificate
    new_key, upload = csr(tmp_path, "second")
    _, body = curl(
        server, "/.well-known/est/simplereenroll",
        "--cert", str(leaf), "--key", str(key), *POST, f"@{upload}",
    )  # fmt: skip
    assert_lines(body)
    [renewed] = certs_of(tmp_path, openssl_decode(body), "renewed")
    assert renewed.subject == issued.subject and spki_of(renewed) == spki_of_key(new_key)

    # /serverkeygen: both parts of the multipart body, each in CRLF lines.
    _, upload = csr(tmp_path, "ignored")
    content_type, body = curl(
        server, "/.well-known/est/serverkeygen", "--user", f"{USER}:{PASSWORD}", *POST, f"@{upload}"
    )
    (key_headers, key_part), (_, cert_part) = wire.parse_multipart(content_type, body)
    assert key_headers["content-type"] == PKCS8
    for part in (key_part, cert_part):
        assert_lines(part + b"\r\n", b"\r\n")
    key_der = tmp_path / "generated.key.der"
    key_der.write_bytes(openssl_decode(key_part))
    [generated] = certs_of(tmp_path, openssl_decode(cert_part), "generated")
    public = run("openssl", "pkey", "-inform", "DER", "-in", str(key_der), "-pubout")
    assert public == run(
        "openssl", "x509", "-pubkey", "-noout", stdin=generated.public_bytes(Encoding.PEM)
    )


@pytest.mark.parametrize(
    ("path", "extra", "one_line"),
    [
        ("/.well-known/est/flat/cacerts", (), True),  # base64_lines = single
        ("/.well-known/est/lines/cacerts", ("-H", "User-Agent:"), False),  # wrapped
        ("/.well-known/est/cacerts", ("-H", "User-Agent:"), True),  # auto, no User-Agent
        ("/.well-known/est/cacerts", ("-A", "strongSwan 6.0.1"), True),  # auto, strongSwan
        ("/.well-known/est/cacerts", ("-A", "libest 3.2.0p"), False),
    ],
)
def test_one_line_for_strongswan_and_by_label(
    server: RunningServer, path: str, extra: tuple[str, ...], one_line: bool
) -> None:
    _, body = curl(server, path, *extra)
    if one_line:
        assert b"\n" not in body and b"\r" not in body
        der = run("openssl", "base64", "-d", "-A", stdin=body)
    else:
        assert_lines(body)
        der = openssl_decode(body)
    assert set(wire.decode_certs_only(base64.b64encode(der))) == set(server.state.ca.chain)
