"""A webhook for tests: stdlib http.server on 127.0.0.1, plain or TLS, answering from a script."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from python_est.ca import CertificateAuthority, certificate_pem, private_key_pem
from python_est.keys import KeyType


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, body, headers; `hang` waits (until the hook closes)."""

    status: int = 200
    body: bytes = b'{"decision": "allow"}'
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False


ALLOW = Answer()


def decision(verdict: str, reason: str | None = None) -> Answer:
    fields = {"decision": verdict} | ({} if reason is None else {"reason": reason})
    return Answer(body=json.dumps(fields).encode())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_cert: bool

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass
class Hook:
    """The scripted answers (the last one repeats) and every request received."""

    answers: list[Answer] = field(default_factory=lambda: [ALLOW])
    received: list[Received] = field(default_factory=list)
    port: int = 0
    scheme: str = "http"
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def next_answer(self, request: Received) -> Answer:
        with self.lock:
            self.received.append(request)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Poll until `count` requests have arrived (fails after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} webhook requests, expected {count}")


def _handler(hook: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            peer_cert = False
            if isinstance(self.connection, ssl.SSLSocket):
                peer_cert = self.connection.getpeercert() is not None
            answer = hook.next_answer(
                Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, peer_cert
                )
            )
            if answer.hang:
                hook.released.wait(30)
                return
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running_hook(
    answers: list[Answer] | None = None, context: ssl.SSLContext | None = None
) -> Iterator[Hook]:
    hook = Hook(answers=answers or [ALLOW])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hook))
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        hook.scheme = "https"
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class HookPki:
    """A CA for the webhook's certificate, the webhook's server context, a client credential."""

    ca_file: Path
    server_context: Callable[[bool], ssl.SSLContext]
    client_cert: Path
    client_key: Path


def make_hook_pki(directory: Path, name: str = "hook") -> HookPki:
    ca = CertificateAuthority.create(
        common_name=f"{name} webhook CA", key_type=KeyType.EC_P256, validity_days=30
    )
    cert, key = ca.issue_server_certificate(
        common_name="127.0.0.1",
        dns_names=["localhost"],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=KeyType.EC_P256,
        validity_days=30,
    )
    client, client_key = ca.issue_client_certificate(common_name="python-est")
    ca_file = directory / f"{name}-ca.pem"
    ca_file.write_bytes(certificate_pem(ca.root))
    server_pem, server_key = directory / f"{name}.pem", directory / f"{name}.key"
    server_pem.write_bytes(certificate_pem(cert))
    server_key.write_bytes(private_key_pem(key))
    client_pem, client_key_file = directory / f"{name}-client.pem", directory / f"{name}-client.key"
    client_pem.write_bytes(certificate_pem(client))
    client_key_file.write_bytes(private_key_pem(client_key))

    def server_context(require_client: bool) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(server_pem), str(server_key))
        if require_client:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(ca_file))
        return context

    return HookPki(ca_file, server_context, client_pem, client_key_file)
