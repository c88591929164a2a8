"""`HealthCheck`: can this server issue right now? The CA signs, the ledger commits, users load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from python_est.ca import CertificateAuthority, sign_bytes, verify_signature
from python_est.ca.rules import signature_hash
from python_est.config.model import DEFAULT_CA
from python_est.errors import CaError, EstError, UserStoreError

log = logging.getLogger("python_est.health")

_PROBE_MESSAGE = b"python-est health probe"


class LedgerProbe(Protocol):
    """`python_est.ledger.SqliteLedger.probe`: commit one tiny write or raise an `EstError`."""

    def probe(self) -> None: ...


class UserStoreProbe(Protocol):
    """`python_est.users.UserStore.reload`: re-read a changed file or raise `UserStoreError`."""

    def reload(self) -> bool: ...


@dataclass(frozen=True)
class HealthReport:
    """The parts that failed ("CA", "ledger", "user store"); none when healthy.

    `warnings` name what still works but needs the operator soon (a CA near its expiry).
    """

    failing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failing


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class HealthCheck:
    """Checks the CA, the ledger and the user store, at most once per `cache_seconds`.

    A check signs and verifies a short message with the CA key (the key is usable and matches
    the certificate, which is within its validity), commits one write to the ledger (a full or
    read-only disk shows at once), and re-reads the user store if its file changed (a missing
    or malformed file fails). The result is kept `cache_seconds`, so a monitor polling often
    costs one signature and one commit per interval. Thread-safe.

    Args:
        ca: the issuing CA.
        ledger: the ledger's write probe.
        users: the user store, or None when SRP and Basic are off.
        cache_seconds: how long a result is reused.
        monotonic, clock: time sources (tests pass fixed ones).
        more_cas: the `[ca:NAME]` CAs by name, checked as `ca` is ("CA NAME" when failing).
        expiry_warning_days: CA name (DEFAULT_CA for `ca`) to the days before its
            certificate's notAfter from which the report warns, and the log says so once.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        ledger: LedgerProbe,
        users: UserStoreProbe | None,
        *,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = _utcnow,
        more_cas: Mapping[str, CertificateAuthority] | None = None,
        expiry_warning_days: Mapping[str, int] | None = None,
    ) -> None:
        self._ca = ca
        self._cas = {DEFAULT_CA: ca, **(more_cas or {})}
        self._warning_days = dict(expiry_warning_days or {})
        # Said at start-up (and on each reload), then again only when the set changes.
        self._logged = set(expiry_warnings(self._cas, self._warning_days, clock()))
        for warning in sorted(self._logged):
            log.warning("%s", warning)
        self._ledger = ledger
        self._users = users
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._clock = clock
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._checked_at = 0.0

    def report(self) -> HealthReport:
        """The current report, from the cache when it is fresh enough."""
        with self._lock:
            now = self._monotonic()
            if self._report is None or now - self._checked_at >= self._cache_seconds:
                self._report = self._check()
                self._checked_at = now
            return self._report

    def _check(self) -> HealthReport:
        failing: list[str] = []
        for name, ca in self._cas.items():
            problem = self._ca_problem(ca)
            if problem:
                failing.append("CA" if name == DEFAULT_CA else f"CA {name}")
                log.warning("health: the CA %s cannot sign: %s", name, problem)
        try:
            self._ledger.probe()
        except (EstError, OSError) as exc:
            failing.append("ledger")
            log.warning("health: the ledger cannot commit: %s", exc)
        if self._users is not None:
            try:
                self._users.reload()
            except UserStoreError as exc:
                failing.append("user store")
                log.warning("health: the user store is unusable: %s", exc)
        warnings = expiry_warnings(self._cas, self._warning_days, self._clock())
        for warning in warnings:
            if warning not in self._logged:
                log.warning("health: %s", warning)
        self._logged = set(warnings)
        return HealthReport(tuple(failing), tuple(warnings))

    def _ca_problem(self, ca: CertificateAuthority) -> str:
        cert = ca.certificate
        now = self._clock()
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            return "the CA certificate is outside its validity period"
        key = ca.key
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return "the CA certificate's key is neither RSA nor EC"
        algorithm = signature_hash(key)
        try:
            signature = sign_bytes(key, _PROBE_MESSAGE, algorithm)
        except CaError as exc:
            return exc.detail
        if not verify_signature(public, signature, _PROBE_MESSAGE, algorithm):
            return "the CA key does not match the certificate"
        return ""


def expiry_warnings(
    cas: Mapping[str, CertificateAuthority], days: Mapping[str, int], now: datetime
) -> list[str]:
    """One line per CA whose certificate (or a certificate above it) ends within its
    `days[name]` days of `now` (0 or absent: no warning for that CA)."""
    warnings = []
    for name, ca in cas.items():
        limit = days.get(name, 0)
        if limit <= 0:
            continue
        for cert in ca.chain:
            left = cert.not_valid_after_utc - now
            if left <= timedelta(days=limit):
                warnings.append(
                    f"warning: CA {name}: {cert.subject.rfc4514_string()} expires "
                    f"{cert.not_valid_after_utc:%Y-%m-%d} (in {max(left.days, 0)} days)"
                )
                break
    return warnings
