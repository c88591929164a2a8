"""Shared by scripts/soak.py, scripts/fuzz.py and the reliability tests: run python-est as a
subprocess (`python main.py -c CFG`) on 127.0.0.1 and talk EST to it with small clients.

The clients are deliberately independent of `python_est.client`: raw HTTP/1.1 over Python `ssl`
(OpenSSL) for Basic and certificate clients, and tlslite-ng for TLS-SRP, the way devices do it.
"""

from __future__ import annotations

import base64
import configparser
import io
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from tlslite.api import HandshakeSettings, TLSConnection  # noqa: E402

from python_est import wire  # noqa: E402

EST = "/.well-known/est"
BASE_CONFIG = """\
[server]
address = 127.0.0.1
port = 0
state_dir = state
[ca]
key_type = ec-p256
"""
_LISTENING = re.compile(r"listening on (\S+):(\d+)")


def write_config(root: Path, *extras: str) -> Path:
    """Write `est.cfg` under `root`: BASE_CONFIG with the sections and keys of `extras` merged
    in order (later keys win)."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    for text in (BASE_CONFIG, *extras):
        parser.read_string(text)
    out = io.StringIO()
    parser.write(out)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "est.cfg"
    path.write_text(out.getvalue())
    return path


def cli(
    cfg: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python main.py -c CFG ARGS...` and return the finished process (text output)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "-c", str(cfg), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def init_state(cfg: Path, users: dict[str, str]) -> None:
    """`init`, then `user add` for each name and password; raises on failure."""
    for args, stdin in [(("init",), None)] + [
        (("user", "add", name, "--password-stdin"), password + "\n")
        for name, password in users.items()
    ]:
        done = cli(cfg, *args, stdin=stdin)
        if done.returncode != 0:
            raise RuntimeError(f"python-est {' '.join(args)} failed: {done.stderr.strip()}")


class ServerProcess:
    """`python main.py -c CFG` as a child process; stderr (the log) goes to `log_path`.

    Use as a context manager, or call `start` and `stop`.
    """

    def __init__(self, cfg: Path, log_path: Path, args: tuple[str, ...] = ()) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.args = args
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None
        self._log: io.BufferedWriter | None = None
        self.stdout_lines: list[str] = []

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 60) -> ServerProcess:
        """Start the server and wait for its "listening on host:port" line."""
        self._log = open(self.log_path, "ab")  # closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "-c", str(self.cfg), *self.args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        found = threading.Event()
        stdout = self._proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                self.stdout_lines.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(2))
                    found.set()

        self._pump = threading.Thread(target=pump, name="server-stdout", daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start; log: {self.log_tail()}")
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs (a power cut, the OOM killer)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        status = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(10)
            status = self._proc.returncode
            if self._pump is not None:
                self._pump.join(5)  # it ends at EOF, now that the process is gone
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return status

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_kib(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def threads(self) -> int:
        return _status_field(self.pid, "Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


# --- clients ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def certificates(self) -> list[x509.Certificate]:
        return wire.decode_certs_only(self.body)


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_body(common_name: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A base64 PKCS#10 body (RFC 7030 §4.2.1) for `common_name`."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return wire.encode_base64(csr.public_bytes(serialization.Encoding.DER))


def enroll_request(path: str, body: bytes, authorization: str | None = None) -> bytes:
    headers = {"Content-Type": "application/pkcs10"}
    if authorization:
        headers["Authorization"] = authorization
    return request_bytes("POST", path, body, headers)


def parse_reply(raw: bytes) -> Reply:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"incomplete HTTP response ({len(raw)} bytes)")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def client_context(
    cafile: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def https(
    port: int, context: ssl.SSLContext, raw: bytes, *, timeout: float = 60, source: str = ""
) -> Reply:
    """One request over Python ssl; the server closes after the response."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    ) as sock:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(raw)
            return parse_reply(_read_all(tls))


def srp(
    port: int, user: str, password: str, raw: bytes, *, timeout: float = 60, source: str = ""
) -> Reply:
    """One request over TLS-SRP with tlslite-ng (SRP-RSA or plain SRP suites, TLS 1.2)."""
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha_rsa", "srp_sha"]
    settings.cipherNames = ["aes256", "aes128"]
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    ) as sock:
        conn = TLSConnection(sock)
        conn.handshakeClientSRP(user, password, settings=settings)
        conn.sendall(raw)
        return parse_reply(_read_all(conn))


def _read_all(conn: ssl.SSLSocket | TLSConnection) -> bytes:
    chunks = []
    while True:
        try:
            data = conn.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(bytes(data))
    return b"".join(chunks)


def write_pem(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """Write the certificate and key as PEM files `path`.pem and `path`.key (0600)."""
    cert_path, key_path = path.with_suffix(".pem"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def ledger_serials(ledger_path: Path) -> list[int]:
    """Every serial in the ledger, read-only (safe while the server runs)."""
    from python_est.ledger import SqliteLedger

    with SqliteLedger(ledger_path, read_only=True) as ledger:
        serials: list[int] = []
        while page := ledger.list_certificates(limit=1000, offset=len(serials)):
            serials += [entry.serial for entry in page]
        return serials
