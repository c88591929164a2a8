"""What an operator types or imports to register a device: subject, SANs, expiry, codes, CSV.

Every problem is a `ValueError` whose text names the value; the CSV reader prefixes the file
and line.
"""

from __future__ import annotations

import base64
import csv
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509

from python_est.safetext import escape

_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The name is also the HTTP Basic user name: printable ASCII without ':' (RFC 7617 §2).
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


def generate_code() -> str:
    """A one-time code: 160 random bits as base32 in groups of four (easy to read out)."""
    text = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_subject(text: str) -> str:
    """The RFC 4514 subject, normalised by a parse and print round trip."""
    if not text.isprintable():
        raise ValueError(f"subject {escape(text)!r} holds control characters")
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError:
        raise ValueError(
            f"subject {text!r} is not an RFC 4514 name (TYPE=value pairs, most significant "
            "last, separated by commas without spaces, e.g. CN=dev42,O=Example)"
        ) from None
    if len(name) == 0:
        raise ValueError("the subject must not be empty")
    return name.rfc4514_string()


def parse_san(text: str) -> str:
    """One subjectAltName as the ledger writes it: DNS:, IP:, email: or URI:."""
    kind, colon, value = text.partition(":")
    if not colon or not value or not value.isprintable() or not value.isascii():
        raise ValueError(f"subjectAltName {escape(text)!r}: use DNS:, IP:, email: or URI:")
    match kind.lower():
        case "dns":
            return f"DNS:{value}"
        case "ip":
            try:
                return f"IP:{ipaddress.ip_address(value)}"
            except ValueError:
                raise ValueError(f"subjectAltName {text!r}: not an IP address") from None
        case "email":
            return f"email:{value}"
        case "uri":
            return f"URI:{value}"
    raise ValueError(f"subjectAltName {escape(text)!r}: use DNS:, IP:, email: or URI:")


def parse_expires(text: str, now: datetime) -> datetime | None:
    """`7d`, `12h`, `30m`, `2w` from `now`, an ISO date/time (UTC unless it says), or `never`."""
    if text == "never":
        return None
    found = _DURATION.match(text)
    if found:
        return now + timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expiry {escape(text)!r}: use 30m, 12h, 7d, 2w, an ISO date or never"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"device name {escape(name)!r}: 1-128 of letters, digits and . _ @ + -")
    return name


def default_name(subject: str) -> str:
    """The CN of `subject`, as the device's name when none is given."""
    names = x509.Name.from_rfc4514_string(subject).get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ValueError("the subject has no single CN; give the device a --name")
    return check_name(str(names[0].value))


@dataclass(frozen=True)
class Row:
    """One device of a CSV import."""

    line: int
    label: str
    name: str
    subject: str
    sans: tuple[str, ...]
    expires_at: datetime | None


CSV_COLUMNS = ("label", "subject", "san", "expires", "name")


def read_csv(path: Path, now: datetime, default_expires: datetime | None) -> list[Row]:
    """Devices from a CSV file with a header naming `label` and `subject`, and optionally `san`
    (several separated by spaces), `expires` and `name`.

    Raises:
        ValueError: "FILE:LINE: problem" for the first bad line (nothing is imported then).
        OSError: the file cannot be read.
    """
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        unknown = [column for column in header if column not in CSV_COLUMNS]
        if "label" not in header or "subject" not in header or unknown:
            raise ValueError(
                f"{path}:1: the header must name label and subject, and may name san, expires "
                f"and name{f' (unknown: {unknown[0]!r})' if unknown else ''}"
            )
        seen: dict[tuple[str, str], int] = {}
        for record in reader:
            line = reader.line_num
            try:
                row = _row(record, line, now, default_expires)
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            key = (row.label, row.name)
            if key in seen:
                raise ValueError(
                    f"{path}:{line}: device {row.name!r} on label {row.label!r} is also on "
                    f"line {seen[key]}"
                )
            seen[key] = line
            rows.append(row)
    return rows


def _row(record: dict[str, str | None], line: int, now: datetime, default: datetime | None) -> Row:
    if None in record:
        raise ValueError("more fields than the header names")
    subject = parse_subject((record.get("subject") or "").strip())
    sans = tuple(parse_san(item) for item in (record.get("san") or "").split())
    expires_text = (record.get("expires") or "").strip()
    expires_at = parse_expires(expires_text, now) if expires_text else default
    name_text = (record.get("name") or "").strip()
    name = check_name(name_text) if name_text else default_name(subject)
    return Row(line, (record.get("label") or "").strip(), name, subject, sans, expires_at)
