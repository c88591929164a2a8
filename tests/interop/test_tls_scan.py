"""TLS scan of the default configuration with testssl.sh (Debian package `testssl.sh`).

Fails on any of: SSLv2/SSLv3/TLS 1.0/TLS 1.1 offered, RSA key exchange, 3DES/RC4/DES/NULL/
EXPORT/anonymous suites, a certificate suite without forward secrecy, insecure renegotiation,
or any HIGH/CRITICAL finding. testssl.sh cannot log in with SRP, so the SRP route is probed
with a tlslite client below: TLS 1.2 only, AES-CBC with encrypt-then-MAC, no 3DES.

The checks: -p (protocols), -s (cipher categories), -f (forward secrecy), -R (renegotiation),
-E (every suite per protocol); about 15 s against the default configuration.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.errors import TLSAlert

from est_harness import RunningServer, build_request, parse_reply, read_all, running_server
from tests.conftest import require_tool

Finding = dict[str, Any]

OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
WEAK_CIPHER_LISTS = (
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",  # 64-bit, DES, RC2, RC4
    "cipherlist_3DES_IDEA",
)
WEAK_NAMES = ("3DES", "_DES_", "RC4", "NULL", "EXPORT", "anon", "IDEA")
FORWARD_SECRET = ("TLS_ECDHE_", "TLS_DHE_", "TLS_AES_", "TLS_CHACHA20_")  # 1.3 suites are FS


def scan_problems(findings: list[Finding]) -> list[str]:
    """What in a testssl.sh JSON result breaks the policy; empty when it passes."""
    by_id = {f["id"]: f for f in findings}
    problems = []
    for name in OLD_PROTOCOLS + WEAK_CIPHER_LISTS:
        finding = by_id.get(name)
        if finding is None:
            problems.append(f"{name}: not tested")
        elif not finding["finding"].startswith("not offered"):
            problems.append(f"{name}: {finding['finding']}")
    suites = [f["finding"] for f in findings if f["id"].startswith("cipher-")]
    if not suites:
        problems.append("no cipher suite enumerated")
    for line in suites:
        words = line.split()
        iana = words[-1]
        if not line.startswith(("TLS 1.2", "TLS 1.3")):
            problems.append(f"suite on an old protocol: {line}")
        if iana.startswith("TLS_RSA_"):
            problems.append(f"RSA key exchange: {iana}")
        if any(weak in iana for weak in WEAK_NAMES):
            problems.append(f"weak suite: {iana}")
        if not iana.startswith(FORWARD_SECRET):
            problems.append(f"no forward secrecy: {iana}")
    for name in ("PFS", "secure_renego", "secure_client_renego"):
        finding = by_id.get(name)
        if finding is None or finding["severity"] not in ("OK", "INFO", "LOW"):
            problems.append(f"{name}: {finding and finding['finding']}")
    problems += [
        f"{f['id']}: {f['finding']}" for f in findings if f["severity"] in ("HIGH", "CRITICAL")
    ]
    return problems


@pytest.mark.interop
def test_default_configuration_passes_testssl(tmp_path: Path) -> None:
    testssl = require_tool("testssl")
    with running_server(tmp_path / "server") as server:
        out = tmp_path / "testssl.json"
        done = subprocess.run(
            [
                testssl, "--quiet", "--color", "0", "--warnings", "off",
                "-p", "-s", "-f", "-R", "-E",
                "--jsonfile", str(out),
                f"127.0.0.1:{server.port}",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )  # fmt: skip
    assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    findings: list[Finding] = json.loads(out.read_text())
    suites = sorted(f["finding"].split()[-1] for f in findings if f["id"].startswith("cipher-"))
    print("testssl.sh suites:", suites)  # for docs/reliability.md
    assert scan_problems(findings) == []


def test_the_policy_check_catches_a_legacy_server() -> None:
    # Findings as testssl.sh 3.0.8 reports the legacy settings of config/python_est.cfg
    # (TLS 1.0, RSA key exchange, 3DES), abridged: the check must refuse each of them.
    offered = {"id": "TLS1", "severity": "LOW", "finding": "offered (deprecated)"}
    clean = [
        {"id": name, "severity": "OK", "finding": "not offered"}
        for name in (*OLD_PROTOCOLS[:2], OLD_PROTOCOLS[3], *WEAK_CIPHER_LISTS[:-1])
    ]
    findings = [
        *clean,
        offered,
        {"id": "cipherlist_3DES_IDEA", "severity": "MEDIUM", "finding": "offered"},
        {"id": "PFS", "severity": "OK", "finding": "offered"},
        {"id": "secure_renego", "severity": "OK", "finding": "supported"},
        {"id": "secure_client_renego", "severity": "OK", "finding": "not vulnerable"},
        {
            "id": "cipher-tls1_2_x35",
            "severity": "INFO",
            "finding": "TLS 1.2 x35 AES256-SHA RSA AES 256 TLS_RSA_WITH_AES_256_CBC_SHA",
        },
        {
            "id": "cipher-tls1_xc014",
            "severity": "INFO",
            "finding": "TLS 1 xc014 ECDHE-RSA-AES256-SHA ECDH 521 AES 256 "
            "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        },
    ]
    problems = scan_problems(findings)
    assert "TLS1: offered (deprecated)" in problems
    assert "cipherlist_3DES_IDEA: offered" in problems
    assert "RSA key exchange: TLS_RSA_WITH_AES_256_CBC_SHA" in problems
    assert "no forward secrecy: TLS_RSA_WITH_AES_256_CBC_SHA" in problems
    assert any(p.startswith("suite on an old protocol: TLS 1 ") for p in problems)
    assert scan_problems([f for f in findings if f is not offered]).count("TLS1: not tested") == 1


# --- the SRP route, which scanners cannot reach -------------------------------------------------

USER, PASSWORD = "alice", "alice password 1"


@pytest.fixture
def srp_server(start_est_server: Any) -> RunningServer:
    server: RunningServer = start_est_server("")
    assert server.state.users is not None
    server.state.users.add(USER, PASSWORD, group_bits=2048)
    return server


def _srp_handshake(server: RunningServer, **settings: Any) -> TLSConnection:
    options = HandshakeSettings()
    options.keyExchangeNames = ["srp_sha_rsa", "srp_sha"]
    options.maxVersion = (3, 3)
    for name, value in settings.items():
        setattr(options, name, value)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn = TLSConnection(sock)
    try:
        conn.handshakeClientSRP(USER, PASSWORD, settings=options)
    except BaseException:
        sock.close()
        raise
    return conn


@pytest.mark.integration
def test_srp_route_is_tls12_aes_cbc_with_encrypt_then_mac(srp_server: RunningServer) -> None:
    conn = _srp_handshake(srp_server, cipherNames=["aes256", "aes128"])
    try:
        assert tuple(conn.version) == (3, 3)
        assert conn.getCipherName() in ("aes128", "aes256")
        assert conn.encryptThenMAC
        conn.sendall(build_request("GET", "/.well-known/est/cacerts", port=srp_server.port))
        assert parse_reply(read_all(conn)).status == 200
    finally:
        conn.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    "settings",
    [
        {"minVersion": (3, 1), "maxVersion": (3, 2), "cipherNames": ["aes128"]},  # TLS 1.0-1.1
        {"cipherNames": ["3des"]},
        {"cipherNames": ["rc4"]},
    ],
    ids=["tls1.0-1.1", "3des", "rc4"],
)
def test_srp_route_refuses_legacy_settings(
    srp_server: RunningServer, settings: dict[str, Any]
) -> None:
    with pytest.raises(TLSAlert):
        _srp_handshake(srp_server, **settings).close()
