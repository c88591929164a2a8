"""A factory (IDevID) certificate made entirely with the openssl CLI, the way a manufacturer's
line would (`openssl ca` with 802.1AR extensions: serialNumber, hardwareModuleName otherName,
keyUsage, no EKU, notAfter 99991231235959Z), presented by curl to onboard (issue 18 item 3)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer
from tests.conftest import require_tool
from tests.interop.test_curl_est import curl, pkcs7_to_pem, run

pytestmark = pytest.mark.interop

CA_CONFIG = """\
[ca]
default_ca = acme
[acme]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
default_md = sha384
policy = anything
unique_subject = no
[anything]
organizationName = optional
serialNumber = optional
[idevid]
basicConstraints = critical, CA:FALSE
keyUsage = digitalSignature, keyAgreement
authorityKeyIdentifier = keyid
subjectAltName = otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hardware_module_name
[hardware_module_name]
hwType = OID:1.3.6.1.4.1.99999.1.1
hwSerialNum = FORMAT:ASCII,OCTETSTRING:{serial}
"""


def ok(*args: str) -> bytes:
    result = run(*args)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def openssl_manufacturer(folder: Path, serial: str) -> tuple[Path, Path, Path]:
    """The manufacturer root (ca.pem) and one IDevID (idevid.pem, idevid.key) by openssl."""
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    config = folder / "ca.cnf"
    config.write_text(CA_CONFIG.format(dir=folder, serial=serial))
    ok(
        "openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384",
        "-nodes", "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"),
        "-subj", "/O=Acme Devices/CN=Acme CLI IDevID CA", "-days", "36500",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign",
    )  # fmt: skip
    ok(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(folder / "idevid.key"), "-out", str(folder / "idevid.csr"),
        "-subj", f"/O=Acme Devices/serialNumber={serial}",
    )  # fmt: skip
    ok(
        "openssl", "ca", "-batch", "-config", str(config), "-in", str(folder / "idevid.csr"),
        "-out", str(folder / "idevid.pem"), "-extensions", "idevid", "-notext", "-preserveDN",
        "-startdate", "20250101000000Z", "-enddate", "99991231235959Z",
    )  # fmt: skip
    return folder / "ca.pem", folder / "idevid.pem", folder / "idevid.key"


def test_an_openssl_made_idevid_onboards_with_curl(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    require_tool("openssl")
    require_tool("curl")
    maker = tmp_path / "maker"
    maker.mkdir()
    ca, cert, key = openssl_manufacturer(maker, "SN-CLI-7")
    shown = ok("openssl", "x509", "-in", str(cert), "-noout", "-enddate", "-ext", "subjectAltName")
    assert b"notAfter=Dec 31 23:59:59 9999 GMT" in shown and b"othername" in shown.lower()
    server = start_est_server(
        f"[label:line]\nmanufacturer_cas = {ca}\nidevid_subject = template\n"
        "idevid_template = CN=pump-{hwSerialNum},O=Onboarded\n"
    )
    csr = tmp_path / "ldevid.csr.der"
    ok(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(tmp_path / "ldevid.key"), "-subj", "/O=Onboarded/CN=pump-SN-CLI-7",
        "-outform", "DER", "-out", str(csr),
    )  # fmt: skip
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(csr.read_bytes()))
    args = (
        "--cert", str(cert), "--key", str(key), "-H", "Content-Type: application/pkcs10",
        "--data-binary", f"@{upload}",
    )  # fmt: skip
    status, _, body = curl(server, "/.well-known/est/line/simpleenroll", *args)
    assert status == 200, body
    pem = pkcs7_to_pem(tmp_path, body, "ldevid")
    subject = ok("openssl", "x509", "-in", str(pem), "-noout", "-subject", "-nameopt", "RFC2253")
    assert subject.decode().strip() == "subject=CN=pump-SN-CLI-7,O=Onboarded"
    # The same factory certificate on /simplereenroll: refused.
    status, _, body = curl(server, "/.well-known/est/line/simplereenroll", *args)
    assert status == 403 and b"authenticates only /simpleenroll" in body
