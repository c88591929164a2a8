"""Record protection through `cryptography` (OpenSSL), behind tlslite's record-layer seam.

tlslite builds each direction's cipher from `RecordLayer._getCipherSettings(suite)`, which names
a factory from `tlslite.utils.cipherfactory`. That factory only knows M2Crypto, PyCrypto and its
own pure-Python code (`HandshakeSettings.cipherImplementations` accepts no other name), so
`FastRecordLayer` swaps the factory for one returning objects with the same interface
(`seal`/`open` for AEAD, `encrypt`/`decrypt` for CBC) backed by OpenSSL. Same algorithms, same
bytes on the wire, and OpenSSL's constant-time code in place of tlslite's pure-Python ciphers,
which upstream documents as not timing-safe. CCM is covered too; RC4 and 3DES stay in tlslite.

Session tickets are the one place without a seam: `TLSConnection` seals and opens them with the
factories it imported by name into `tlslite.tlsconnection`, from private methods that would
otherwise have to be copied. `use_openssl_ticket_ciphers()` rebinds those four names
(`tlslite_seams.TICKET_CIPHER_NAMES`) to the factories here, process-wide; an accelerated
`TlsEndpoint` calls it when it is built, not on import, so importing python_est changes nothing
in tlslite. That is a change to a tlslite module, made on purpose: it is confined to ticket
sealing (nothing else in that module uses these names), the functions compute the same AEAD
output byte for byte (tested against tlslite's), and the seam check pins tlslite-ng. Without
it, a ticket costs ~0.6 ms of pure-Python AES-GCM on every full and resumed handshake.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from tlslite import tlsconnection
from tlslite.recordlayer import RecordLayer
from tlslite.utils import cipherfactory

from python_est.tls.tlslite_seams import COUNTS, TICKET_CIPHER_NAMES

IMPLEMENTATION = "cryptography"  # what `TLSConnection.getCipherImplementation()` reports
_NONCE_LENGTH = 12
_BLOCK = 16
_AES_NAMES = {16: "aes128", 24: "aes192", 32: "aes256"}

Buffer = bytes | bytearray | memoryview


class AeadCipher:
    """An AEAD cipher in tlslite's interface (`tlslite.utils.aesgcm.AESGCM` and friends).

    Args:
        name: tlslite's cipher name, e.g. "aes128gcm"; the record layer reads it (AES names get
            an explicit nonce in TLS 1.2).
        key: the traffic key.
        engine: the `cryptography` AEAD object for `key`.
        tag_length: bytes of authentication tag.
    """

    isBlockCipher = False  # noqa: N815 - tlslite's attribute names
    isAEAD = True  # noqa: N815
    nonceLength = _NONCE_LENGTH  # noqa: N815
    implementation = IMPLEMENTATION

    def __init__(
        self,
        name: str,
        key: Buffer,
        engine: AESGCM | AESCCM | ChaCha20Poly1305,
        tag_length: int = 16,
    ) -> None:
        self.name = name
        self.key = bytearray(key)
        self.tagLength = tag_length
        self._engine = engine

    def seal(self, nonce: Buffer, plaintext: Buffer, data: Buffer) -> bytearray:
        """Encrypt and authenticate: the ciphertext followed by the tag."""
        if len(nonce) != _NONCE_LENGTH:
            raise ValueError("Bad nonce length")
        return bytearray(self._engine.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: Buffer, ciphertext: Buffer, data: Buffer) -> bytearray | None:
        """Check and decrypt; None when the tag does not match (as tlslite's ciphers do)."""
        if len(nonce) != _NONCE_LENGTH:
            raise ValueError("Bad nonce length")
        if len(ciphertext) < self.tagLength:
            return None
        try:
            return bytearray(self._engine.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None


class AesCbc:
    """AES-CBC in tlslite's interface (`tlslite.utils.aes.AES`, mode CBC).

    Like tlslite's, one object chains across calls: each record starts from the last ciphertext
    block of the previous one. An OpenSSL context does exactly that across `update` calls, as
    long as every input is whole blocks, which the record layer guarantees and this checks.
    An object is used for one direction only, as the record layer does.
    """

    isBlockCipher = True  # noqa: N815
    isAEAD = False  # noqa: N815
    block_size = _BLOCK
    implementation = IMPLEMENTATION

    def __init__(self, key: Buffer, iv: Buffer) -> None:
        self.name = _AES_NAMES[len(key)]
        self._cipher = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv)))
        self._encryptor: CipherContext | None = None
        self._decryptor: CipherContext | None = None

    def encrypt(self, plaintext: Buffer) -> bytearray:
        """CBC-encrypt whole blocks, continuing the chain."""
        if len(plaintext) % _BLOCK:
            raise ValueError("CBC input is not a whole number of blocks")
        if self._encryptor is None:
            self._encryptor = self._cipher.encryptor()
        return bytearray(self._encryptor.update(bytes(plaintext)))

    def decrypt(self, ciphertext: Buffer) -> bytearray:
        """CBC-decrypt whole blocks, continuing the chain."""
        if len(ciphertext) % _BLOCK:
            raise ValueError("CBC input is not a whole number of blocks")
        if self._decryptor is None:
            self._decryptor = self._cipher.decryptor()
        return bytearray(self._decryptor.update(bytes(ciphertext)))


# The factories keep tlslite's signatures; the implementation list is moot here (tlslite's
# settings cannot name this implementation), so it is accepted and ignored.
def new_aes_gcm(key: Buffer, implList: object = None) -> AeadCipher:  # noqa: N803
    """AES-GCM (128 or 256) for `key`."""
    name = {16: "aes128gcm", 32: "aes256gcm"}[len(key)]
    return AeadCipher(name, key, AESGCM(bytes(key)))


def new_aes_ccm(key: Buffer, implList: object = None) -> AeadCipher:  # noqa: N803
    """AES-CCM with a 16-byte tag."""
    name = {16: "aes128ccm", 32: "aes256ccm"}[len(key)]
    return AeadCipher(name, key, AESCCM(bytes(key), tag_length=16))


def new_aes_ccm_8(key: Buffer, implList: object = None) -> AeadCipher:  # noqa: N803
    """AES-CCM with an 8-byte tag."""
    name = {16: "aes128ccm_8", 32: "aes256ccm_8"}[len(key)]
    return AeadCipher(name, key, AESCCM(bytes(key), tag_length=8), tag_length=8)


def new_chacha20_poly1305(key: Buffer, implList: object = None) -> AeadCipher:  # noqa: N803
    """ChaCha20-Poly1305 (RFC 8439)."""
    return AeadCipher("chacha20-poly1305", key, ChaCha20Poly1305(bytes(key)))


def new_aes_cbc(key: Buffer, IV: Buffer, implList: object = None) -> AesCbc:  # noqa: N803
    """AES-CBC for `key`, chaining from `IV`."""
    return AesCbc(key, IV)


_FACTORIES: dict[Callable[..., Any], Callable[..., Any]] = {
    cipherfactory.createAESGCM: new_aes_gcm,
    cipherfactory.createAESCCM: new_aes_ccm,
    cipherfactory.createAESCCM_8: new_aes_ccm_8,
    cipherfactory.createCHACHA20: new_chacha20_poly1305,
    cipherfactory.createAES: new_aes_cbc,
}


class FastRecordLayer(RecordLayer):  # type: ignore[misc]
    """tlslite's record layer with OpenSSL-backed ciphers for AES and ChaCha20 suites.

    Used by TLS 1.0-1.2 (`calcPendingStates`) and TLS 1.3 (`calcTLS1_3PendingState`, key
    updates) alike, since all of them ask `_getCipherSettings` for the factory.
    """

    @staticmethod
    def _getCipherSettings(cipherSuite: int) -> tuple[int, int, Any]:  # noqa: N802, N803
        key_length, iv_length, factory = RecordLayer._getCipherSettings(cipherSuite)
        fast = _FACTORIES.get(factory)
        if fast is None:
            return key_length, iv_length, factory
        COUNTS.record_layer += 1
        return key_length, iv_length, fast


_TLSLITE_TICKET_FACTORIES = {name: getattr(cipherfactory, name) for name in TICKET_CIPHER_NAMES}
_rebinding = threading.Lock()  # the four names change together


def use_openssl_ticket_ciphers(enabled: bool = True) -> None:
    """Seal and open TLS session tickets with OpenSSL (True) or tlslite's Python code (False).

    Process-wide and idempotent: rebinds tlslite's ticket-cipher factories in
    `tlslite.tlsconnection`. Handshakes under way may see the old and new factories mixed,
    which is harmless: both compute the same bytes.
    """
    with _rebinding:
        for name, factory in _TLSLITE_TICKET_FACTORIES.items():
            setattr(tlsconnection, name, _FACTORIES[factory] if enabled else factory)


def openssl_ticket_ciphers() -> bool:
    """Whether tlslite seals session tickets with the OpenSSL factories (for tests and logs)."""
    return all(
        getattr(tlsconnection, name) is _FACTORIES[factory]
        for name, factory in _TLSLITE_TICKET_FACTORIES.items()
    )
