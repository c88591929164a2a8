"""Treat an SNI that is not a DNS host name (an IP literal, say) as absent, as OpenSSL does.

RFC 6066 §3 forbids IP literals in server_name, but libest's estclient sends whatever host it
was given (`-s 192.0.2.10`), and tlslite-ng answers such a ClientHello with illegal_parameter,
so every operation of a device configured by address would fail. We serve one certificate
whatever the name, so ignoring the name loses nothing.
"""

from __future__ import annotations

from typing import Any

from tlslite.constants import ExtensionType
from tlslite.extensions import SNIExtension
from tlslite.messages import ClientHello
from tlslite.utils.dns_utils import is_valid_hostname


class _IgnoredServerName(SNIExtension):  # type: ignore[misc]
    """An SNI extension that still encodes to the bytes the client sent, but names no host.

    The encoding must not change: TLS 1.3 PSK binders are computed over the re-serialised
    ClientHello (RFC 8446 §4.2.11.2), and a HelloRetryRequest's second ClientHello is compared
    with the first extension by extension. tlslite tests the extension's truth before reading
    its first host name, so a false one is skipped exactly like a missing one.
    """

    def __bool__(self) -> bool:
        return False

    @property
    def hostNames(self) -> tuple[bytearray, ...]:  # noqa: N802 - tlslite's name
        return ()


def ignore_invalid_server_name(hello: Any) -> None:
    """Neutralise, in place, a ClientHello's SNI whose single host name is not a DNS name.

    Malformed extensions, empty names and several host names are left alone: tlslite refuses
    those with the alerts RFC 6066 asks for.
    """
    if not isinstance(hello, ClientHello) or not hello.extensions:
        return
    for index, extension in enumerate(hello.extensions):
        if extension.extType != ExtensionType.server_name:
            continue
        if isinstance(extension, SNIExtension) and _has_one_invalid_name(extension):
            ignored = _IgnoredServerName()
            ignored.serverNames = extension.serverNames
            hello.extensions[index] = ignored
        return


def _has_one_invalid_name(extension: SNIExtension) -> bool:
    names = extension.hostNames
    return len(names) == 1 and bool(names[0]) and not is_valid_hostname(names[0])
