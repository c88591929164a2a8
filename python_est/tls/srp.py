"""The SRP side of a handshake: verifier lookups, lockout checks and counting, sessions.

tlslite runs the SRP maths (RFC 5054); around it, this module refuses locked-out logins before
any work, counts a failure before the client can learn of it, notices half-open handshakes, and
ends the sessions of a user whose verifier changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from tlslite.api import SessionCache
from tlslite.constants import AlertDescription
from tlslite.errors import TLSError, TLSLocalAlert

from python_est.errors import HandshakeFailed, TooManyRequests, Unavailable
from python_est.ratelimit import FailureCounter
from python_est.tls.stream import DeadlineSocket

log = logging.getLogger("python_est.tls")

VerifierLookup = Mapping[bytes, tuple[int, int, bytes, int]]

# A fatal access_denied alert (RFC 5246 §7.2), sent in the clear before any ServerHello to
# refuse an SRP login whose user or address is locked out.
_ACCESS_DENIED = bytes([21, 3, 3, 0, 2, 2, AlertDescription.access_denied])


# tlslite looks entries up by bytes(username) and offers SRP only `if verifierDB:`, so the
# adapter is truthy even when the store is empty: SRP clients must still get an answer. One per
# connection: `looked_up` tells that the server did its ServerKeyExchange work for this client.
class Verifiers:
    def __init__(self, lookup: VerifierLookup) -> None:
        self._lookup = lookup
        self.looked_up = False

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, name: bytes) -> tuple[int, int, bytes, int]:
        self.looked_up = True
        return self._lookup[bytes(name)]


class AlertHoldingSocket(DeadlineSocket):
    """Holds back a fatal plaintext alert until the socket is closed.

    tlslite sends its bad_record_mac alert for a wrong SRP password before it raises; were it to
    leave at once, the guesser could start its next attempt before this one is counted. With the
    alert held until `close`, and the failure counted before `close`, every attempt sees the
    count of the one before.
    """

    hold = False
    _held = b""

    def send(self, data: bytes) -> int:
        # A plaintext alert record: type 21, version, length 2, level 2 (fatal), description.
        if self.hold and len(data) == 7 and data[0] == 21 and data[5] == 2 and not self._held:
            self._held = bytes(data)
            return len(data)
        return super().send(data)

    def close(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            try:
                super().sendall(held)
            except OSError:
                pass  # the client is gone; it needs no alert
        super().close()


class SrpSessionCache(SessionCache):  # type: ignore[misc]
    """A session cache that forgets an SRP session once its user's verifier changed.

    `user passwd` and `user remove` must end every session the old password opened: each
    session remembers a digest of the (salt, verifier) it was made with, and a lookup whose
    user now has another one (a removed user gets a simulated entry) raises KeyError, which
    tlslite answers with a full handshake that needs the new password.
    """

    def __init__(self, size: int, lifetime: int, lookup: VerifierLookup) -> None:
        super().__init__(size, lifetime)
        self._lookup = lookup
        self._made_with: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
        self._bindings = threading.Lock()

    def __setitem__(self, session_id: bytearray, session: Any) -> None:
        digest = self._digest(session.srpUsername)
        with self._bindings:
            self._made_with[session] = digest
        super().__setitem__(session_id, session)

    def __getitem__(self, session_id: bytearray) -> Any:
        session = super().__getitem__(session_id)
        with self._bindings:
            made_with = self._made_with.get(session)
        if made_with is None or made_with != self._digest(session.srpUsername):
            raise KeyError("the user's verifier changed since this session was made")
        return session

    def _digest(self, user: str | None) -> bytes:
        if not user:
            return b""
        _, _, salt, verifier = self._lookup[user.encode("utf-8")]
        return hashlib.sha256(salt + verifier.to_bytes(1024, "big")).digest()


@dataclasses.dataclass(frozen=True)
class SrpLogin:
    user: str | None  # as sent in the ClientHello
    verifiers: Verifiers


def admit_srp(
    limiter: FailureCounter, sock: DeadlineSocket, user: str | None, address: str
) -> None:
    """Refuse an SRP login that a lockout covers, with an access_denied alert."""
    # Online guessing is the only attack on SRP, and tlslite does nothing about it.
    try:
        limiter.check(user, address)
    except Unavailable:
        # Fail closed: a login that cannot be counted is not tried.
        raise HandshakeFailed("SRP login refused: the failure counters are unavailable") from None
    except TooManyRequests as exc:
        sock.sendall(_ACCESS_DENIED)
        name = "" if user is None else user[:128]
        log.info("TLS-SRP login refused for user %r: %s", name, exc.detail)
        raise HandshakeFailed(f"SRP login refused: {exc.detail}") from None


def is_wrong_password(exc: TLSError) -> bool:
    # A wrong password and an unknown user (simulated verifier, RFC 5054 §2.5.1.3) both fail
    # the client's Finished check: the server raises bad_record_mac.
    return isinstance(exc, TLSLocalAlert) and exc.description == AlertDescription.bad_record_mac
