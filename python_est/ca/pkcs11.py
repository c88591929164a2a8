"""A CA key on a PKCS#11 token (an HSM, or SoftHSM2): found, created and used to sign there.

The binding is python-pkcs11 (the optional `pkcs11` extra), imported only when a token key is
configured. The private key never leaves the token: keys this module creates are CKA_SENSITIVE
and not CKA_EXTRACTABLE (PKCS#11 v2.40 §4.9), and a key that is extractable is refused, so the
CA key cannot be copied out of the token through this product.

Hashing happens here and only the digest goes to the token for ECDSA (CKM_ECDSA), which every
token supports; RSA uses the combined CKM_SHA*_RSA_PKCS mechanisms (PKCS#1 v1.5, as X.509's
sha*WithRSAEncryption needs). ECDSA comes back as r||s and is re-encoded as the DER
Ecdsa-Sig-Value X.509 carries (RFC 3279 §2.2.3).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ

from python_est.ca.rules import IssuerPublicKey, SignatureHash
from python_est.ca.signer import verify_signature
from python_est.errors import CaError
from python_est.keys import KeyType, weak_key_reason

if TYPE_CHECKING:
    import pkcs11
    from pkcs11._pkcs11 import lib as p11_library
    from pkcs11.types import SignMixin

# Which setting a problem is about, so the caller can name its config key.
Field = Literal["module", "token", "pin", "key"]
_PROBE = b"python-est: does this token key match its public key?"
# The process that initialised each module (python-pkcs11 keeps one per path): C_Initialize
# runs once per process, and a forked child must run its own (PKCS#11 v2.40 §6.7.7).
_INITIALISED_BY: dict[str, int] = {}
_LIBRARIES_LOCK = threading.Lock()
# Seconds between the attempts to find a token whose module fails in general (`_find_token`).
_TOKEN_RETRY_PAUSES = (0.05, 0.2, 0.5)
# The SHA-256 of the PIN that logged this process in to each token (slot, serial).
_LOGINS: dict[tuple[int, bytes], bytes] = {}
# The open keys by (module, token, key label, PIN digest): a reload, which loads the state again
# beside the running one, shares its session instead of opening one more each time.
_OPEN: dict[tuple[str, str, str, bytes], TokenKey] = {}


class TokenError(ValueError):
    """A PKCS#11 problem, with the setting it is about (`field`) and a one-line reason."""

    def __init__(self, field: Field, message: str, *, missing_key: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.missing_key = missing_key


class TokenKey:
    """A CA private key on a PKCS#11 token, behind an open logged-in session.

    PKCS#11 sessions are not for concurrent use (v2.40 §5.1.2), so one lock serialises the
    worker threads' signatures.
    """

    def __init__(
        self, session: pkcs11.Session, key: SignMixin, public: IssuerPublicKey, where: str
    ) -> None:
        self._session = session
        self._key = key
        self._public = public
        self._where = where
        self._lock = threading.Lock()
        self._holders = 1
        self._shared_as: tuple[str, str, str, bytes] | None = None

    @property
    def location(self) -> str:
        """`pkcs11:token=...;object=...` (RFC 7512 style), for operators."""
        return self._where

    def public_key(self) -> IssuerPublicKey:
        """The key's public half."""
        return self._public

    def sign(self, data: bytes, algorithm: SignatureHash) -> bytes:
        """Sign on the token; an X.509 signatureValue (ECDSA as DER).

        Raises:
            CaError: the token failed (removed, logged out, out of sessions, ...).
        """
        from pkcs11 import Mechanism, PKCS11Error

        try:
            with self._lock:
                if isinstance(self._public, rsa.RSAPublicKey):
                    # CKM_SHA256_RSA_PKCS and its siblings (v2.40 §2.1.10).
                    mechanism = getattr(Mechanism, f"{algorithm.name.upper()}_RSA_PKCS")
                    return bytes(self._key.sign(data, mechanism=mechanism))
                digest = hashes.Hash(algorithm)
                digest.update(data)
                raw = bytes(self._key.sign(digest.finalize(), mechanism=Mechanism.ECDSA))
        except PKCS11Error as exc:
            raise CaError(f"the CA token failed to sign ({type(exc).__name__})") from exc
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def close(self) -> None:
        """Let go of the key; the last holder closes the session (logging it out)."""
        from pkcs11 import PKCS11Error

        with _LIBRARIES_LOCK:
            self._holders -= 1
            if self._holders > 0:
                return
            if self._shared_as is not None and _OPEN.get(self._shared_as) is self:
                del _OPEN[self._shared_as]
        try:
            self._session.close()
        except PKCS11Error:
            pass  # already gone with the token: nothing is left to release


def _find_token(library: p11_library, module: Path, token_label: str) -> pkcs11.Token:
    """The token labelled `token_label`, asked again after a short pause when the module
    fails in general: SoftHSM does when forked workers open its token in the same moment, and
    an HSM may while it restarts. Without a retry the worker died with a bare GeneralError
    (and was restarted a second later)."""
    from pkcs11 import PKCS11Error, exceptions

    for pause in (*_TOKEN_RETRY_PAUSES, None):
        try:
            return library.get_token(token_label=token_label)
        except exceptions.NoSuchToken:
            raise TokenError("token", f"no token labelled {token_label!r} in {module}") from None
        except exceptions.MultipleTokensReturned:
            raise TokenError("token", f"several tokens are labelled {token_label!r}") from None
        except PKCS11Error as exc:
            if pause is None:
                raise TokenError(
                    "token", f"the token {token_label!r} cannot be read ({_name(exc)})"
                ) from None
            time.sleep(pause)
    raise AssertionError("unreachable")  # the last pass returns or raises


def open_token_key(
    module: Path, token_label: str, key_label: str, pin: bytes, *, create: KeyType | None = None
) -> TokenKey:
    """Log in to the token and find the CA key `key_label`, or create it with `create`.

    Args:
        module: the PKCS#11 module (a shared library) to load.
        token_label: CKA_LABEL of the token.
        key_label: CKA_LABEL of the private key (and of its public key, if stored).
        pin: the user PIN.
        create: generate a new key pair of this type under `key_label` (refused if a key of
            that label exists: an existing CA key is never replaced).

    Raises:
        TokenError: naming what is wrong, and which setting.
    """
    library = _library(module)
    from pkcs11 import Attribute, ObjectClass, PKCS11Error, exceptions

    where = f"pkcs11:token={token_label};object={key_label}"
    shared_as = (str(module.resolve()), token_label, key_label, hashlib.sha256(pin).digest())
    if create is None:
        held = _join(shared_as)
        if held is not None:
            return held
    token = _find_token(library, module, token_label)
    try:
        session = _log_in(token, create is not None, pin)
    except (exceptions.PinIncorrect, exceptions.PinInvalid, exceptions.PinLenRange):
        raise TokenError("pin", f"the PIN of token {token_label!r} is wrong") from None
    except exceptions.PinLocked:
        raise TokenError("pin", f"the user PIN of token {token_label!r} is locked") from None
    except UnicodeDecodeError:
        raise TokenError("pin", "the PIN is not UTF-8 text") from None
    except PKCS11Error as exc:
        raise TokenError("token", f"cannot log in to {token_label!r} ({_name(exc)})") from None
    try:
        found = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: key_label}
            )
        )
        if create is not None:
            if found:
                raise TokenError("key", f"{where} exists already; it is never overwritten")
            return _generate(session, create, key_label, where)
        if not found:
            problem = f"no private key labelled {key_label!r} on {token_label!r}"
            raise TokenError("key", problem, missing_key=True)
        if len(found) > 1:
            raise TokenError("key", f"several private keys are labelled {key_label!r}")
        opened = _existing(session, found[0], key_label, where)
        with _LIBRARIES_LOCK:
            opened._shared_as = shared_as
            _OPEN[shared_as] = opened
        return opened
    except TokenError:
        session.close()
        raise
    except PKCS11Error as exc:
        session.close()
        raise TokenError("key", f"{where}: the token failed ({_name(exc)})") from None


def _join(shared_as: tuple[str, str, str, bytes]) -> TokenKey | None:
    """The open key of the same settings, if its session still signs; else None."""
    with _LIBRARIES_LOCK:
        held = _OPEN.get(shared_as)
        if held is None:
            return None
        held._holders += 1
    try:
        held.sign(_PROBE, hashes.SHA256())
    except CaError:
        # The token went away under it (unplugged, restarted): this load opens a new session,
        # which is how a reload recovers; the old one closes with its last holder.
        with _LIBRARIES_LOCK:
            if _OPEN.get(shared_as) is held:
                del _OPEN[shared_as]
        held.close()
        return None
    return held


def _log_in(token: pkcs11.Token, rw: bool, pin: bytes) -> pkcs11.Session:
    from pkcs11 import exceptions

    digest = hashlib.sha256(pin).digest()
    login = (token.slot.slot_id, token.serial)
    try:
        session = token.open(rw=rw, user_pin=pin.decode("utf-8"))
    except exceptions.UserAlreadyLoggedIn:
        # Login is per application, not per session (PKCS#11 v2.40 §5.6): a second CA key on
        # this token, or the state a reload opens next to the running one, joins the login an
        # earlier session made, but only with the PIN that made it, so a wrong PIN is still
        # refused while another session is open.
        known = _LOGINS.get(login)
        if known is None or not hmac.compare_digest(known, digest):
            raise exceptions.PinIncorrect() from None
        return token.open(rw=rw)
    _LOGINS[login] = digest
    return session


def _library(module: Path) -> p11_library:
    try:
        import pkcs11
    except ImportError:
        raise TokenError(
            "module", "python-pkcs11 is not installed (pip install 'python-est[pkcs11]')"
        ) from None
    if not module.is_file():
        raise TokenError("module", f"{module} does not exist")
    path = str(module.resolve())
    with _LIBRARIES_LOCK:
        try:
            library = pkcs11.lib(path)
            if _INITIALISED_BY.setdefault(path, os.getpid()) != os.getpid():
                # The parent's sessions and logins mean nothing in this process.
                _OPEN.clear()
                _LOGINS.clear()
                library.reinitialize()
                _INITIALISED_BY[path] = os.getpid()
        except pkcs11.PKCS11Error as exc:
            raise TokenError("module", f"{module} is not a usable PKCS#11 module ({exc})") from None
        return library


def _existing(session: pkcs11.Session, key: pkcs11.Object, label: str, where: str) -> TokenKey:
    from pkcs11 import Attribute, ObjectClass, PublicKey, SignMixin, exceptions

    if not isinstance(key, SignMixin):
        raise TokenError("key", f"{where} cannot sign")

    if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
        raise TokenError(
            "key", f"{where} is extractable; a CA key must be sensitive and not extractable"
        )
    try:
        public_object = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
    except exceptions.NoSuchKey:
        raise TokenError("key", f"{where} has no public key object of the same label") from None
    if not isinstance(public_object, PublicKey):
        raise TokenError("key", f"{where} has no public key object of the same label")
    public = _public_key(public_object)
    token_key = TokenKey(session, key, public, where)
    if not verify_signature(
        public, token_key.sign(_PROBE, hashes.SHA256()), _PROBE, hashes.SHA256()
    ):
        raise TokenError("key", f"{where} does not sign for the public key of the same label")
    return token_key


def _generate(session: pkcs11.Session, key_type: KeyType, label: str, where: str) -> TokenKey:
    from pkcs11 import Attribute, MechanismFlag, SignMixin
    from pkcs11 import KeyType as P11KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    key_id = secrets.token_bytes(16)
    # PKCS#11 v2.40 §4.9: a sensitive, unextractable key never leaves the token in any form.
    private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True}
    usage = MechanismFlag.SIGN | MechanismFlag.VERIFY
    if key_type.is_rsa:
        public_object, key = session.generate_keypair(
            P11KeyType.RSA,
            key_type.rsa_bits,
            id=key_id,
            label=label,
            store=True,
            capabilities=usage,
            private_template=private,
        )
    else:
        params = encode_named_curve_parameters(key_type.curve.name)
        domain = session.create_domain_parameters(
            P11KeyType.EC, {Attribute.EC_PARAMS: params}, local=True
        )
        public_object, key = domain.generate_keypair(
            id=key_id, label=label, store=True, capabilities=usage, private_template=private
        )
    if not isinstance(key, SignMixin):
        raise TokenError("key", f"the token made {where} without the sign capability")
    return TokenKey(session, key, _public_key(public_object), where)


def _public_key(public: pkcs11.PublicKey) -> IssuerPublicKey:
    from pkcs11 import Attribute
    from pkcs11 import KeyType as P11KeyType

    key: IssuerPublicKey
    if public.key_type == P11KeyType.RSA:
        key = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        ).public_key()
    elif public.key_type == P11KeyType.EC:
        key = _ec_public_key(bytes(public[Attribute.EC_PARAMS]), bytes(public[Attribute.EC_POINT]))
    else:
        raise TokenError(
            "key", f"CA keys of type {public.key_type.name} are not supported (use RSA or EC)"
        )
    reason = weak_key_reason(key)
    if reason is not None:
        raise TokenError("key", f"the CA key is unacceptable: {reason}")
    return key


def _ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    try:
        oid, _ = decoder.decode(params, asn1Spec=univ.ObjectIdentifier())
        curve = ec.get_curve_for_oid(x509.ObjectIdentifier(str(oid)))
    except (PyAsn1Error, LookupError):
        raise TokenError("key", "the EC key's curve is not a supported named curve") from None
    # CKA_EC_POINT is a DER OCTET STRING (v2.40 §2.3.3); some tokens return the bare point.
    try:
        wrapped, rest = decoder.decode(point, asn1Spec=univ.OctetString())
        if not rest:
            point = bytes(wrapped)
    except PyAsn1Error:
        pass
    return ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)


def _name(exc: Exception) -> str:
    return type(exc).__name__
