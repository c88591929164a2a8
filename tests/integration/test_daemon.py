"""The daemon as systemd runs it: a real `python main.py -c CFG` process and its signals.

SIGHUP swaps in new TLS credentials and configuration without dropping anybody and refuses a bad
configuration; SIGTERM lets a request in flight finish and exits 0; sd_notify tells systemd
about each step.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509

from est_harness import (
    Daemon,
    basic,
    build_request,
    csr_body,
    daemon,
    https,
    make_csr,
    merge_config,
    poll,
    prepare_state,
    read_all,
)
from python_est.ca import CertificateAuthority, certificate_pem, private_key_pem
from python_est.keys import KeyType

pytestmark = pytest.mark.integration

PASSWORD = "a daemon test password"


def served_certificate(running: Daemon) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def cacerts_status(running: Daemon) -> int:
    request = build_request("GET", "/.well-known/est/cacerts", port=running.port)
    return https(running.port, request, cafile=running.root / "state" / "ca" / "ca.pem").status


def replace_server_certificate(root: Path) -> x509.Certificate:
    """Issue a new server certificate from the daemon's CA and write it over the old files."""
    tls_dir = root / "state" / "tls"
    ca = CertificateAuthority.from_pem(
        (root / "state" / "ca" / "ca.pem").read_bytes(),
        (root / "state" / "ca" / "ca.key").read_bytes(),
    )
    cert, key = ca.issue_server_certificate(
        common_name="renewed.example",
        dns_names=["localhost", "renewed.example"],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=KeyType.EC_P256,
        validity_days=30,
    )
    (tls_dir / "server.key").write_bytes(private_key_pem(key))
    (tls_dir / "server.pem").write_bytes(certificate_pem(cert) + certificate_pem(ca.certificate))
    return cert


def test_sighup_reloads_credentials_and_refuses_a_bad_config(tmp_path: Path) -> None:
    with daemon(tmp_path) as running:
        assert running.notify is not None
        running.notify.wait_for("READY=1")
        before = served_certificate(running)
        renewed = replace_server_certificate(tmp_path)
        assert served_certificate(running).serial_number == before.serial_number

        running.send(signal.SIGHUP)
        reloading = running.notify.wait_for("RELOADING=1")
        assert "\nMONOTONIC_USEC=" in reloading
        running.notify.wait_for("READY=1")
        running.wait_for(r"reloaded the configuration from ")
        assert served_certificate(running).serial_number == renewed.serial_number

        # A broken file, then a key file that does not exist: refused, still serving.
        good = running.config.read_text()
        running.config.write_text(merge_config(good, "[server]\nport = eighty\n"))
        running.send(signal.SIGHUP)
        refused = running.wait_for(r"reload refused")
        assert "[server] port" in refused[0]
        missing = tmp_path / "absent.key"
        tls = f"[tls]\ncert_file = {tmp_path}/state/tls/server.pem\nkey_file = {missing}\n"
        running.config.write_text(merge_config(good, tls))
        running.send(signal.SIGHUP)
        refused = running.wait_for(r"reload refused", count=2)
        assert "[tls] key_file" in refused[1] and "does not exist" in refused[1]
        assert len([m for m in running.log().splitlines() if "reload refused" in m]) == 2
        assert served_certificate(running).serial_number == renewed.serial_number
        assert cacerts_status(running) == 200

        # A change of port needs a restart: named, and the running port kept.
        running.config.write_text(merge_config(good, "[server]\nport = 1\n"))
        running.send(signal.SIGHUP)
        running.wait_for(r"\[server\] port changed: restart to apply it")
        running.wait_for(r"reloaded the configuration from ", count=2)
        assert cacerts_status(running) == 200

        assert running.stop() == 0
        running.notify.wait_for("STOPPING=1")


def test_sigterm_lets_a_request_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    extra = "[server]\nshutdown_grace = 10\nrequest_timeout = 10\n"
    prepare_state(tmp_path, extra, {"slow-device": PASSWORD})
    with daemon(tmp_path, extra) as running:
        csr, _ = make_csr("slow-device")
        body = csr_body(csr)
        head, _, _ = build_request(
            "POST",
            "/.well-known/est/simpleenroll",
            body,
            {"Content-Type": "application/pkcs10", "Authorization": basic("slow-device", PASSWORD)},
            running.port,
        ).partition(b"\r\n\r\n")
        context = ssl.create_default_context(cafile=str(tmp_path / "state" / "ca" / "ca.pem"))
        with socket.create_connection(("127.0.0.1", running.port), timeout=15) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(head + b"\r\n\r\n")
                running.send(signal.SIGTERM)
                running.wait_for(r"received SIGTERM; stopping")
                # Stopped accepting: a new connection is refused while this one is served.
                poll("the listener closed", lambda: refused(running.port), timeout=5)
                tls.sendall(body)
                reply = read_all(tls)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert running.proc.wait(15) == 0
        assert running.notify is not None
        running.notify.wait_for("STOPPING=1")
        assert "stopped" in running.log().splitlines()[-1]


def test_sigterm_cuts_connections_still_open_after_the_grace_period(tmp_path: Path) -> None:
    extra = "[server]\nshutdown_grace = 1\nrequest_timeout = 60\n"
    with daemon(tmp_path, extra, notify=False) as running:
        context = ssl.create_default_context(cafile=str(tmp_path / "state" / "ca" / "ca.pem"))
        with socket.create_connection(("127.0.0.1", running.port), timeout=15) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /.well-known/est/cacerts HTTP/1.1\r\n")  # and never the rest
                time.sleep(0.3)
                started = time.monotonic()
                running.send(signal.SIGTERM)
                assert running.proc.wait(15) == 0
                assert time.monotonic() - started < 8
                assert read_all(tls) == b""
        running.wait_for(r"1 connection\(s\) still open after 1s; closing them")


def test_sigint_stops_like_sigterm(tmp_path: Path) -> None:
    with daemon(tmp_path, notify=False) as running:
        running.send(signal.SIGINT)
        assert running.proc.wait(15) == 0
        running.wait_for(r"received SIGINT; stopping")
