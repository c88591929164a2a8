"""Cipher-suite lists computed once per settings instead of on every handshake.

tlslite filters its suite tables against the settings' names on every ClientHello (six getters
for a certificate server, each a `CipherSuite._filterSuites` call testing every suite for
membership in three lists), and again to check a resumed session: about 70 µs of a handshake
that otherwise costs a few hundred, for an answer that only changes when the settings do.

`CachedCipherSuite` is tlslite's `CipherSuite` with `_filterSuites` memoized. The key is every
input the filter reads (the suites, the settings' cipher, MAC and key-exchange names, the
version), so a hit returns exactly what tlslite would compute; callers get a fresh list, as
from tlslite. Nothing secret is involved: these are public configuration values.

tlslite's handshake code names `CipherSuite` as a global of `tlslite.tlsconnection`, and the
getters call `cls._filterSuites`, so the class has no seam of its own: `use_cached_suites()`
rebinds that one name to the subclass, process-wide, when an accelerated `TlsEndpoint` is built
(as `fastcipher` does for the ticket ciphers; the seam is checked by `tlslite_seams`). Every
other attribute is inherited, so `CipherSuite.ietfNames` and the suite sets read the same.
"""

from __future__ import annotations

import threading
from typing import Any

from tlslite import tlsconnection
from tlslite.constants import CipherSuite

# Distinct keys are few (a dozen suite tables for a few settings and versions); the cap only
# bounds memory should settings keep changing (reloads), by starting over.
_MAX_ENTRIES = 512
_TLSLITE_CIPHER_SUITE = CipherSuite


class CachedCipherSuite(CipherSuite):  # type: ignore[misc]
    """tlslite's `CipherSuite`, its settings filter memoized (see the module docstring)."""

    _memo: dict[tuple[Any, ...], tuple[int, ...]] = {}  # noqa: RUF012 - shared on purpose

    @staticmethod
    def _filterSuites(  # noqa: N802 - tlslite's name
        suites: list[int], settings: Any, version: tuple[int, int] | None = None
    ) -> list[int]:
        key = (
            tuple(suites),
            tuple(settings.macNames),
            tuple(settings.cipherNames),
            tuple(settings.keyExchangeNames),
            settings.maxVersion if version is None else version,
        )
        memo = CachedCipherSuite._memo
        found = memo.get(key)
        if found is None:
            found = tuple(_TLSLITE_CIPHER_SUITE._filterSuites(suites, settings, version))
            if len(memo) >= _MAX_ENTRIES:
                memo.clear()
            memo[key] = found
        return list(found)


_rebinding = threading.Lock()


def use_cached_suites(enabled: bool = True) -> None:
    """Let tlslite's handshake code use `CachedCipherSuite` (True) or its own class (False).

    Process-wide and idempotent; both compute the same lists, so handshakes under way may see
    either.
    """
    with _rebinding:
        tlsconnection.CipherSuite = CachedCipherSuite if enabled else _TLSLITE_CIPHER_SUITE


def cached_suites() -> bool:
    """Whether tlslite's handshake code uses the memoized suite filter."""
    return tlsconnection.CipherSuite is CachedCipherSuite
