"""The TLS-SRP verifier lookup: the user store's users, then one-time device codes.

tlslite asks the `verifierDB` for (N, g, salt, verifier) by the ClientHello's user name
(RFC 5054 §2.5.1). A name of the user store gets its user's entry; a name with exactly one usable
SRP registration (`DeviceRegistry.srp_entry`) gets the device's; anything else, a used, expired
or unknown code included, gets the user store's simulated entry (RFC 5054 §2.5.1.3), so it fails
exactly like an unknown user. The registry is read for every name, users too, so that a user's
name, a device's and an unknown one take the same path.

Sessions: `SrpSessionCache` binds each session to a digest of this lookup's entry, so once the
code is used up (the entry becomes the simulated one) its session no longer resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from python_est.devices import DeviceRegistry, SrpVerifier
from python_est.errors import InternalError, Unavailable
from python_est.users.srp import GROUPS, SrpEntry

log = logging.getLogger("python_est.state")


class DeviceSrpVerifiers(Mapping[bytes, SrpEntry]):
    """`users` (a user store's `srp_verifiers()`) extended by the registry's SRP codes.

    `in`, `len()` and iteration cover the user store's users only, as `SrpVerifiers` does; the
    mapping is always true (tlslite offers SRP suites only when `verifierDB` is truthy).
    """

    def __init__(
        self,
        users: Mapping[bytes, SrpEntry],
        registry: DeviceRegistry,
        clock: Callable[[], datetime],
    ) -> None:
        self._users = users
        self._registry = registry
        self._clock = clock

    def __getitem__(self, key: bytes) -> SrpEntry:
        name = bytes(key)
        device = self._device(name)
        if device is None or name in self._users:
            return self._users[name]  # a user, or the simulated entry
        bits, salt, verifier = device
        n, g = GROUPS[bits]
        return n, g, salt, verifier

    def _device(self, name: bytes) -> SrpVerifier | None:
        try:
            text = name.decode("ascii")  # device names are ASCII (`devices.check_name`)
        except UnicodeDecodeError:
            text = ""
        try:
            return self._registry.srp_entry(text, self._clock())
        except (Unavailable, InternalError) as exc:
            # Fail closed: without the registry no code is usable, and the name fails like an
            # unknown user.
            log.warning("TLS-SRP device codes unavailable: %s", exc)
            return None

    def __contains__(self, key: object) -> bool:
        return key in self._users

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._users)

    def __len__(self) -> int:
        return len(self._users)

    def __bool__(self) -> bool:
        return True
