"""sd_notify(3) for `Type=notify` units: READY, RELOADING, STOPPING and STATUS.

Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing. Only the main process
notifies: systemd accepts messages from it alone (`NotifyAccess=main`).
"""

from __future__ import annotations

import time

from python_est.server import notify_systemd


def ready(status: str = "") -> bool:
    """Start-up or a reload is complete; `status` is shown by `systemctl status`."""
    return notify_systemd("READY=1" + (f"\nSTATUS={status}" if status else ""))


def reloading() -> bool:
    """A reload begins; `ready()` ends it (systemd 253+ tracks it as a reload job)."""
    # MONOTONIC_USEC lets systemd match this message to the reload it asked for.
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify_systemd(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """A graceful stop begins."""
    return notify_systemd("STOPPING=1")


def status(text: str) -> bool:
    """Free-form status text for `systemctl status`."""
    return notify_systemd(f"STATUS={text}")
