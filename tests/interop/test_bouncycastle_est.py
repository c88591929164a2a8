"""Bouncy Castle's EST client (`org.bouncycastle.est` 1.72, Debian libbcpkix-java) against us.

Java gateways (Eclipse Kura, for one) enroll through `JsseESTServiceBuilder`/`ESTService`. The
test compiles `java/EstDrive.java` with javac into a temporary directory and runs it over BC's
JSSE provider (libbctls-java): cacerts, csrattrs, simpleenroll with HTTP Basic, simplereenroll
with the issued certificate as TLS client certificate, and serverkeygen. The files it writes
are checked here: issued by our CA, recorded in the ledger, keys matching.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from est_harness import RunningServer
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "kura-gw-1", "kura-password-1"
SOURCE = Path(__file__).parent / "java" / "EstDrive.java"
JARS = [Path("/usr/share/java") / f"{name}.jar" for name in ("bcprov", "bcpkix", "bctls", "bcutil")]
CONFIG = """\
[profile]
csrattrs = challengePassword, id-ecPublicKey=secp256r1
[label:ca:1]
validity_days = 30
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The `java` command line that runs the compiled EstDrive."""
    javac, java = require_tool("javac"), require_tool("java")
    missing = [str(jar) for jar in JARS if not jar.exists()]
    if missing:
        pytest.skip(f"Bouncy Castle is not installed ({missing[0]}; scripts/install-system-deps)")
    classes = tmp_path_factory.mktemp("bc-classes")
    classpath = ":".join(str(jar) for jar in JARS)
    compiled = subprocess.run(
        [javac, "-d", str(classes), "-cp", classpath, str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    return [java, "-cp", f"{classes}:{classpath}", "EstDrive"]


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def check_issued(server: RunningServer, path: Path, operation: str) -> x509.Certificate:
    [cert] = x509.load_pem_x509_certificates(path.read_bytes())
    cert.verify_directly_issued_by(server.state.ca.certificate)
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.operation == operation
    return cert


@pytest.mark.parametrize("label", ["", "ca:1"])
def test_every_operation_with_bouncy_castle(
    driver: list[str], server: RunningServer, tmp_path: Path, label: str
) -> None:
    args = ["127.0.0.1", str(server.port), label, str(server.ca_file), USER, PASSWORD]
    result = subprocess.run(
        [*driver, *args, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [
        "cacerts", "csrattrs", "simpleenroll", "simplereenroll", "serverkeygen"
    ]  # fmt: skip
    assert "ok cacerts 1 trusted=true" in lines
    assert "1.2.840.113549.1.9.7" in lines[1]  # challengePassword

    cacerts = x509.load_pem_x509_certificates((tmp_path / "cacerts.pem").read_bytes())
    assert set(cacerts) == set(server.state.ca.chain)
    enrolled = check_issued(server, tmp_path / "enrolled.pem", "simpleenroll")
    renewed = check_issued(server, tmp_path / "reenrolled.pem", "simplereenroll")
    assert renewed.subject == enrolled.subject and renewed.serial_number != enrolled.serial_number
    key = load_pem_private_key((tmp_path / "reenrolled.key.pem").read_bytes(), None)
    assert renewed.public_key() == key.public_key()
    generated = check_issued(server, tmp_path / "serverkeygen.pem", "serverkeygen")
    key = load_pem_private_key((tmp_path / "serverkeygen.key.pem").read_bytes(), None)
    assert generated.public_key() == key.public_key()
    if label:
        entries = [server.state.ledger.get(c.serial_number) for c in (enrolled, generated)]
        assert {entry.label for entry in entries if entry is not None} == {label}
