"""The complete EST workflow as operators run it (scripts/est_client.py), one result per step.

1 cacerts (explicit trust anchor, or RFC 7030 §4.1.1 bootstrap with a confirmed fingerprint),
2 the bootstrap page answers, 3 TLS-SRP enrollment of the device, 4 re-enrollment with the new
certificate, 5 csrattrs. A failed step does not stop the others unless they depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from python_est.client.est import Credentials, EstClient
from python_est.client.files import (
    ClientKey,
    build_csr,
    fingerprint,
    is_self_signed,
    load_certificates,
    new_key,
    normalize_fingerprint,
    renewal_csr,
    write_certificates,
    write_private_key,
)
from python_est.client.transport import CertificateFiles, ClientError, Password, Trust
from python_est.keys import KeyType


@dataclass(frozen=True)
class WorkflowOptions:
    """What the workflow needs.

    Attributes:
        host, port: the EST server.
        user, password: the SRP user (the same store serves Basic and the bootstrap page).
        device: the common name to enroll.
        cacert: explicit trust anchors; None for bootstrap mode.
        accept_fingerprint: in bootstrap mode, the root's SHA-256 fingerprint known out of band.
        label: CA label ("" for none).
        bootstrap_path: where the bootstrap page lives.
        out_dir: where the device key (0600), certificate and CA certificates are written.
        key_type: the device key.
        timeout: seconds per connection.
    """

    host: str
    user: str
    password: str = field(repr=False)
    device: str
    port: int = 8443
    cacert: Path | None = None
    accept_fingerprint: str | None = None
    label: str = ""
    bootstrap_path: str = "/bootstrap"
    out_dir: Path = Path(".")
    key_type: KeyType = KeyType.EC_P256
    timeout: float = 30.0


@dataclass(frozen=True)
class StepResult:
    """The outcome of one numbered step."""

    number: int
    name: str
    ok: bool
    detail: str

    @property
    def line(self) -> str:
        """`[n] name: SUCCESS detail` or `[n] name: FAILED: reason`."""
        if self.ok:
            return f"[{self.number}] {self.name}: SUCCESS {self.detail}".rstrip()
        return f"[{self.number}] {self.name}: FAILED: {self.detail}"


class _Skipped(Exception):
    """A step cannot run because an earlier one failed."""


def run_workflow(
    options: WorkflowOptions, report: Callable[[StepResult], None] = lambda result: None
) -> list[StepResult]:
    """Run the five steps in order; `report` is called with each result as it is known.

    Returns:
        The five results.
    """
    run = _Run(options)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("cacerts", run.cacerts),
        ("bootstrap page", run.bootstrap_page),
        ("SRP enrollment", run.srp_enroll),
        ("re-enrollment", run.reenroll),
        ("csrattrs", run.csrattrs),
    ]
    results = []
    for number, (name, step) in enumerate(steps, start=1):
        try:
            result = StepResult(number, name, True, step())
        except (ClientError, _Skipped, ValueError, OSError) as exc:
            result = StepResult(number, name, False, str(exc) or type(exc).__name__)
        report(result)
        results.append(result)
    return results


class _Run:
    def __init__(self, options: WorkflowOptions) -> None:
        self.options = options
        self.anchors: tuple[x509.Certificate, ...] | None = None
        self.key: ClientKey | None = None
        self.cert: x509.Certificate | None = None
        stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in options.device)
        self.key_file = options.out_dir / f"{stem or 'device'}.key"
        self.cert_file = options.out_dir / f"{stem or 'device'}.pem"

    def client(self, credentials: Credentials | None = None, *, verify: bool = True) -> EstClient:
        options = self.options
        return EstClient(
            options.host,
            options.port,
            label=options.label,
            trust=Trust(anchors=self.anchors or (), verify=verify),
            credentials=credentials,
            timeout=options.timeout,
        )

    def trusted_client(self, credentials: Credentials | None = None) -> EstClient:
        if self.anchors is None:
            raise _Skipped("no trust anchor (step 1 failed)")
        return self.client(credentials)

    def cacerts(self) -> str:
        options = self.options
        if options.cacert is not None:
            self.anchors = tuple(load_certificates(options.cacert))
            certs = self.client().cacerts()
            how = f"verified with {options.cacert.name}"
        else:
            # RFC 7030 §4.1.1: without a trust anchor the certificates are fetched unverified and
            # trusted only when a root matches a fingerprint the operator obtained out of band.
            certs = self.client(verify=False).cacerts()
            found = [fingerprint(cert) for cert in certs if is_self_signed(cert)]
            shown = ", ".join(found) or "none"
            if options.accept_fingerprint is None:
                raise ClientError(
                    f"server not authenticated; root SHA-256 fingerprint {shown}; check it out "
                    "of band and pass --accept-fingerprint"
                )
            wanted = normalize_fingerprint(options.accept_fingerprint)
            if wanted not in {normalize_fingerprint(fp) for fp in found}:
                raise ClientError(f"root fingerprint {shown} is not the accepted one")
            self.anchors = tuple(certs)
            how = "bootstrap, fingerprint accepted"
        path = options.out_dir / "cacerts.pem"
        write_certificates(path, certs)
        roots = [fingerprint(cert) for cert in certs if is_self_signed(cert)]
        return f"{len(certs)} CA certificate(s) ({how}); root SHA-256 {', '.join(roots)}"

    def bootstrap_page(self) -> str:
        reply = self.trusted_client().request("GET", self.options.bootstrap_path)
        content_type = reply.header("content-type") or ""
        if reply.status != 200:
            raise ClientError(reply.message)
        if not content_type.startswith("text/html") or b"<form" not in reply.body:
            raise ClientError("the page is not an HTML form")
        return f"HTTP 200 {self.options.bootstrap_path} ({len(reply.body)} bytes, form present)"

    def srp_enroll(self) -> str:
        options = self.options
        credentials = Credentials(srp=Password(options.user, options.password))
        client = self.client(credentials)  # SRP authenticates the server even without anchors
        key = new_key(options.key_type)
        cert = client.simpleenroll(build_csr(key, common_name=options.device))
        write_private_key(self.key_file, key)
        write_certificates(self.cert_file, [cert])
        self.key, self.cert = key, cert
        return f"{_describe(cert)}; key {self.key_file}"

    def reenroll(self) -> str:
        if self.key is None or self.cert is None:
            raise _Skipped("no certificate to renew (step 3 failed)")
        current = CertificateFiles(self.cert_file, self.key_file)
        client = self.trusted_client(Credentials(client_cert=current))
        cert = client.simplereenroll(renewal_csr(self.key, self.cert))
        write_certificates(self.cert_file, [cert])
        return f"{_describe(cert)}; replaces serial {self.cert.serial_number:X}"

    def csrattrs(self) -> str:
        attrs = self.trusted_client().csrattrs()
        if not attrs:
            return "no attributes requested"
        names = [item if isinstance(item, str) else item.oid for item in attrs]
        return f"{len(attrs)} attribute(s): {', '.join(names)}"


def _describe(cert: x509.Certificate) -> str:
    return (
        f"{cert.subject.rfc4514_string()} serial {cert.serial_number:X} "
        f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    )
