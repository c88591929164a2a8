"""Server private keys for tlslite whose private-key operations run in `cryptography` (OpenSSL).

tlslite signs with whatever key object it is given and only ever calls `sign`/`verify` (and, for
RSA key exchange, `decrypt`). These subclasses of tlslite's own Python key classes keep every
attribute tlslite reads (`n`, `e`, `key_type`, `curve_name`, `private_key.curve.baselen`, ...)
and override only the operations that OpenSSL can do with the same result:

* RSA: PKCS#1 v1.5 with a named hash (deterministic: the same bytes as tlslite's code) and PSS
  with MGF1 of the same hash, both given the digest (`Prehashed`), as tlslite always passes it.
  TLS 1.0/1.1's raw MD5+SHA1 signatures and RSA decryption fall back to tlslite's code.
* ECDSA: any digest whose length is a SHA-2/SHA-1 size. ECDSA uses only the digest bytes (no
  DigestInfo), so the hash named by the length is just a container of the right size. OpenSSL
  draws a random nonce where python-ecdsa derives one (RFC 6979); both are valid ECDSA.

A client's CertificateVerify is checked with the public key tlslite made from its certificate;
`fast_public_key` wraps that key so that `verify` runs in OpenSSL too (a P-256 verification in
python-ecdsa costs more than the rest of an enrollment's TLS work).
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from tlslite.utils.python_ecdsakey import Python_ECDSAKey
from tlslite.utils.python_rsakey import Python_RSAKey

from python_est.tls.tlslite_seams import COUNTS

_NAMED_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_HASH_BY_SIZE: dict[int, type[hashes.HashAlgorithm]] = {
    20: hashes.SHA1,
    28: hashes.SHA224,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}
# python-ecdsa's names, which tlslite compares against (e.g. `_curve_name_to_hash_name`).
_ECDSA_CURVES = {"secp256r1": "NIST256p", "secp384r1": "NIST384p", "secp521r1": "NIST521p"}
_OPENSSL_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "NIST256p": ec.SECP256R1,
    "NIST384p": ec.SECP384R1,
    "NIST521p": ec.SECP521R1,
}


def tlslite_private_key(key: PrivateKeyTypes) -> Any:
    """The tlslite key object for a server key, with signing done by OpenSSL.

    Raises:
        ValueError: the key is neither RSA nor ECDSA on P-256/P-384/P-521.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        return FastRSAKey(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return FastECDSAKey(key)
    raise ValueError(f"unsupported server key type: {type(key).__name__}")


def _rsa_scheme(
    pad: str, hash_name: str | None, salt_len: int | None, digest: bytes | bytearray
) -> tuple[rsa_padding.AsymmetricPadding, hashes.HashAlgorithm] | None:
    """The OpenSSL padding and hash for a tlslite RSA call, or None to use tlslite's code."""
    hash_cls = _NAMED_HASHES.get((hash_name or "").lower())
    if hash_cls is None:
        return None
    algorithm = hash_cls()
    if len(digest) != algorithm.digest_size:
        return None
    if pad.lower() == "pkcs1":
        return rsa_padding.PKCS1v15(), algorithm
    if pad.lower() == "pss" and salt_len is not None:
        mgf = rsa_padding.MGF1(hash_cls())
        return rsa_padding.PSS(mgf=mgf, salt_length=salt_len), algorithm
    return None


class FastRSAKey(Python_RSAKey):  # type: ignore[misc]
    """tlslite's `Python_RSAKey`, signing and verifying through OpenSSL.

    Args:
        key: the server's RSA private key.
    """

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        numbers = key.private_numbers()
        public = numbers.public_numbers
        super().__init__(
            public.n,
            public.e,
            numbers.d,
            numbers.p,
            numbers.q,
            numbers.dmp1,
            numbers.dmq1,
            numbers.iqmp,
        )
        self._key = key
        self._public = key.public_key()

    def sign(
        self,
        data: bytes | bytearray,
        padding: str = "pkcs1",  # tlslite's keyword names
        hashAlg: str | None = None,  # noqa: N803
        saltLen: int | None = None,  # noqa: N803
    ) -> bytearray:
        """Sign a digest as tlslite's `RSAKey.sign` does."""
        scheme = _rsa_scheme(padding, hashAlg, saltLen, data)
        if scheme is None:
            return super().sign(data, padding, hashAlg, saltLen)  # type: ignore[no-any-return]
        pad, algorithm = scheme
        signature = self._key.sign(bytes(data), pad, Prehashed(algorithm))
        COUNTS.signing += 1
        return bytearray(signature)

    def verify(
        self,
        sigBytes: bytes | bytearray,  # noqa: N803
        data: bytes | bytearray,
        padding: str = "pkcs1",
        hashAlg: str | None = None,  # noqa: N803
        saltLen: int | None = None,  # noqa: N803
    ) -> bool:
        """Verify a signature over a digest as tlslite's `RSAKey.verify` does."""
        # tlslite accepts SHA-1 DigestInfo with and without NULL parameters; keep its code.
        sha1_pkcs1 = padding.lower() == "pkcs1" and (hashAlg or "").lower() == "sha1"
        scheme = None if sha1_pkcs1 else _rsa_scheme(padding, hashAlg, saltLen, data)
        if scheme is None:
            return bool(super().verify(sigBytes, data, padding, hashAlg, saltLen))
        pad, algorithm = scheme
        try:
            self._public.verify(bytes(sigBytes), bytes(data), pad, Prehashed(algorithm))
        except InvalidSignature:
            return False
        return True


class FastECDSAKey(Python_ECDSAKey):  # type: ignore[misc]
    """tlslite's `Python_ECDSAKey`, signing and verifying through OpenSSL.

    Args:
        key: the server's EC private key (P-256, P-384 or P-521).
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        curve = _ECDSA_CURVES.get(key.curve.name)
        if curve is None:
            raise ValueError(f"unsupported server key curve: {key.curve.name}")
        numbers = key.private_numbers()
        public = numbers.public_numbers
        super().__init__(public.x, public.y, curve, secret_multiplier=numbers.private_value)
        self._key = key
        self._public = key.public_key()

    def _sign(self, data: bytes | bytearray, hAlg: str) -> bytearray:  # noqa: N803
        hash_cls = _HASH_BY_SIZE.get(len(data))
        if hash_cls is None:
            return super()._sign(data, hAlg)  # type: ignore[no-any-return]
        signature = self._key.sign(bytes(data), ec.ECDSA(Prehashed(hash_cls())))
        COUNTS.signing += 1
        return bytearray(signature)

    def _hashAndSign(self, data: bytes | bytearray, hAlg: str) -> bytearray:  # noqa: N802, N803
        hash_cls = _NAMED_HASHES.get(hAlg.lower())
        if hash_cls is None:
            return super()._hashAndSign(data, hAlg)  # type: ignore[no-any-return]
        signature = self._key.sign(bytes(data), ec.ECDSA(hash_cls()))
        COUNTS.signing += 1
        return bytearray(signature)

    def _verify(self, signature: bytes | bytearray, hash_bytes: bytes | bytearray) -> bool:
        verdict = _verify_ecdsa(self._public, signature, hash_bytes)
        return bool(super()._verify(signature, hash_bytes)) if verdict is None else verdict


def _verify_ecdsa(
    public: ec.EllipticCurvePublicKey, signature: bytes | bytearray, digest: bytes | bytearray
) -> bool | None:
    """OpenSSL's verdict on an ECDSA signature over a digest; None for an odd digest length."""
    hash_cls = _HASH_BY_SIZE.get(len(digest))
    if hash_cls is None:
        return None
    try:
        public.verify(bytes(signature), bytes(digest), ec.ECDSA(Prehashed(hash_cls())))
    except InvalidSignature:
        return False
    return True


def fast_public_key(key: Any) -> Any:
    """A tlslite public key (from a peer's certificate) whose `verify` runs in OpenSSL.

    Keys other than tlslite's Python RSA and NIST-curve ECDSA keys are returned unchanged.
    """
    if type(key) is Python_ECDSAKey and key.curve_name in _OPENSSL_CURVES:
        point = key.public_key.pubkey.point
        numbers = ec.EllipticCurvePublicNumbers(
            int(point.x()), int(point.y()), _OPENSSL_CURVES[key.curve_name]()
        )
        return _FastVerifier(key, numbers.public_key())
    if type(key) is Python_RSAKey and not key.hasPrivateKey():
        return _FastVerifier(key, rsa.RSAPublicNumbers(int(key.e), int(key.n)).public_key())
    return key


class _FastVerifier:
    """A tlslite public key with `verify` in OpenSSL; everything else is the wrapped key's."""

    def __init__(self, key: Any, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> None:
        self._key = key
        self._public = public

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    def __len__(self) -> int:
        return len(self._key)

    def verify(
        self,
        sigBytes: bytes | bytearray,  # noqa: N803 - tlslite's keyword names
        data: bytes | bytearray,
        padding: Any = None,
        hashAlg: str | None = None,  # noqa: N803
        saltLen: int | None = None,  # noqa: N803
    ) -> bool:
        """As the wrapped key's `verify` (ECDSA over a digest; RSA PKCS#1 v1.5 or PSS)."""
        verdict: bool | None = None
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            verdict = _verify_ecdsa(self._public, sigBytes, data)
        elif isinstance(padding, str) and not (
            # tlslite's own rules: SHA-1 DigestInfo with or without NULL; no PKCS#1 v1.5 from
            # an RSASSA-PSS key.
            padding.lower() == "pkcs1"
            and ((hashAlg or "").lower() == "sha1" or self._key.key_type == "rsa-pss")
        ):
            scheme = _rsa_scheme(padding, hashAlg, saltLen, data)
            if scheme is not None:
                try:
                    self._public.verify(
                        bytes(sigBytes), bytes(data), scheme[0], Prehashed(scheme[1])
                    )
                    verdict = True
                except InvalidSignature:
                    verdict = False
        if verdict is None:
            return bool(self._key.verify(sigBytes, data, padding, hashAlg, saltLen))
        COUNTS.public_key += 1
        return verdict
