"""Converters from INI text to typed values; each raises ValueError with a readable reason."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from python_est.config.model import (
    SRP_GROUP_BITS,
    TLS_VERSIONS,
    AuthMethod,
    AuthRequirement,
)
from python_est.keys import KeyType
from python_est.messages import WELL_KNOWN
from python_est.profile import EKU_NAMES, KEY_USAGE_NAMES, SUBJECT_ATTRIBUTE_NAMES, SanType


def to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "yes", "true", "on"}:
        return True
    if lowered in {"0", "no", "false", "off"}:
        return False
    raise ValueError(f"expected yes/no, got {text!r}")


# Upper bounds keep accepted values usable at run time: socket.listen() takes a C int, and
# socket.settimeout() rejects inf and values beyond a C timeval (found by property tests).
MAX_INT = 2**31 - 1
MAX_SECONDS = 1e8


def to_positive_int(text: str) -> int:
    value = int(text)
    if not 0 < value <= MAX_INT:
        raise ValueError(f"must be a positive integer up to {MAX_INT}, got {text!r}")
    return value


def to_count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_INT:
        raise ValueError(f"must be 0 or a positive integer up to {MAX_INT}, got {text!r}")
    return value


def to_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be 0-65535, got {text!r}")
    return value


def to_positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_SECONDS:  # also false for nan
        raise ValueError(f"must be a positive number of seconds up to 1e8, got {text!r}")
    return value


def to_list(text: str) -> tuple[str, ...]:
    cleaned = text.strip()
    if cleaned.startswith("[") and cleaned.endswith("]"):
        # est_proxy wrote lists as JSON-ish arrays: ["a.pem", "b.pem"]
        cleaned = cleaned[1:-1]
    return tuple(item.strip().strip("'\"") for item in cleaned.split(",") if item.strip())


def to_choice(*allowed: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text.lower()

    return convert


def to_key_type(text: str) -> KeyType:
    try:
        return KeyType(text.lower())
    except ValueError:
        names = ", ".join(k.value for k in KeyType)
        raise ValueError(f"unknown key type {text!r} (use {names})") from None


def to_version(text: str) -> str:
    cleaned = text.lower().removeprefix("tls").removeprefix("v").strip()
    if cleaned not in TLS_VERSIONS:
        raise ValueError(f"unknown TLS version {text!r} (use 1.0, 1.1, 1.2 or 1.3)")
    return cleaned


def to_names(allowed: frozenset[str]) -> Callable[[str], tuple[str, ...]]:
    def convert(text: str) -> tuple[str, ...]:
        items = tuple(item.lower() for item in to_list(text))
        if not items:
            raise ValueError("must name at least one value")
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise ValueError(f"unknown name {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
        return items

    return convert


def to_auth_requirement(text: str) -> AuthRequirement:
    alternatives = []
    for alternative in to_list(text):
        methods = set()
        for part in alternative.split("+"):
            try:
                methods.add(AuthMethod(part.strip().lower()))
            except ValueError:
                raise ValueError(
                    f"unknown auth method {part.strip()!r} (use cert, srp, basic)"
                ) from None
        alternatives.append(frozenset(methods))
    if not alternatives:
        raise ValueError("must name at least one auth method")
    return tuple(alternatives)


def to_server_names(text: str) -> tuple[str, ...]:
    names = to_list(text)
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if not all(part and len(part) <= 63 for part in name.rstrip(".").split(".")):
                raise ValueError(f"not a DNS name or IP address: {name!r}") from None
    return names


def to_key_usage(text: str) -> frozenset[str]:
    items = frozenset(to_list(text))
    unknown = sorted(items - KEY_USAGE_NAMES)
    if unknown:
        raise ValueError(
            f"unknown keyUsage {unknown[0]!r} (known: {', '.join(sorted(KEY_USAGE_NAMES))})"
        )
    return items


def to_eku(text: str) -> tuple[ObjectIdentifier, ...]:
    oids = []
    for item in to_list(text):
        if item in EKU_NAMES:
            oids.append(EKU_NAMES[item])
        elif all(part.isdigit() for part in item.split(".")) and item.count(".") >= 2:
            oids.append(ObjectIdentifier(item))
        else:
            raise ValueError(
                f"unknown extendedKeyUsage {item!r} (use {', '.join(EKU_NAMES)} or an OID)"
            )
    return tuple(oids)


def to_san_types(text: str) -> frozenset[SanType]:
    try:
        return frozenset(SanType(item.lower()) for item in to_list(text))
    except ValueError:
        raise ValueError(f"unknown SAN type in {text!r} (use dns, ip, email, uri)") from None


# Keys of a [profile] / [label:NAME] section, with their converters and LabelConfig/profile field.


def to_address(text: str) -> str:
    if text in {"", "*"}:
        return "0.0.0.0"
    if text != "localhost":
        ipaddress.ip_address(text)
    return text


def to_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of addresses and CIDR networks (a bare address is a /32 or /128)."""
    networks = []
    for item in to_list(text):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:  # a typo, or host bits set (10.0.0.1/8): say which
            raise ValueError(f"not an address or network: {item!r} ({exc})") from None
    return tuple(networks)


def to_group_bits(text: str) -> int:
    value = int(text)
    if value not in SRP_GROUP_BITS:
        raise ValueError(f"SRP group must be one of 2048, 3072, 4096, got {text!r}")
    return value


def to_realm(text: str) -> str:
    if not text or '"' in text or "\\" in text or not text.isprintable():
        raise ValueError("realm must be printable text without quotes or backslashes")
    return text


def to_web_path(text: str) -> str:
    if not text.startswith("/") or text.startswith("/.well-known/") or "?" in text:
        raise ValueError(f"must be an absolute path outside /.well-known/, got {text!r}")
    return text.rstrip("/") or "/"


def to_nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def to_base_url(text: str) -> str:
    """An http(s) URL of scheme, host, optional port and path prefix, without a trailing slash."""
    if not text:
        return ""
    parts = urlsplit(text)
    port = parts.port  # raises ValueError when out of range
    if (
        port == 0
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
        or not text.isprintable()
        or any(ch.isspace() for ch in text)
    ):
        raise ValueError(f"must be an http:// or https:// URL without query, got {text!r}")
    return text.rstrip("/")


def to_database_url(text: str) -> str:
    """A PostgreSQL URL (postgresql://[user@]host[:port]/dbname), or empty for SQLite."""
    if text and not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql://user@host:port/dbname URL (or empty for SQLite)")
    return text


def _subject_type(item: str) -> ObjectIdentifier:
    oid = SUBJECT_ATTRIBUTE_NAMES.get(item)
    if oid is None and all(part.isdigit() for part in item.split(".")) and item.count(".") >= 2:
        oid = ObjectIdentifier(item)
    if oid is None:
        raise ValueError(
            f"unknown subject attribute {item!r} (use {', '.join(SUBJECT_ATTRIBUTE_NAMES)} "
            "or an OID)"
        )
    if oid == NameOID.COMMON_NAME:
        # A password user's CN is always judged against its allowed names.
        raise ValueError("CN cannot be listed: it is always checked against the allowed names")
    return oid


def to_subject_types(text: str) -> frozenset[ObjectIdentifier]:
    return frozenset(_subject_type(item) for item in to_list(text))


def to_subject_fixed(text: str) -> tuple[tuple[ObjectIdentifier, str], ...]:
    """An RFC 4514 string (`O=Example Corp, C=DE`): most significant last, as RFC 4514 writes."""
    if not text.strip():
        return ()
    # Spaces after an unescaped separator are tolerated, as people write "O=x, C=DE".
    compact = re.sub(r"(?<!\\)([,+])\s+", r"\1", text.strip())
    try:
        name = x509.Name.from_rfc4514_string(compact, dict(SUBJECT_ATTRIBUTE_NAMES))
    except ValueError:
        raise ValueError(f"not an RFC 4514 name such as 'O=Example Corp, C=DE': {text!r}") from None
    fixed = []
    for rdn in name.rdns:
        if len(rdn) != 1:
            raise ValueError(f"multi-valued RDNs cannot be fixed: {text!r}")
        attr = next(iter(rdn))
        _subject_type(attr.oid.dotted_string)
        if not isinstance(attr.value, str) or not attr.value or not attr.value.isprintable():
            raise ValueError(f"empty or unprintable value in {text!r}")
        fixed.append((attr.oid, attr.value))
    return tuple(fixed)


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def to_webhook_url(text: str) -> str:
    """An https:// URL, or http:// to a loopback host only (empty: no webhook).

    Plain HTTP elsewhere would show the request (client certificates, names) to the network and
    let anyone on the path answer "allow" (issue 18 item 4); user:password@ would put a secret
    in the configuration and the logs.
    """
    if not text:
        return ""
    parts = urlsplit(text)
    port = parts.port  # raises ValueError when out of range
    if (
        port == 0
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.fragment
        or parts.username is not None
        or not text.isprintable()
        or any(ch.isspace() for ch in text)
    ):
        raise ValueError(f"must be an https:// URL without user or fragment, got {text!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"plain http:// is allowed only to a loopback host, got {text!r}")
    return text


def to_upstream_url(text: str) -> str:
    """`https://HOST[:PORT][/.well-known/est[/LABEL]]`: the upstream EST server of RA mode.

    Only https (RFC 7030 §3.2.2), no user (the RA's password has its own key), no query.
    Empty: none.
    """
    if not text:
        return ""
    parts = urlsplit(text)
    port = parts.port  # raises ValueError when out of range
    path = parts.path.rstrip("/")
    label = path[len(WELL_KNOWN) + 1 :]
    known_path = path in ("", WELL_KNOWN) or (
        path.startswith(f"{WELL_KNOWN}/") and "/" not in label
    )
    if (
        parts.scheme != "https"
        or not parts.hostname
        or port == 0
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not text.isprintable()
        or any(ch.isspace() for ch in text)
        or not known_path
    ):
        raise ValueError(f"must be https://HOST[:PORT][/.well-known/est[/LABEL]], got {text!r}")
    return text
