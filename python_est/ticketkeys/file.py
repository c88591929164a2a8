"""Shared TLS session-ticket keys (RFC 5077): one file that every worker process reads.

A ticket sealed by one worker must open in every other, so the keys live in one file of the
state directory (`python_est.state.ticket_keys_path`, 0600): 32 random bytes per key, hex, one
per line, newest first.
The newest key seals new tickets; the previous one still opens tickets sealed before the last
rotation. The main process rotates the file once its newest key is older than a day (the ticket
lifetime tlslite announces); every serving process re-reads it within `REFRESH` seconds. Until
then a ticket sealed with the new key by one worker costs a full handshake on another: tickets
are an optimisation, never a requirement.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path

from python_est.errors import ConfigError
from python_est.fileio import atomic_write, ensure_private_dir

log = logging.getLogger("python_est.tls")

KEY_BYTES = 32
KEPT = 2
ROTATE_AFTER = 24 * 3600.0
REFRESH = 10.0


def read_ticket_keys(path: Path) -> tuple[bytes, ...]:
    """The keys in `path`, newest first; () when the file does not exist.

    Raises:
        ConfigError: the file is unreadable, malformed or readable by others.
    """
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, f"cannot read: {exc.__class__.__name__}") from None
    if info.st_mode & 0o077:
        raise _error(path, "must not be readable by group or others (chmod 600)")
    try:
        keys = tuple(bytes.fromhex(line) for line in text.split())
    except ValueError:
        raise _error(path, "not one hex key per line") from None
    if not keys or any(len(key) != KEY_BYTES for key in keys):
        raise _error(path, f"every key must be {KEY_BYTES} bytes")
    return keys


def rotate_ticket_keys(path: Path, *, max_age: float = ROTATE_AFTER) -> tuple[bytes, ...]:
    """Create the key file, or add a new newest key once the newest is `max_age` seconds old.

    Returns:
        The keys now in the file, newest first.

    Raises:
        ConfigError: the existing file is unusable, or a new one cannot be written.
    """
    keys = read_ticket_keys(path)
    if keys and time.time() - path.stat().st_mtime < max_age:
        return keys
    keys = (secrets.token_bytes(KEY_BYTES), *keys)[:KEPT]
    try:
        ensure_private_dir(path.parent)
        atomic_write(path, "".join(f"{key.hex()}\n" for key in keys).encode("ascii"))
    except OSError as exc:
        raise _error(path, f"cannot write: {exc.strerror}") from None
    return keys


class TicketKeyFile:
    """The keys of one key file, re-read when it changes (a `python_est.tls.TicketKeys`).

    Args:
        path: the key file (`python_est.state.ticket_keys_path`).
        refresh: seconds between checks of the file's inode and mtime.
    """

    def __init__(self, path: Path, *, refresh: float = REFRESH) -> None:
        self._path = path
        self._refresh = refresh
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._keys = read_ticket_keys(path)
        self._checked = time.monotonic()

    def __call__(self) -> tuple[bytes, ...]:
        """The keys, sealing key first. A file that became unusable keeps the last good keys."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self._refresh:
                return self._keys
            self._checked = now
            stamp = _stamp(self._path)
            if stamp != self._stamp:
                try:
                    self._keys = read_ticket_keys(self._path)
                except ConfigError as exc:
                    log.warning("keeping the previous session-ticket keys: %s", exc)
                self._stamp = stamp
            return self._keys


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _error(path: Path, problem: str) -> ConfigError:
    return ConfigError(str(path), None, None, problem)
