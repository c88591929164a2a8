"""The `handler` backend: an est_proxy-style `CAhandler` class from `handler_file`.

The contract is est_proxy's (docs/ca_handler.md there), as the older python-est ran it:

- `CAhandler(debug, logger)`, used as a context manager around each call (`__enter__` is where
  handlers read their configuration);
- `ca_certs_get() -> pem_bundle`;
- `enroll(csr) -> (error, certificate_pem_chain, poll_identifier)`; acme2certifier's
  4-tuple `(error, cert_bundle, cert_raw, poll_identifier)` is accepted as well;
- `poll(poll_identifier, csr) -> (error, certificate, poll_identifier, rejected)`;
- `revoke(cert_pem, rev_reason, rev_date) -> (code, message, detail)` (acme2certifier's).

`csr` is the request's base64 DER on one line, as est_proxy passes the request body. What a
handler takes from its host: a logger, and its configuration through
`est_proxy.helper.config_load(logger, ...)`, which returns a ConfigParser whose `[CAhandler]`
section is ours. That module is provided while the handler file is imported, unless a real
est_proxy is installed.

A certificate the handler defers (no certificate, a poll identifier) is a 202; the retry by
the same requester with the same key and subject calls `poll` with that identifier. It is kept
in the ledger (`PollStore`), keyed by label, requester and the CSR's fingerprint, so the retry
polls after a restart, on another worker or on another instance sharing the ledger, instead of
enrolling the request a second time. The fingerprint covers the key and the subject, not the
CSR bytes: a retry may carry a new challengePassword (RFC 7030 §3.5). The requester is part of
the key because a CSR is no secret: another requester replaying it starts its own request
instead of collecting this one.
"""

from __future__ import annotations

import configparser
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from python_est import wire
from python_est.backends.base import Deferred, Order, PollStore, PrivateKey
from python_est.errors import BadGateway, Forbidden, NotImplementedOperation
from python_est.keys import KeyType, generate_private_key
from python_est.safetext import escape

log = logging.getLogger("python_est.backends.handler")

HANDLER_SECTION = "CAhandler"


class HandlerLoadError(Exception):
    """The handler file cannot be imported or has no usable `CAhandler` class."""


class HandlerBackend:
    """Runs the `CAhandler` of `path` with `options` as its `[CAhandler]` section.

    Args:
        path: the handler file.
        options: its configuration section.
        label: the label it serves (its logger's name).
        retry_after: seconds for the 202 of a deferred request.
        polls: where the poll identifiers of deferred requests are kept.

    Raises:
        HandlerLoadError: the file does not import or lacks the class.
    """

    kind = "handler"

    def __init__(
        self,
        path: Path,
        options: Mapping[str, str],
        *,
        label: str,
        retry_after: int,
        polls: PollStore,
    ) -> None:
        self._class = _load(path, options)
        self._label = label
        self._logger = logging.getLogger(f"python_est.handler.{label or 'default'}")
        self._retry_after = retry_after
        self._polls = polls

    def ca_certs(self) -> Sequence[x509.Certificate]:
        with self._handler() as handler:
            bundle = _call(handler, "ca_certs_get")
        return _certificates(bundle, "ca_certs_get")

    def enroll(self, order: Order) -> x509.Certificate:
        csr_text = wire.encode_base64(order.csr.public_bytes(Encoding.DER)).decode("ascii")
        csr_text = "".join(csr_text.split())
        key = (self._label, order.requester, fingerprint(order.csr))
        pending = self._polls.poll_id(*key)
        poll_identifier: object = pending
        with self._handler() as handler:
            if pending is None:
                answer = _call(handler, "enroll", csr_text)
                error, chain, poll_identifier = _enroll_answer(answer)
                rejected = False
            else:
                answer = _call(handler, "poll", pending, csr_text)
                error, chain, poll_identifier, rejected = _poll_answer(answer)
        if rejected:
            self._forget(key)
            raise Forbidden(f"the CA rejected the request{_said(error)}")
        if error:
            self._forget(key)
            raise BadGateway(f"the CA handler failed: {_text(error)}")
        if not chain:
            if not poll_identifier:
                raise BadGateway("the CA handler returned neither a certificate nor a poll id")
            if poll_identifier != pending:
                self._polls.keep_poll(*key, str(poll_identifier))
            raise Deferred(
                self._retry_after,
                f"the CA holds the request; retry in {self._retry_after} seconds",
            )
        self._forget(key)
        return _leaf_for(_certificates(chain, "enroll"), order.csr)

    def serverkeygen(self, order: Order, key_type: KeyType) -> tuple[PrivateKey, x509.Certificate]:
        # est_proxy handlers have no key generation: the key is made here and certified through
        # `enroll` with a CSR it signs, carrying the approved request's subject and extensions.
        key = generate_private_key(key_type)
        csr = resigned_csr(order.csr, key)
        try:
            cert = self.enroll(replace(order, csr=csr))
        except Deferred:
            self._forget((self._label, order.requester, fingerprint(csr)))
            raise Forbidden(
                "the CA deferred the request; a server-generated key is not kept while it "
                "waits: use /simpleenroll"
            ) from None
        return key, cert

    def revoke(self, cert: x509.Certificate, reason: str) -> None:
        pem = cert.public_bytes(Encoding.PEM).decode("ascii")
        when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._handler() as handler:
            answer = _call(handler, "revoke", pem, reason, when)
        if not isinstance(answer, tuple) or len(answer) != 3:
            raise BadGateway("the CA handler's revoke did not return (code, message, detail)")
        code, message, detail = answer
        if code != 200:
            raise BadGateway(f"the CA handler did not revoke: {_text(detail or message)}")

    @contextmanager
    def _handler(self) -> Iterator[Any]:
        # est_proxy's host: one instance per request, used as a context manager.
        try:
            instance = self._class(False, self._logger)
            handler = instance.__enter__()
        except Exception:
            log.exception("the CA handler failed to start")
            raise BadGateway("the CA handler failed to start") from None
        try:
            yield handler
        finally:
            try:
                instance.__exit__(None, None, None)
            except Exception:
                log.exception("the CA handler failed to close")

    def _forget(self, key: tuple[str, str, str]) -> None:
        self._polls.forget_poll(*key)


def resigned_csr(
    csr: x509.CertificateSigningRequest, key: PrivateKey
) -> x509.CertificateSigningRequest:
    """A CSR for `key` with `csr`'s subject and requested extensions (RFC 7030 §4.4.1)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(csr.subject)
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, hashes.SHA256())


def _load(path: Path, options: Mapping[str, str]) -> type:
    name = f"python_est_handler_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        with _host_modules(options):
            spec.loader.exec_module(module)
    except Exception as exc:
        raise HandlerLoadError(f"{path} does not import: {type(exc).__name__}: {exc}") from None
    handler_class = getattr(module, "CAhandler", None)
    if not isinstance(handler_class, type):
        raise HandlerLoadError(f"{path} has no CAhandler class")
    missing = [m for m in ("__enter__", "__exit__", "enroll") if not hasattr(handler_class, m)]
    if missing:
        raise HandlerLoadError(f"{path}: CAhandler lacks {', '.join(missing)}")
    return handler_class


@contextmanager
def _host_modules(options: Mapping[str, str]) -> Iterator[None]:
    # The one est_proxy helper every handler imports at load time: `config_load`, bound here
    # to this handler's section. A real est_proxy, if installed, is left alone.
    if importlib.util.find_spec("est_proxy") is not None:
        yield
        return
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict({HANDLER_SECTION: dict(options)})

    def config_load(
        logger: object = None, mfilter: object = None, cfg_file: object = None
    ) -> configparser.ConfigParser:
        return parser

    package = types.ModuleType("est_proxy")
    helper = types.ModuleType("est_proxy.helper")
    helper.config_load = config_load  # type: ignore[attr-defined]
    package.helper = helper  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in ("est_proxy", "est_proxy.helper")}
    sys.modules.update({"est_proxy": package, "est_proxy.helper": helper})
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _call(handler: Any, method: str, *args: object) -> Any:
    function = getattr(handler, method, None)
    if function is None:
        raise NotImplementedOperation(f"the CA handler has no {method}")
    try:
        return function(*args)
    except Exception:
        log.exception("the CA handler's %s failed", method)
        raise BadGateway(f"the CA handler's {method} failed") from None


def _enroll_answer(answer: object) -> tuple[object, object, object]:
    if isinstance(answer, tuple) and len(answer) == 3:
        return answer[0], answer[1], answer[2]
    if isinstance(answer, tuple) and len(answer) == 4:
        return answer[0], answer[1], answer[3]  # (error, cert_bundle, cert_raw, poll_identifier)
    raise BadGateway("the CA handler's enroll did not return (error, certificate, poll_identifier)")


def _poll_answer(answer: object) -> tuple[object, object, object, bool]:
    if isinstance(answer, tuple) and len(answer) == 4:
        return answer[0], answer[1], answer[2], bool(answer[3])
    raise BadGateway(
        "the CA handler's poll did not return (error, certificate, poll_identifier, rejected)"
    )


def _certificates(bundle: object, method: str) -> list[x509.Certificate]:
    if isinstance(bundle, bytes):
        bundle = bundle.decode("ascii", "replace")
    if not isinstance(bundle, str) or "-----BEGIN CERTIFICATE-----" not in bundle:
        raise BadGateway(f"the CA handler's {method} returned no PEM certificate")
    try:
        return x509.load_pem_x509_certificates(bundle.encode("ascii"))
    except ValueError:
        raise BadGateway(f"the CA handler's {method} returned an unreadable certificate") from None


def _leaf_for(
    chain: list[x509.Certificate], csr: x509.CertificateSigningRequest
) -> x509.Certificate:
    wanted = csr.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for cert in chain:
        if (
            cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            == wanted
        ):
            return cert
    raise BadGateway("the CA handler returned no certificate for the CSR's key")


def fingerprint(csr: x509.CertificateSigningRequest) -> str:
    """SHA-256 over the CSR's key and subject: what identifies its retries (hex).

    A retry may carry a new challengePassword (§3.5), so the CSR bytes differ; the key and
    subject identify the request, as the approval queue does.
    """
    digest = hashes.Hash(hashes.SHA256())
    digest.update(csr.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    digest.update(csr.subject.public_bytes())
    return digest.finalize().hex()


def _text(value: object) -> str:
    return escape(str(value))[:200]


def _said(value: object) -> str:
    return f": {_text(value)}" if value else ""
