"""The memoized cipher-suite filter gives tlslite's lists for every getter, version and setting."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tlslite import tlsconnection
from tlslite.api import HandshakeSettings
from tlslite.constants import CipherSuite

from python_est.config import TlsConfig
from python_est.tls import build_settings
from python_est.tls.fastsuites import CachedCipherSuite, cached_suites, use_cached_suites

GETTERS = [
    "getTLS13Suites",
    "getSrpSuites",
    "getSrpCertSuites",
    "getSrpDsaSuites",
    "getSrpAllSuites",
    "getCertSuites",
    "getDheCertSuites",
    "getEcdheCertSuites",
    "getEcdsaSuites",
    "getDheDsaSuites",
    "getAnonSuites",
    "getEcdhAnonSuites",
]
VERSIONS = [None, (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)]
_DEFAULTS = HandshakeSettings()
CIPHERS = sorted({*_DEFAULTS.cipherNames, "rc4", "null", "3des", "chacha20-poly1305_draft00"})
MACS = sorted({*_DEFAULTS.macNames, "md5"})
KEY_EXCHANGES = sorted(
    {*_DEFAULTS.keyExchangeNames, "srp_sha", "srp_sha_rsa", "dh_anon", "ecdh_anon", "dhe_dsa"}
)


def _raw(ciphers: list[str], macs: list[str], kexes: list[str]) -> Any:
    raw = HandshakeSettings()
    raw.cipherNames, raw.macNames, raw.keyExchangeNames = ciphers, macs, kexes
    return raw


def _assert_same(config: Any) -> None:
    for name in GETTERS:
        for version in VERSIONS:
            expected = getattr(CipherSuite, name)(config, version)
            assert getattr(CachedCipherSuite, name)(config, version) == expected
            again = getattr(CachedCipherSuite, name)(config, version)  # from the memo
            assert again == expected
            again.append(0)  # each caller gets its own list, as from tlslite
            assert getattr(CachedCipherSuite, name)(config, version) == expected


def test_the_configured_settings_give_tlslites_lists() -> None:
    for config in build_settings(TlsConfig()):
        _assert_same(config)
        _assert_same(config.validate())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(CIPHERS), unique=True),
    st.lists(st.sampled_from(MACS), unique=True),
    st.lists(st.sampled_from(KEY_EXCHANGES), unique=True),
)
def test_any_names_give_tlslites_lists(
    ciphers: list[str], macs: list[str], kexes: list[str]
) -> None:
    _assert_same(_raw(ciphers, macs, kexes))


def test_a_changed_setting_is_a_different_key() -> None:
    config = _raw(["aes128gcm"], ["aead"], ["ecdhe_rsa"])
    assert CachedCipherSuite.getEcdheCertSuites(config, (3, 3)) == [
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    ]
    config.cipherNames = ["aes256gcm"]
    assert CachedCipherSuite.getEcdheCertSuites(config, (3, 3)) == [
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    ]
    config.maxVersion = (3, 1)  # no explicit version: the settings' maximum decides
    assert CachedCipherSuite.getEcdheCertSuites(config) == CipherSuite.getEcdheCertSuites(config)


def test_the_subclass_reads_as_tlslites_class() -> None:
    assert CachedCipherSuite.ietfNames is CipherSuite.ietfNames
    assert CachedCipherSuite.srpAllSuites is CipherSuite.srpAllSuites
    assert CachedCipherSuite.filterForVersion is CipherSuite.filterForVersion


def test_switching_rebinds_the_handshake_codes_name_only() -> None:
    was = cached_suites()
    try:
        use_cached_suites(False)
        assert tlsconnection.CipherSuite is CipherSuite and not cached_suites()
        use_cached_suites()
        use_cached_suites()  # idempotent
        assert tlsconnection.CipherSuite is CachedCipherSuite and cached_suites()
        assert CipherSuite._filterSuites is not CachedCipherSuite._filterSuites
    finally:
        use_cached_suites(was)
