"""Pre-registered devices and one-time enrollment codes (issue 18 item 2).

`python-est devices add` registers a device for exactly one subject and set of subjectAltNames
on one label and prints a one-time code (or takes a password). The device enrolls with HTTP
Basic or TLS-SRP credentials: its name as the user, the code as the password. The code works
once (`registry.claim` is atomic) and not after its expiry. A label with
`require_registration = yes` issues on /simpleenroll and /serverkeygen only what matches an
unused registration. See docs/integrations.md.
"""

from __future__ import annotations

from python_est.devices.entries import (
    CSV_COLUMNS,
    Row,
    check_name,
    default_name,
    generate_code,
    parse_expires,
    parse_san,
    parse_subject,
    read_csv,
)
from python_est.devices.registry import DeviceRegistry, Registration, SrpVerifier

__all__ = [
    "CSV_COLUMNS",
    "DeviceRegistry",
    "Registration",
    "Row",
    "SrpVerifier",
    "check_name",
    "default_name",
    "generate_code",
    "parse_expires",
    "parse_san",
    "parse_subject",
    "read_csv",
]
