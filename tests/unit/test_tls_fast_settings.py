"""Settings validated once behave as tlslite's validate() would on every handshake."""

from __future__ import annotations

import pytest
from tlslite.api import HandshakeSettings

from python_est.config import TlsConfig
from python_est.tls import build_settings
from python_est.tls.settings import prevalidated, with_ticket_keys


def test_validate_returns_what_tlslite_would_compute() -> None:
    raw = HandshakeSettings()
    raw.cipherNames = ["aes128gcm", "chacha20-poly1305"]
    raw.maxVersion = (3, 3)
    expected = HandshakeSettings.validate(raw).__dict__
    checked = prevalidated(raw)
    assert checked.validate().__dict__ == expected
    assert checked.validate().validate().__dict__ == expected


def test_each_handshake_gets_its_own_copy() -> None:
    cert, _ = build_settings(TlsConfig())
    first, second = cert.validate(), cert.validate()
    assert first is not second and first is not cert
    first.dsaSigHashes = []  # tlslite reassigns attributes of its copy (TLS 1.3 CertificateRequest)
    assert second.dsaSigHashes == cert.dsaSigHashes != []


def test_ticket_keys_are_validated_and_applied_to_a_new_object() -> None:
    cert, _ = build_settings(TlsConfig(session_lifetime=600))
    assert cert.ticketKeys == [] and cert.ticketLifetime == 600
    keyed = with_ticket_keys(cert, [b"k" * 32, b"o" * 16])
    assert keyed.validate().ticketKeys == [bytearray(b"k" * 32), bytearray(b"o" * 16)]
    assert cert.ticketKeys == []
    with pytest.raises(ValueError, match="16 or 32"):
        with_ticket_keys(cert, [b"short"])


def test_ticket_lifetime_stays_within_tlslite_limits() -> None:
    cert, _ = build_settings(TlsConfig(session_lifetime=30 * 24 * 3600))
    assert cert.ticketLifetime == 7 * 24 * 3600


def test_invalid_settings_fail_when_built_not_at_the_first_handshake() -> None:
    raw = HandshakeSettings()
    raw.cipherNames = ["no-such-cipher"]
    with pytest.raises(ValueError):
        prevalidated(raw)
