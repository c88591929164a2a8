"""scripts/est_client.py (the operators' workflow check) as a subprocess against the real server."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from est_harness import RunningServer, running_server
from python_est.client import fingerprint, load_certificates, load_private_key

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "workflow password"
STEPS = ["cacerts", "bootstrap page", "SRP enrollment", "re-enrollment", "csrattrs"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = "[profile]\ncsrattrs = challengePassword\n"
    with running_server(tmp_path_factory.mktemp("script"), cfg) as running:
        assert running.state.users is not None
        running.state.users.add("operator", PASSWORD, allowed_names=["sensor-12"])
        yield running


def run(server: RunningServer, tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "scripts" / "est_client.py"), "127.0.0.1", *args]
    command += ["--port", str(server.port), "--out-dir", str(tmp_path / "out"), "--timeout", "10"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    return done.returncode, done.stdout.splitlines()


def steps(lines: list[str]) -> dict[str, str]:
    """Step name -> "SUCCESS ..." or "FAILED: ...", checking the numbering on the way."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"\[(\d)\] ([^:]+): (SUCCESS.*|FAILED: .+)", line)
        if match:
            assert STEPS[int(match.group(1)) - 1] == match.group(2)
            found[match.group(2)] = match.group(3)
    assert list(found) == STEPS
    return found


def test_whole_workflow_with_an_explicit_trust_anchor(
    server: RunningServer, tmp_path: Path
) -> None:
    status, lines = run(
        server, tmp_path, "operator", PASSWORD, "sensor-12", "--cacert", str(server.ca_file)
    )
    result = steps(lines)
    assert status == 0, lines
    assert all(text.startswith("SUCCESS") for text in result.values()), result
    assert lines[0].startswith("EST Complete Workflow Test")
    assert lines[-1] == "5/5 steps succeeded"
    assert "1.2.840.113549.1.9.7" in result["csrattrs"]
    out = tmp_path / "out"
    key_file, cert_file = out / "sensor-12.key", out / "sensor-12.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cert = load_certificates(cert_file)[0]
    cert.verify_directly_issued_by(server.state.ca.certificate)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "sensor-12"
    assert cert.public_key() == load_private_key(key_file).public_key()
    # The file holds the renewed certificate; the ledger has both, one per operation.
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.operation == "simplereenroll"
    enrolled = re.search(r"replaces serial ([0-9A-F]+)", result["re-enrollment"])
    assert enrolled is not None
    first = server.state.ledger.get(int(enrolled.group(1), 16))
    assert first is not None and (first.operation, first.auth_method) == ("simpleenroll", "srp")
    assert load_certificates(out / "cacerts.pem") == list(server.state.ca.chain)


def test_bootstrap_mode_trusts_only_the_confirmed_fingerprint(
    server: RunningServer, tmp_path: Path
) -> None:
    root_fp = fingerprint(server.state.ca.root)
    status, lines = run(server, tmp_path, "operator", PASSWORD, "sensor-12")
    result = steps(lines)
    assert status == 1
    assert result["cacerts"].startswith("FAILED: server not authenticated")
    assert root_fp in result["cacerts"]
    # TLS-SRP authenticates the server by itself; the other steps need the trust anchor.
    assert result["SRP enrollment"].startswith("SUCCESS")
    for name in ("bootstrap page", "re-enrollment", "csrattrs"):
        assert result[name] == "FAILED: no trust anchor (step 1 failed)"

    status, lines = run(
        server, tmp_path, "operator", PASSWORD, "sensor-12", "--accept-fingerprint", root_fp
    )
    assert status == 0, lines
    assert "fingerprint accepted" in steps(lines)["cacerts"]


def test_wrong_password_fails_enrollment_and_what_depends_on_it(
    server: RunningServer, tmp_path: Path
) -> None:
    status, lines = run(
        server, tmp_path, "operator", "wrong", "sensor-12", "--cacert", str(server.ca_file)
    )
    result = steps(lines)
    assert status == 1
    assert result["cacerts"].startswith("SUCCESS")
    assert result["bootstrap page"].startswith("SUCCESS")
    assert result["SRP enrollment"] == (
        "FAILED: TLS-SRP handshake refused: wrong user name or password"
    )
    assert result["re-enrollment"] == "FAILED: no certificate to renew (step 3 failed)"
    assert lines[-1] == "3/5 steps succeeded"


def test_disabled_bootstrap_page_and_refused_name_are_reported(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv", "[bootstrap]\nenabled = no\n") as server:
        assert server.state.users is not None
        server.state.users.add("operator", PASSWORD)  # allowed names: only "operator"
        status, lines = run(
            server, tmp_path, "operator", PASSWORD, "sensor-12", "--cacert", str(server.ca_file)
        )
    result = steps(lines)
    assert status == 1
    assert result["bootstrap page"].startswith("FAILED: HTTP 404")
    assert result["SRP enrollment"].startswith("FAILED: HTTP 403")
    assert "'sensor-12' is not allowed for user 'operator'" in result["SRP enrollment"]


def test_the_older_argument_order_is_recognised_and_explained(
    server: RunningServer, tmp_path: Path
) -> None:
    # The older est_client.py: URL DEVICE USER PASSWORD. Run directly (it is executable).
    command = [
        str(ROOT / "scripts" / "est_client.py"), f"https://127.0.0.1:{server.port}",
        "sensor-12", "operator", PASSWORD, "--cacert", str(server.ca_file),
        "--out-dir", str(tmp_path / "out"), "--timeout", "10",
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert "recognised the older argument order URL DEVICE USER PASSWORD" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr  # not shown as a device name
    assert done.returncode == 0, done.stdout + done.stderr
    assert steps(done.stdout.splitlines())["SRP enrollment"].startswith("SUCCESS CN=sensor-12")
