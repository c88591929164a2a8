#!/usr/bin/env python3
"""The benchmark's baseline: the same EST service, served through Python's `ssl` (OpenSSL).

Everything but the TLS engine is the product's: the configuration and state, `build_app`'s
request handler (EstService behind the bootstrap page and the ops routes), the same client-chain
validator and the same `EstServer` accept loop, HTTP/1.1 framing, deadlines and logging. Only
the handshaker differs: an `ssl.SSLContext` (TLS 1.2, ECDHE with AES-GCM or ChaCha20, optional
client certificates verified by OpenSSL and then by `ClientChainValidator`, tls-unique from
`get_channel_binding`) instead of tlslite. TLS-SRP does not exist in `ssl`, so SRP clients fail.

    python scripts/bench_baseline.py -c CONFIG     # prints "listening on HOST:PORT"; SIGTERM stops

Used by `scripts/bench.py`; not part of the product.
"""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from python_est.app import build_app  # noqa: E402
from python_est.ca import certificate_pem  # noqa: E402
from python_est.cli.logs import setup_logging  # noqa: E402
from python_est.config import Config  # noqa: E402
from python_est.config.load import load_config  # noqa: E402
from python_est.errors import HandshakeFailed  # noqa: E402
from python_est.policy import ClientChainValidator, PeerIdentity, TlsInfo  # noqa: E402
from python_est.server import EstServer  # noqa: E402
from python_est.state import State, open_state  # noqa: E402

_VERSIONS = {"TLSv1.2": "TLS1.2", "TLSv1.3": "TLS1.3"}


class SslStream:
    """`python_est.tls.TlsStream`'s interface over an `ssl.SSLSocket`."""

    def __init__(self, tls: ssl.SSLSocket, deadline: float) -> None:
        self._tls = tls
        self.deadline = deadline

    cipher_implementation = "openssl"

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("connection deadline passed")
        self._tls.settimeout(remaining)

    def set_deadline(self, deadline: float) -> None:
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        self._arm()
        try:
            return self._tls.recv(size)
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS read failed: {exc.reason}") from None

    def sendall(self, data: bytes) -> None:
        self._arm()
        try:
            self._tls.sendall(data)
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS write failed: {exc.reason}") from None

    def close(self) -> None:
        try:
            self._tls.settimeout(1.0)
            self._tls.unwrap().close()  # close_notify, as tlslite's side sends it
        except (ssl.SSLError, OSError):
            self._tls.close()


class SslHandshaker:
    """`python_est.tls.TlsEndpoint`'s `handshake` over Python's `ssl`."""

    def __init__(self, config: Config, state: State, workdir: Path) -> None:
        self._validator = ClientChainValidator(
            state.client_trust_anchors,
            state.ledger.is_revoked,
            intermediates=state.ca.chain[:-1],
        )
        chain_file, key_file, anchors_file = (workdir / n for n in ("chain", "key", "anchors"))
        chain_file.write_bytes(b"".join(certificate_pem(c) for c in state.server.chain))
        key_file.write_bytes(
            state.server.private_key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
            )
        )
        # OpenSSL verifies first (it needs the issuing CAs as well, clients send leaves), then
        # the same validator as tlslite's path decides, with revocation from the ledger.
        anchors = (*state.client_trust_anchors, *state.ca.chain[:-1])
        anchors_file.write_bytes(b"".join(certificate_pem(c) for c in anchors))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = (
            ssl.TLSVersion.TLSv1_3 if config.tls.max_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        ctx.load_cert_chain(chain_file, key_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cafile=str(anchors_file))
        ctx.set_alpn_protocols(list(config.tls.alpn))
        self._ctx = ctx

    def handshake(
        self, sock: socket.socket, address: str, deadline: float
    ) -> tuple[SslStream, PeerIdentity]:
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            tls = self._ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise HandshakeFailed(f"{type(exc).__name__}: {exc}"[:200]) from None
        version = tls.version() or ""
        cipher = tls.cipher()
        info = TlsInfo(
            version=_VERSIONS.get(version, version),
            cipher_suite=cipher[0] if cipher else "",
            tls_unique=tls.get_channel_binding("tls-unique") if version != "TLSv1.3" else None,
            resumed=tls.session_reused,
        )
        der = tls.getpeercert(binary_form=True)
        client_cert = None
        if der:
            client_cert = self._validator.validate((x509.load_der_x509_certificate(der),))
        peer = PeerIdentity(address=address, tls=info, client_cert=client_cert)
        return SslStream(tls, deadline), peer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.format)
    state = open_state(config, create=False)
    _, handler = build_app(config, state)
    cfg = config.server
    with tempfile.TemporaryDirectory() as tmp:
        server = EstServer(
            address=cfg.address,
            port=cfg.port,
            handshaker=SslHandshaker(config, state, Path(tmp)),  # type: ignore[arg-type]
            handler=handler,
            max_connections=cfg.max_connections,
            backlog=cfg.backlog,
            handshake_timeout=cfg.handshake_timeout,
            request_timeout=cfg.request_timeout,
            max_body_bytes=cfg.max_body_bytes,
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        host, port = server.server_address
        print(f"baseline (Python ssl): listening on {host}:{port}", flush=True)
        try:
            server.serve_forever()
        finally:
            state.ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
