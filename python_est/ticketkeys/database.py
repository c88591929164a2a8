"""`TicketKeyRing`: TLS session-ticket keys (RFC 5077) shared by every instance via the database.

A ticket sealed by one instance opens on any other, so a client resumes its session wherever the
load balancer sends it. Keys rotate: when the newest key is `rotate_after` seconds old, the first
instance to notice adds a new one (under an advisory lock, so only one is added). A new key is
published before it is used: it seals tickets only once it is `grace` seconds old, by when every
instance has read it (each re-reads at least every `refresh` seconds, `grace` being twice that).
Old keys keep opening tickets until those tickets expire, then they are deleted.

`keys()` lists the sealing key first, then the others, which is the order tlslite's
`HandshakeSettings.ticketKeys` expects. When the database cannot be reached, the keys read last
stay in use (none at all before the first read: no tickets are issued until the database answers):
tickets are an optimisation, and a failed resumption only costs a full handshake.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

from python_est.errors import EstError
from python_est.pgsql.connection import Cursor, Database

log = logging.getLogger(__name__)

KEY_BYTES = 32  # aes256gcm, tlslite's default ticket cipher
_LOCK_KEY = 0x6573_7474_6B00


class TicketKeyRing:
    """Session-ticket keys read from (and rotated in) the `tls_ticket_keys` table. Thread-safe.

    Args:
        db: the shared database.
        rotate_after: age in seconds at which a new sealing key is made.
        ticket_lifetime: how long a ticket stays valid (tlslite's `ticketLifetime`).
        refresh: seconds between reads of the table.
        clock: monotonic time source (tests pass a fake one).

    Raises:
        ValueError: a period is not positive.
    """

    def __init__(
        self,
        db: Database,
        *,
        rotate_after: float = 3600.0,
        ticket_lifetime: float = 3600.0,
        refresh: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rotate_after <= 0 or ticket_lifetime <= 0 or refresh <= 0:
            raise ValueError("ticket key periods must be positive")
        self._db = db
        self._rotate_after = rotate_after
        self._grace = 2 * refresh
        self._keep = rotate_after + self._grace + ticket_lifetime
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[bytes] = []
        self._next_read = 0.0

    def keys(self) -> list[bytes]:
        """The sealing key first, then every key that may still open a ticket.

        Empty (tickets off) until the database has answered once; a failed read is retried
        after `refresh` seconds, not on every handshake.
        """
        if self._clock() < self._next_read:
            return self._keys
        with self._lock:
            if self._clock() < self._next_read:
                return self._keys
            try:
                self._keys = self._db.run(self._read_and_rotate)
            except EstError:
                log.warning(
                    "session-ticket keys not read from the database; keeping %d", len(self._keys)
                )
            self._next_read = self._clock() + self._refresh
            return self._keys

    def _read_and_rotate(self, cursor: Cursor) -> list[bytes]:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cursor.execute(
            "DELETE FROM tls_ticket_keys"
            " WHERE created_at < clock_timestamp() - make_interval(secs => %s)",
            (self._keep,),
        )
        rows = self._rows(cursor)
        if not rows or rows[0][1] >= self._rotate_after:
            cursor.execute(
                "INSERT INTO tls_ticket_keys (key) VALUES (%s)", (secrets.token_bytes(KEY_BYTES),)
            )
            rows = self._rows(cursor)
        # Newest first. The sealing key is the newest one that every instance has had time to
        # read; a lone new key (the very first) seals at once.
        sealing = next((key for key, age in rows if age >= self._grace), rows[-1][0])
        return [sealing, *(key for key, _ in rows if key != sealing)]

    @staticmethod
    def _rows(cursor: Cursor) -> list[tuple[bytes, float]]:
        cursor.execute(
            "SELECT key, extract(epoch FROM clock_timestamp() - created_at) AS age"
            " FROM tls_ticket_keys ORDER BY created_at DESC, id DESC"
        )
        return [(bytes(row["key"]), float(row["age"])) for row in cursor.fetchall()]
