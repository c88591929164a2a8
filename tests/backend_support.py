"""Helpers for the issuing-backend tests (issue 18 item 1): an upstream python-est with an RA
certificate, and a stub HTTPS upstream that answers what a test tells it to."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from est_harness import RunningServer, write_credentials
from python_est.oids import ID_KP_CMC_RA


def ra_certificate(upstream: RunningServer, directory: Path) -> tuple[Path, Path]:
    """An RA certificate (clientAuth, cmcRA: RFC 7030 §3.7) from the upstream's CA."""
    cert, key = upstream.state.ca.issue_client_certificate(
        common_name="ra-1", extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA)
    )
    return write_credentials(directory, "ra-1", cert, key)


@dataclass
class Stub:
    """What the stub answers (status, headers, body), and the request headers it saw."""

    port: int = 0
    status: int = 500
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    body: bytes = b"upstream exploded\n"
    seen: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def stub_upstream(tls_of: RunningServer, directory: Path) -> Iterator[Stub]:
    """An HTTPS server on 127.0.0.1 with `tls_of`'s server certificate (so the same CA file
    verifies it) answering every request with the stub's status, headers and body."""
    state = tls_of.state.server
    cert_file, key_file = directory / "stub.pem", directory / "stub.key"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in state.chain))
    key_file.write_bytes(
        state.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    stub = Stub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            stub.seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(stub.status)
            for name, value in stub.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(stub.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(stub.body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
