"""OpenSSL-backed record ciphers give tlslite's bytes exactly, alone and inside its record layer."""

from __future__ import annotations

import os
from typing import Any

import pytest
from tlslite import tlsconnection
from tlslite.constants import CipherSuite, ContentType
from tlslite.messages import RecordHeader3
from tlslite.recordlayer import RecordLayer
from tlslite.utils import (
    cipherfactory,
    python_aes,
    python_aesccm,
    python_aesgcm,
    python_chacha20_poly1305,
)

from python_est.tls import openssl_ticket_ciphers, use_openssl_ticket_ciphers
from python_est.tls.fastcipher import (
    AeadCipher,
    AesCbc,
    FastRecordLayer,
    new_aes_cbc,
    new_aes_ccm,
    new_aes_ccm_8,
    new_aes_gcm,
    new_chacha20_poly1305,
)

SIZES = [0, 1, 15, 16, 17, 100, 1500, 16384]

AEADS = [
    ("aes128gcm", 16, new_aes_gcm, python_aesgcm.new),
    ("aes256gcm", 32, new_aes_gcm, python_aesgcm.new),
    ("chacha20-poly1305", 32, new_chacha20_poly1305, python_chacha20_poly1305.new),
    ("aes128ccm", 16, new_aes_ccm, python_aesccm.new),
    ("aes256ccm_8", 32, new_aes_ccm_8, lambda key: python_aesccm.new(key, 8)),
]


@pytest.mark.parametrize(("name", "key_size", "fast_new", "python_new"), AEADS)
def test_aead_seal_and_open_match_tlslite(
    name: str, key_size: int, fast_new: Any, python_new: Any
) -> None:
    key = bytearray(os.urandom(key_size))
    fast, python = fast_new(key), python_new(key)
    assert (fast.name, fast.tagLength, fast.nonceLength) == (
        python.name,
        python.tagLength,
        python.nonceLength,
    )
    assert fast.isAEAD and not fast.isBlockCipher and fast.implementation == "cryptography"
    for size in SIZES[:-1]:  # tlslite's CCM is too slow for the largest size in a unit test
        nonce, data, ad = os.urandom(12), os.urandom(size), os.urandom(13)
        sealed = fast.seal(bytearray(nonce), bytearray(data), bytearray(ad))
        assert sealed == python.seal(bytearray(nonce), bytearray(data), bytearray(ad))
        assert python.open(bytearray(nonce), sealed, bytearray(ad)) == bytearray(data)
        assert fast.open(bytearray(nonce), sealed, bytearray(ad)) == bytearray(data)


def test_aead_open_refuses_tampering_like_tlslite() -> None:
    cipher = new_aes_gcm(bytearray(16))
    nonce, ad = bytearray(12), bytearray(b"header")
    sealed = cipher.seal(nonce, bytearray(b"payload"), ad)
    tampered = bytearray(sealed)
    tampered[0] ^= 1
    assert cipher.open(nonce, tampered, ad) is None
    assert cipher.open(nonce, sealed, bytearray(b"other")) is None
    assert cipher.open(nonce, sealed[:15], ad) is None  # shorter than a tag
    with pytest.raises(ValueError, match="nonce"):
        cipher.seal(bytearray(8), bytearray(b"x"), ad)


@pytest.mark.parametrize("key_size", [16, 32])
def test_cbc_chains_across_calls_like_tlslite(key_size: int) -> None:
    key, iv = bytearray(os.urandom(key_size)), bytearray(os.urandom(16))
    fast, python = new_aes_cbc(key, iv), python_aes.new(key, 2, iv)
    decrypt_fast, decrypt_python = new_aes_cbc(key, iv), python_aes.new(key, 2, iv)
    assert isinstance(fast, AesCbc)
    assert (fast.name, fast.block_size, fast.isBlockCipher) == (python.name, 16, True)
    for blocks in (1, 3, 64, 1):
        plain = bytearray(os.urandom(16 * blocks))
        ciphertext = fast.encrypt(plain)
        assert ciphertext == python.encrypt(bytearray(plain))
        assert decrypt_fast.decrypt(ciphertext) == plain
        assert decrypt_python.decrypt(bytearray(ciphertext)) == plain


def test_cbc_refuses_partial_blocks() -> None:
    cipher = AesCbc(bytearray(16), bytearray(16))
    with pytest.raises(ValueError, match="whole number of blocks"):
        cipher.encrypt(bytearray(17))
    with pytest.raises(ValueError, match="whole number of blocks"):
        cipher.decrypt(bytearray(15))


# --- inside tlslite's record layer ------------------------------------------------------------

SUITES = [
    ("ECDHE-RSA-AES128-GCM", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, (3, 3), False),
    ("ECDHE-RSA-AES256-GCM", CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, (3, 3), False),
    ("ECDHE-RSA-CHACHA20", CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, (3, 3), False),
    ("ECDHE-ECDSA-AES256-CCM", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CCM, (3, 3), False),
    (
        "ECDHE-RSA-AES128-SHA256 ETM",
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
        (3, 3),
        True,
    ),
    (
        "ECDHE-RSA-AES128-SHA256 MtE",
        CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
        (3, 3),
        False,
    ),
    ("SRP-AES-256-CBC-SHA ETM", CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA, (3, 3), True),
    ("SRP-AES-256-CBC-SHA TLS1.0", CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA, (3, 1), False),
]
MASTER, CLIENT_RANDOM, SERVER_RANDOM = (bytearray(os.urandom(n)) for n in (48, 32, 32))


def keyed(layer: RecordLayer, suite: int, version: tuple[int, int], etm: bool, client: bool) -> Any:
    layer.version = version
    layer.client = client
    layer.encryptThenMAC = etm
    layer.calcPendingStates(suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM, None)
    layer.changeWriteState()
    layer.changeReadState()
    return layer


def protect(layer: RecordLayer, data: bytes) -> bytearray:
    """What `RecordLayer.sendRecord` does to the payload, without the socket."""
    kind = ContentType.application_data
    if layer._writeState.encContext.isAEAD:
        return layer._encryptThenSeal(bytearray(data), kind)  # type: ignore[no-any-return]
    if layer._writeState.encryptThenMAC:
        return layer._encryptThenMAC(bytearray(data), kind)  # type: ignore[no-any-return]
    return layer._macThenEncrypt(bytearray(data), kind)  # type: ignore[no-any-return]


def unprotect(layer: RecordLayer, record: bytearray) -> bytearray:
    """What `RecordLayer.recvRecord` does to the payload, without the socket."""
    kind = ContentType.application_data
    header = RecordHeader3().create(layer.version, kind, len(record))
    if layer._readState.encContext.isAEAD:
        return layer._decryptAndUnseal(header, bytearray(record))  # type: ignore[no-any-return]
    if layer._readState.encryptThenMAC:
        return layer._macThenDecrypt(kind, bytearray(record))  # type: ignore[no-any-return]
    return layer._decryptThenMAC(kind, bytearray(record))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("label", "suite", "version", "etm"), SUITES, ids=[s[0] for s in SUITES])
def test_record_layer_sends_the_same_bytes(
    label: str, suite: int, version: tuple[int, int], etm: bool
) -> None:
    python = keyed(RecordLayer(None), suite, version, etm, client=False)
    fast = keyed(FastRecordLayer(None), suite, version, etm, client=False)
    if version >= (3, 2) and not fast._writeState.encContext.isAEAD:
        fast.fixedIVBlock = python.fixedIVBlock  # tlslite draws the CBC IV mask at random
    assert (python.getCipherImplementation(), fast.getCipherImplementation()) == (
        "python",
        "cryptography",
    )
    assert python.getCipherName() == fast.getCipherName()
    peer_python = keyed(RecordLayer(None), suite, version, etm, client=True)
    peer_fast = keyed(FastRecordLayer(None), suite, version, etm, client=True)
    for size in (5, 300, 16, 1200):  # several records: sequence numbers and CBC chaining
        data = os.urandom(size)
        record = protect(fast, data)
        assert record == protect(python, data)
        assert unprotect(peer_python, record) == bytearray(data)
        assert unprotect(peer_fast, record) == bytearray(data)


def test_record_layer_keeps_tlslite_for_ciphers_it_does_not_replace() -> None:
    suite = CipherSuite.TLS_RSA_WITH_3DES_EDE_CBC_SHA
    assert FastRecordLayer._getCipherSettings(suite) == RecordLayer._getCipherSettings(suite)
    for suite in (CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256):
        fast_lengths = FastRecordLayer._getCipherSettings(suite)[:2]
        assert fast_lengths == RecordLayer._getCipherSettings(suite)[:2]


def test_tls13_record_protection_uses_openssl() -> None:
    layer = FastRecordLayer(None)
    layer.version = (3, 4)
    layer.tls13record = True
    secret = bytearray(os.urandom(32))
    layer.calcTLS1_3PendingState(CipherSuite.TLS_AES_128_GCM_SHA256, secret, secret, None)
    layer.changeWriteState()
    assert isinstance(layer._writeState.encContext, AeadCipher)


def test_ticket_ciphers_are_switched_on_and_can_be_switched_back() -> None:
    use_openssl_ticket_ciphers()  # what an accelerated TlsEndpoint does when it is built
    assert openssl_ticket_ciphers()
    assert tlsconnection.createAESGCM is new_aes_gcm
    try:
        use_openssl_ticket_ciphers(False)
        assert not openssl_ticket_ciphers()
        assert tlsconnection.createAESGCM is cipherfactory.createAESGCM
        assert tlsconnection.createCHACHA20 is cipherfactory.createCHACHA20
    finally:
        use_openssl_ticket_ciphers()
    assert openssl_ticket_ciphers()
