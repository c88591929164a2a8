"""What every serving process and the CLI open alike: the device registry, the password-failure
counters and the shared session-ticket keys.
"""

from __future__ import annotations

import sqlite3

from python_est.config import Config
from python_est.devices import DeviceRegistry
from python_est.errors import ConfigError
from python_est.ratelimit import CounterStore, Limits, LoginLimiter, SqliteCounters
from python_est.state import State, lockouts_path
from python_est.statedir import StateDir
from python_est.tls import TicketKeys


def device_registry(config: Config) -> DeviceRegistry:
    """The pre-registered devices of the state directory (`python-est devices`).

    Raises:
        ConfigError: the registry cannot be opened.
    """
    path = StateDir(config.server.state_dir).devices
    try:
        return DeviceRegistry(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            config.source, "server", "state_dir", f"cannot open {path}: {exc}"
        ) from None


def failure_limiter(config: Config, state: State) -> LoginLimiter:
    """The password-failure counters: in the state directory, or in the shared database.

    Every server process and `python-est lockouts` open the same ones.

    Raises:
        ConfigError: the counter file cannot be opened.
    """
    auth = config.auth
    limits = Limits(
        max_failures=auth.max_failures,
        account_max_failures=auth.account_max_failures,
        address_max_failures=auth.address_max_failures,
        window=auth.failure_window,
        lockout=auth.lockout,
        known_good=auth.known_good,
    )
    store: CounterStore
    if state.database is None:
        path = lockouts_path(config)
        try:
            store = SqliteCounters(path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                config.source, "server", "state_dir", f"cannot open {path}: {exc}"
            ) from None
    else:
        from python_est.ratelimit.database import DatabaseCounters

        store = DatabaseCounters(state.database)
    return LoginLimiter(store, limits)


def shared_ticket_keys(config: Config, state: State) -> TicketKeys | None:
    """Session-ticket keys shared through the database (rotated there); None without one."""
    if state.database is None:
        return None
    from python_est.ticketkeys.database import TicketKeyRing

    return TicketKeyRing(state.database, ticket_lifetime=config.tls.session_lifetime).keys
