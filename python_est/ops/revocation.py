"""Publishing revocation: the issuing CA's CRL, kept current in memory and in a file.

Who regenerates. `python-est certs revoke` publishes at once; a server publishes at start-up when
the file is missing, stale or not signed by its CA, and again once the CRL it holds has lived
half its validity (`python_est.ops` checks after every request). Servers and the CLI share the
file: when another process replaces it, the next CRL request serves the newer CRL, so a
revocation shows in the served CRL without a restart.

CRL numbers come from a counter in the ledger (one transaction, so two processes never issue the
same number) and never go below the number of the CRL found in the file, so restoring an older
ledger backup cannot make them go backwards (RFC 5280 §5.2.3: monotonically increasing).

What is listed. Every revoked certificate of the ledger whose issuer is the CA, until its
notAfter is a full CRL validity period in the past: RFC 5280 §3.3 lets an entry go once it has
appeared on one regularly scheduled CRL issued beyond the certificate's validity period.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from python_est.ca import CertificateAuthority, Revocation, build_crl, crl_number
from python_est.config.model import DEFAULT_CA
from python_est.fileio import atomic_write
from python_est.ledger import IssuedCertificate

log = logging.getLogger("python_est.crl")

CRL_COUNTER = "crl_number"
_PAGE = 500
_MAX_STORED_NUMBER = (1 << 63) - 1  # SQLite INTEGER; a larger number in a file is ignored

FileStamp = tuple[int, int, int]


class RevocationSource(Protocol):
    """What the publisher needs from the ledger (`python_est.ledger.SqliteLedger`)."""

    def list_certificates(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        label: str | None = None,
        revoked: bool | None = None,
        ca: str | None = None,
    ) -> list[IssuedCertificate]: ...

    def next_number(self, name: str, *, minimum: int = 1) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CrlPublisher:
    """The CA's current CRL. Thread-safe.

    Args:
        ca: the issuing CA (signs the CRL).
        ledger: the revoked certificates and the CRL number counter.
        path: the DER file to write (0644) and to pick up from other processes.
        validity_hours: hours from thisUpdate to nextUpdate; regenerated after half of them.
        clock: the current time (tests pass a fixed one).
        ca_name: the CA's name: its CRL lists only the certificates the ledger records as
            issued by it, and numbers its CRLs with its own counter.
        generation: the key generation of `ca` (a rolled-over root signs its own CRL).
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        ledger: RevocationSource,
        path: Path,
        *,
        validity_hours: int,
        clock: Callable[[], datetime] = _utcnow,
        ca_name: str = DEFAULT_CA,
        generation: int = 1,
    ) -> None:
        if validity_hours <= 0:
            raise ValueError("validity_hours must be positive")
        self._ca = ca
        self._ca_name = ca_name
        # The `[ca]` CA keeps the counter it always had, so its CRL numbers go on growing; each
        # CA and each root key generation (after a rollover) numbers its own CRLs.
        counter = CRL_COUNTER if ca_name == DEFAULT_CA else f"{CRL_COUNTER}:{ca_name}"
        self._counter = counter if generation == 1 else f"{counter}:g{generation}"
        self._ledger = ledger
        self._path = path
        self._validity = timedelta(hours=validity_hours)
        self._clock = clock
        self._lock = threading.Lock()
        self._crl: x509.CertificateRevocationList | None = None
        self._der = b""
        self._stamp: FileStamp | None = None

    @property
    def path(self) -> Path:
        """The file the CRL is written to."""
        return self._path

    def current(self) -> bytes:
        """The DER of a current CRL: the newest on file, regenerated first when due.

        A failure to write the file is logged; the fresh CRL is served anyway.

        Raises:
            CaError: the CA cannot sign.
            LedgerError, Unavailable: the ledger cannot be read.
        """
        with self._lock:
            self._refresh_locked()
            return self._der

    def refresh_if_due(self) -> bool:
        """Pick up a newer file and regenerate when due (as `current`); True if regenerated."""
        with self._lock:
            return self._refresh_locked()

    def publish(self) -> x509.CertificateRevocationList:
        """Regenerate now and write the file.

        Raises:
            OSError: the file could not be written (the new CRL is still served).
            CaError, LedgerError, Unavailable: as `current`.
        """
        with self._lock:
            self._load_if_changed()
            return self._publish_locked()

    def _refresh_locked(self) -> bool:
        self._load_if_changed()
        if not self._due():
            return False
        try:
            self._publish_locked()
        except OSError as exc:
            log.warning("could not write the CRL to %s: %s", self._path, exc.strerror or exc)
        return True

    def _due(self) -> bool:
        if self._crl is None:
            return True
        return self._clock() >= self._crl.last_update_utc + self._validity / 2

    def _publish_locked(self) -> x509.CertificateRevocationList:
        now = self._clock()
        entries = self._revocations(now)
        known = crl_number(self._crl) if self._crl is not None else None
        minimum = 1 if known is None or known >= _MAX_STORED_NUMBER else known + 1
        number = self._ledger.next_number(self._counter, minimum=minimum)
        hours = int(self._validity.total_seconds() // 3600)
        crl = build_crl(self._ca, entries, crl_number=number, next_update_hours=hours, now=now)
        self._crl = crl
        self._der = crl.public_bytes(serialization.Encoding.DER)
        log.info(
            "CRL %d: %d revoked certificate(s), next update %s",
            number,
            len(entries),
            crl.next_update_utc.isoformat() if crl.next_update_utc else "-",
        )
        # Mode 0644: a CRL is public; relying parties and web servers may read the file.
        atomic_write(self._path, self._der, mode=0o644)
        self._stamp = _stamp(self._path)
        return crl

    def _revocations(self, now: datetime) -> list[Revocation]:
        keep_after = now - self._validity
        found: list[Revocation] = []
        offset = 0
        while True:
            page = self._ledger.list_certificates(
                limit=_PAGE, offset=offset, revoked=True, ca=self._ca_name
            )
            for entry in page:
                if entry.revoked_at is None or entry.not_after < keep_after:
                    continue
                cert = x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
                if not _signed_by_key_of(cert, self._ca.certificate):
                    continue  # signed by an earlier CA, or the other key of a rollover
                reason = entry.revocation_reason or "unspecified"
                found.append(Revocation(entry.serial, entry.revoked_at, reason))
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    def _load_if_changed(self) -> None:
        stamp = _stamp(self._path)
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            crl = x509.load_der_x509_crl(self._path.read_bytes())
        except (OSError, ValueError):
            log.warning("ignoring unreadable CRL file %s", self._path)
            return
        if crl.issuer != self._ca.certificate.subject or not crl.is_signature_valid(
            self._ca.key.public_key()
        ):
            log.info("ignoring CRL file %s: not signed by the current CA", self._path)
            return
        ours = crl_number(self._crl) if self._crl is not None else None
        theirs = crl_number(crl)
        if theirs is not None and (ours is None or theirs > ours):
            self._crl = crl
            self._der = crl.public_bytes(serialization.Encoding.DER)


def _signed_by_key_of(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    # By name and key identifier: during a root rollover both keys have the same name (RFC
    # 4210 §4.4), and each signs the CRL of its own certificates only.
    if cert.issuer != ca.subject:
        return False
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return True  # no identifiers to tell keys apart: the name decides, as before
    return aki.key_identifier is None or aki.key_identifier == ski.digest


def _stamp(path: Path) -> FileStamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # missing, or unreadable: writing it will tell
    return (st.st_ino, st.st_size, st.st_mtime_ns)
