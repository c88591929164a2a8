#!/usr/bin/env python3
"""/serverkeygen latency per key type: median of N requests. Prints figures; asserts nothing.

In process, `EstService.handle` is timed from request to response: authentication (a TLS-SRP
identity, so no password maths), CSR parsing, key generation, signing, the durable ledger commit
and the multipart body. Key generation alone is timed too, since it dominates for RSA. With
`--tls`, whole requests are also timed over TLS 1.2 against a real server (Python `ssl` client,
HTTP Basic, a new connection per request). `--encrypted` times, in the same run, plaintext
against encrypted keys (RFC 7030 §4.4.2) for RSA-2048 and P-256 device keys: a KEK
(KEKRecipientInfo), an RSA-2048 client certificate (RSA-OAEP key transport) and a P-256 client
certificate (ECDH key agreement); the server signs each key package with an EC P-256 TLS key.

    python scripts/bench_serverkeygen.py [--runs 50] [--tls] [--encrypted]
"""

from __future__ import annotations

import argparse
import base64
import functools
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.app import build_server
from python_est.ca import CertificateAuthority, certificate_pem
from python_est.config import LabelConfig, load_config
from python_est.keys import KeyType, generate_private_key
from python_est.ledger import IssuedCertificate, SqliteLedger
from python_est.messages import HttpRequest
from python_est.policy import ClientCertificate, PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService, signer_from
from python_est.state import open_state
from python_est.wire.envelope import AES_CBC, AES_WRAP, ECDH_SCHEMES, ID_RSAES_OAEP
from python_est.wire.keyrequest import KeyProtection, capability_list, with_key_protection

KEY_TYPES = (KeyType.RSA_2048, KeyType.RSA_3072, KeyType.EC_P256)
USER, PASSWORD = "bench", "bench password"


def csr_body(common_name: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def describe(samples: list[float]) -> str:
    deciles = statistics.quantiles(samples, n=10)
    return (
        f"median {statistics.median(samples):8.2f} ms   "
        f"p10 {deciles[0]:8.2f}   p90 {deciles[-1]:8.2f}"
    )


def in_process(runs: int, ca_key_type: KeyType, workdir: Path) -> None:
    ca = CertificateAuthority.create(common_name="Bench CA", key_type=ca_key_type, validity_days=2)
    labels = {
        key_type.value: LabelConfig(
            name=key_type.value, serverkeygen_key_type=key_type, password_subjects="any"
        )
        for key_type in KEY_TYPES
    }
    service = EstService(
        labels=labels,
        ca=ca,
        ledger=SqliteLedger(workdir / "ledger.sqlite3"),
        users=None,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="bench",
    )
    peer = PeerIdentity(
        "127.0.0.1:1", TlsInfo("TLS1.2", "TLS_SRP_SHA_WITH_AES_128_CBC_SHA"), srp_user=USER
    )
    body = csr_body(USER)
    print(f"in process: EstService.handle, CA key {ca_key_type.value}, {runs} runs each")
    for key_type in KEY_TYPES:
        request = HttpRequest(
            "POST",
            f"/.well-known/est/{key_type.value}/serverkeygen",
            (("content-type", "application/pkcs10"),),
            body,
        )

        def once(request: HttpRequest = request) -> None:
            response = service.handle(request, peer)
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")

        keygen = timed(functools.partial(generate_private_key, key_type), runs)
        print(f"  {key_type.value:9} handle  {describe(timed(once, runs))}")
        print(f"  {key_type.value:9} keygen  {describe(keygen)}")


def over_tls(runs: int, workdir: Path) -> None:
    root = workdir / "tls"
    root.mkdir()
    cfg = root / "est.cfg"
    sections = "".join(f"[label:{t.value}]\nserverkeygen_key_type = {t.value}\n" for t in KEY_TYPES)
    cfg.write_text(
        "[server]\naddress = 127.0.0.1\nport = 0\nstate_dir = state\n"
        "[tls]\nserver_key_type = ec-p256\n" + sections
    )
    config = load_config(cfg)
    state = open_state(config, create=True)
    assert state.users is not None
    state.users.add(USER, PASSWORD)
    server = build_server(config, state)
    thread = server.start_in_thread()
    ca_file = root / "ca.pem"
    ca_file.write_bytes(certificate_pem(state.ca.root))
    context = ssl.create_default_context(cafile=str(ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    port = server.server_address[1]
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    body = csr_body(USER)
    print(f"over TLS 1.2: new connection + HTTP Basic + serverkeygen, {runs} runs each")
    try:
        for key_type in KEY_TYPES:
            raw = (
                f"POST /.well-known/est/{key_type.value}/serverkeygen HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nContent-Type: application/pkcs10\r\n"
                f"Authorization: Basic {token}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode() + body

            def once(raw: bytes = raw) -> None:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                        tls.sendall(raw)
                        reply = b""
                        while chunk := tls.recv(65536):
                            reply += chunk
                if not reply.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(reply[:80].decode("latin-1"))

            print(f"  {key_type.value:9} request {describe(timed(once, runs))}")
    finally:
        server.shutdown(grace=2.0)
        thread.join(timeout=5)
        state.ledger.close()


def device_certificate(ca: CertificateAuthority, key_type: KeyType) -> x509.Certificate:
    # No keyUsage (unrestricted, RFC 7030 §4.4.1.2), a subjectKeyIdentifier to be named by.
    now = datetime.now(timezone.utc)
    key = generate_private_key(key_type)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, USER)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca.private_key, hashes.SHA256())
    )


def encrypted(runs: int, workdir: Path) -> None:
    ca = CertificateAuthority.create(
        common_name="Bench CA", key_type=KeyType.EC_P256, validity_days=2
    )
    server_cert, server_key = ca.issue_server_certificate(
        common_name="bench",
        dns_names=["localhost"],
        ip_addresses=[],
        validity_days=2,
        key_type=KeyType.EC_P256,
    )
    kek = bytes(range(32))
    device_types = (KeyType.RSA_2048, KeyType.EC_P256)
    labels = {
        t.value: LabelConfig(name=t.value, serverkeygen_key_type=t, password_subjects="any")
        for t in device_types
    }
    ledger = SqliteLedger(workdir / "enc.sqlite3")
    service = EstService(
        labels=labels,
        ca=ca,
        ledger=ledger,
        users=None,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="bench",
        key_signer=signer_from(server_key, (server_cert, *ca.chain)),
        keks=lambda label, kek_id: kek if kek_id == b"bench" else None,
    )
    tls = TlsInfo("TLS1.2", "TLS_SRP_SHA_WITH_AES_128_CBC_SHA")
    csr_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, USER)]))
        .sign(csr_key, hashes.SHA256())
    )

    def cases(label: str) -> dict[str, tuple[x509.CertificateSigningRequest, PeerIdentity]]:
        # One certificate per label: a holder's certificate counts only on its own label.
        plain = PeerIdentity("127.0.0.1:1", tls, srp_user=USER)
        kek_csr = with_key_protection(
            csr,
            csr_key,
            KeyProtection(b"bench", None, capability_list([AES_WRAP[32], AES_CBC[16]])),
        )
        found = {"plaintext": (csr, plain), "kekri (AES-256 wrap)": (kek_csr, plain)}
        for name, recipient_type, caps in (
            ("ktri (RSA-2048 OAEP)", KeyType.RSA_2048, [ID_RSAES_OAEP, AES_CBC[16]]),
            ("kari (P-256 ECDH)", KeyType.EC_P256, [next(iter(ECDH_SCHEMES)), AES_CBC[16]]),
        ):
            cert = device_certificate(ca, recipient_type)
            ledger.record(
                IssuedCertificate.from_certificate(
                    cert,
                    requester=USER,
                    auth_method="bench",
                    label=label,
                    operation="simpleenroll",
                    server_generated_key=False,
                    issued_at=datetime.now(timezone.utc),
                )
            )
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            protected = with_key_protection(
                csr, csr_key, KeyProtection(None, ski, capability_list(caps))
            )
            peer = PeerIdentity(
                "127.0.0.1:1", tls, client_cert=ClientCertificate((cert,), True), srp_user=USER
            )
            found[name] = (protected, peer)
        return found

    print(f"in process: plaintext against encrypted keys, CA and signer EC P-256, {runs} runs each")
    for key_type in device_types:
        for name, (csr_value, case_peer) in cases(key_type.value).items():
            request = HttpRequest(
                "POST",
                f"/.well-known/est/{key_type.value}/serverkeygen",
                (("content-type", "application/pkcs10"),),
                base64.b64encode(csr_value.public_bytes(serialization.Encoding.DER)),
            )

            def once(request: HttpRequest = request, peer: PeerIdentity = case_peer) -> None:
                response = service.handle(request, peer)
                if response.status != 200:
                    raise RuntimeError(f"{response.status} {response.body[:120]!r}")

            print(f"  {key_type.value:9} {name:22} {describe(timed(once, runs))}")
    ledger.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--ca-key-type", type=KeyType, default=KeyType.RSA_3072, help="default: rsa-3072"
    )
    parser.add_argument("--tls", action="store_true", help="also time requests over TLS")
    parser.add_argument(
        "--encrypted", action="store_true", help="only: plaintext against encrypted keys"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.encrypted:
            encrypted(args.runs, Path(tmp))
            return 0
        in_process(args.runs, args.ca_key_type, Path(tmp))
        if args.tls:
            over_tls(args.runs, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
