"""The tlslite settings built from [tls], and the ClientHello routing decision (no sockets)."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable

import pytest
from tlslite.constants import CipherSuite
from tlslite.messages import ClientHello

from python_est.config import TlsConfig
from python_est.tls import Route, build_settings, classify_client_hello, validate_tls_names

SAFE_CERT_SUITES = {
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
}


def test_defaults_are_tls12_aead_ecdhe_for_certificates() -> None:
    cert, _ = build_settings(TlsConfig())
    assert (cert.minVersion, cert.maxVersion) == ((3, 3), (3, 3))
    assert cert.versions == [(3, 3)]
    assert cert.cipherNames == ["aes256gcm", "aes128gcm", "chacha20-poly1305"]
    assert cert.macNames == ["aead", "sha256", "sha384"]
    assert cert.keyExchangeNames == ["ecdhe_ecdsa", "ecdhe_rsa"]
    assert cert.useEncryptThenMAC and cert.useExtendedMasterSecret
    assert "sha1" not in cert.rsaSigHashes and "sha1" not in cert.ecdsaSigHashes


@pytest.mark.parametrize("side", ["cert", "srp"])
def test_no_signature_algorithm_accepts_sha1_or_sha224_by_default(side: str) -> None:
    cert, srp = build_settings(TlsConfig())
    settings = cert if side == "cert" else srp
    for hashes in (settings.rsaSigHashes, settings.ecdsaSigHashes, settings.dsaSigHashes):
        assert hashes == ["sha512", "sha384", "sha256"]


def test_defaults_for_srp_are_tls12_aes_cbc_sha() -> None:
    _, srp = build_settings(TlsConfig())
    assert (srp.minVersion, srp.maxVersion) == ((3, 3), (3, 3))
    assert srp.cipherNames == ["aes256", "aes128"]
    assert srp.macNames == ["sha"]
    assert set(srp.keyExchangeNames) == {"srp_sha", "srp_sha_rsa"}
    assert srp.useEncryptThenMAC


def test_settings_pass_tlslite_validation_and_select_only_safe_suites() -> None:
    cert, srp = (s.validate() for s in build_settings(TlsConfig()))
    offered = set(CipherSuite.getEcdheCertSuites(cert, (3, 3)))
    offered |= set(CipherSuite.getEcdsaSuites(cert, (3, 3)))
    assert SAFE_CERT_SUITES <= offered
    assert not offered & set(CipherSuite.tripleDESSuites)
    assert not CipherSuite.getCertSuites(cert, (3, 3))  # RSA key exchange
    assert set(CipherSuite.getSrpAllSuites(srp, (3, 3))) == {
        CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA,
        CipherSuite.TLS_SRP_SHA_WITH_AES_128_CBC_SHA,
        CipherSuite.TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA,
        CipherSuite.TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA,
    }


def test_tls13_for_certificates_never_reaches_srp() -> None:
    cert, srp = build_settings(TlsConfig(max_version="1.3"))
    assert cert.maxVersion == (3, 4) and (3, 4) in cert.versions
    assert srp.maxVersion == (3, 3) and (3, 4) not in srp.versions


def test_defaults_have_no_problems() -> None:
    assert validate_tls_names(TlsConfig()) == []


WEAK = TlsConfig(
    min_version="1.0",
    srp_min_version="1.1",
    cipher_names=("aes128gcm", "aes128", "3des"),
    mac_names=("aead", "sha", "md5"),
    key_exchange_names=("ecdhe_rsa", "rsa"),
)


def test_weak_settings_are_refused_without_allow_legacy() -> None:
    problems = " | ".join(validate_tls_names(WEAK))
    for name in ("min_version = 1.0", "srp_min_version = 1.1", "3des", "md5", "rsa"):
        assert name in problems
    with pytest.raises(ValueError, match="allow_legacy"):
        build_settings(WEAK)


def test_weak_settings_are_accepted_with_allow_legacy() -> None:
    legacy = dataclasses.replace(WEAK, allow_legacy=True)
    assert validate_tls_names(legacy) == []
    cert, srp = build_settings(legacy)
    assert cert.versions == [(3, 3), (3, 2), (3, 1)]
    assert srp.versions == [(3, 3), (3, 2)]
    assert "sha1" in cert.rsaSigHashes  # old clients sign with SHA-1
    assert "sha1" in cert.dsaSigHashes
    assert "3des" in cert.cipherNames and "rsa" in cert.keyExchangeNames


def test_anonymous_key_exchange_is_never_allowed() -> None:
    cfg = TlsConfig(key_exchange_names=("ecdhe_rsa", "dh_anon"), allow_legacy=True)
    assert any("dh_anon" in p and "never" in p for p in validate_tls_names(cfg))


def test_srp_with_aead_ciphers_selects_nothing() -> None:
    problems = validate_tls_names(TlsConfig(srp_cipher_names=("aes256gcm",)))
    assert len(problems) == 1 and "no SRP suite" in problems[0]


def test_certificate_settings_selecting_nothing_are_reported() -> None:
    problems = validate_tls_names(TlsConfig(cipher_names=("aes256",), mac_names=("aead",)))
    assert len(problems) == 1 and "select no cipher suite" in problems[0]


# --- ClientHello routing -------------------------------------------------------------------


def record(suites: list[int], srp_user: bytes | None = None) -> bytes:
    user = None if srp_user is None else bytearray(srp_user)
    hello = ClientHello().create((3, 3), bytearray(32), bytearray(0), suites, srpUsername=user)
    body = bytes(hello.write())
    return b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body


def openssl_client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    with pytest.raises(ssl.SSLWantReadError):
        ctx.wrap_bio(incoming, outgoing).do_handshake()
    return outgoing.read()


ECDHE = CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
SRP = CipherSuite.TLS_SRP_SHA_WITH_AES_128_CBC_SHA
SRP_RSA = CipherSuite.TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA


@pytest.mark.parametrize(
    ("suites", "user", "route"),
    [
        ([ECDHE], None, Route.CERT),
        ([SRP], b"alice", Route.SRP),
        ([SRP, SRP_RSA], b"alice", Route.SRP_RSA),
        # SRP needs a user name and an SRP suite; with only one, a certificate suite is the
        # only way the handshake can succeed.
        ([SRP], None, Route.CERT),
        ([ECDHE], b"alice", Route.CERT),
        ([ECDHE, SRP_RSA], None, Route.CERT),
        ([ECDHE, SRP_RSA], b"alice", Route.SRP_RSA),
    ],
)
def test_route_follows_srp_extension_and_suites(
    suites: list[int], user: bytes | None, route: Route
) -> None:
    assert classify_client_hello(record(suites, user)) is route


def test_openssl_client_hello_takes_the_certificate_route() -> None:
    assert classify_client_hello(openssl_client_hello()) is Route.CERT


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r[:9],  # truncated inside the handshake header
        lambda r: r[:5] + b"\x02" + r[6:],  # not a ClientHello (ServerHello type)
        lambda r: r[:6] + b"\xff\xff\xff" + r[9:],  # handshake longer than the record: split
        lambda r: r[:5] + r[5:9] + b"\xff" * (len(r) - 9),  # garbage body
        lambda r: b"",
    ],
)
def test_anything_unparseable_takes_the_certificate_route(
    mangle: Callable[[bytes], bytes],
) -> None:
    intact = record([SRP], b"alice")
    assert classify_client_hello(intact) is Route.SRP
    assert classify_client_hello(mangle(intact)) is Route.CERT
