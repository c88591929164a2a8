"""What a label's CSR attributes demand of a CSR (RFC 7030 §4.5.2, RFC 8951 §4), and the check.

`/csrattrs` tells clients what to put in their requests; with `enforce_csrattrs = yes` a CSR that
ignores it gets 400 naming every shortfall (RFC 7030 §4.5.2 lets the CA reject such requests).
Each CsrAttrs item is read as follows:

- `challengePassword` (bare OID or attribute): the CSR carries a challengePassword attribute.
  Its value is judged by the linking check (RFC 7030 §3.5), not here; RA clients, which are
  exempt from linking (§3.7), need not carry one.
- A key algorithm (RFC 8951 §4: `Attribute{id-ecPublicKey, {curve}}`, a bare key algorithm
  OID, or a bare curve OID): the CSR key must be of that algorithm and, when curves are listed,
  on one of them. A bare `id-ecPublicKey` accepts any allowed curve; `rsaEncryption` accepts any
  RSA key the weak-key rule allows (config text cannot carry a size; /serverkeygen takes its RSA
  size from `serverkeygen_key_type`). Several key items accept the union. Ed25519/Ed448 count
  as key algorithms too.
- Any other signature algorithm OID (`ecdsa-with-SHA384`, ...): the CSR is signed with it (one
  of them, when several are listed).
- `extensionRequest=X+Y`: the CSR's extensionRequest holds extensions X and Y. A bare
  `extensionRequest` OID only needs the attribute.
- Any other OID, bare or as an attribute type: the CSR has an attribute of that type, or its
  subject has an attribute of that type. Attribute values are hints and are not compared.

On /serverkeygen the CSR's key and signature are ignored (RFC 7030 §4.4.1), so only the
attribute and extension rules apply there; the generated key follows the key rule instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import SignatureAlgorithmOID

from python_est import oids, wire
from python_est.errors import InvalidCsr
from python_est.keys import ALLOWED_CURVES, MAX_RSA_BITS, MIN_RSA_BITS, KeyType, key_type_of

_RSA = oids.RSA_ENCRYPTION.dotted_string
_EC = oids.ID_EC_PUBLIC_KEY.dotted_string
_ED25519 = "1.3.101.112"
_ED448 = "1.3.101.113"
_KEY_ALGORITHMS = {_RSA: "rsa", _EC: "ec", _ED25519: "ed25519", _ED448: "ed448"}
_SIGNATURE_ALGORITHMS = frozenset(
    value.dotted_string
    for name, value in vars(SignatureAlgorithmOID).items()
    if not name.startswith("_") and isinstance(value, x509.ObjectIdentifier)
) - frozenset(_KEY_ALGORITHMS)
_CHALLENGE = oids.CHALLENGE_PASSWORD.dotted_string
_EXTENSION_REQUEST = oids.EXTENSION_REQUEST.dotted_string
_NAMES = {oid.dotted_string: name for name, oid in oids.NAMED_OIDS.items()}


@dataclass(frozen=True)
class KeyChoice:
    """One acceptable kind of key: an algorithm ("rsa", "ec", "ed25519", "ed448") and, for EC,
    the curve name ("secp384r1"), for RSA the modulus size; None accepts every allowed one."""

    algorithm: str
    curve: str | None = None
    bits: int | None = None

    def accepts(self, key: CertificatePublicKeyTypes) -> bool:
        """True when `key` is of this kind."""
        kind = key_type_of(key)
        if self.algorithm == "ec":
            return kind.startswith("ec-") and (self.curve is None or kind == f"ec-{self.curve}")
        if self.algorithm == "rsa":
            return kind.startswith("rsa-") and (self.bits is None or kind == f"rsa-{self.bits}")
        return kind == self.algorithm

    def accepts_type(self, key_type: KeyType) -> bool:
        """True when keys generated as `key_type` are of this kind."""
        if key_type.is_rsa:
            return self.algorithm == "rsa" and self.bits in (None, key_type.rsa_bits)
        return self.algorithm == "ec" and self.curve in (None, key_type.curve.name)

    def generatable(self) -> KeyType | None:
        """The key type /serverkeygen makes for this choice (RSA: 2048 bits unless sized), or
        None."""
        for key_type in (KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096):
            if self.accepts_type(key_type):
                return key_type
        for key_type in (KeyType.EC_P256, KeyType.EC_P384):
            if self.accepts_type(key_type):
                return key_type
        return None

    @property
    def text(self) -> str:
        if self.bits:
            return f"rsa-{self.bits}"
        return f"ec-{self.curve}" if self.curve else self.algorithm


@dataclass(frozen=True)
class CsrRequirements:
    """The demands of one label's CsrAttrs, read as the module comment describes.

    Attributes:
        challenge_password: a challengePassword attribute must be present.
        keys: acceptable keys; empty accepts any key.
        signature_algorithms: acceptable CSR signature algorithms (dotted); empty accepts any.
        extensions: extension OIDs the CSR's extensionRequest must hold.
        attributes: OIDs each needed as a CSR attribute or a subject attribute.
    """

    challenge_password: bool = False
    keys: tuple[KeyChoice, ...] = ()
    signature_algorithms: frozenset[str] = frozenset()
    extensions: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()


def csr_requirements(attrs: wire.CsrAttrs) -> CsrRequirements:
    """Read CsrAttrs items as requirements.

    Raises:
        ValueError: an item that cannot be a requirement (a key attribute with an unknown or
            disallowed curve, rsaEncryption with values, extensionRequest with non-OID values).
    """
    challenge = False
    keys: list[KeyChoice] = []
    signatures: set[str] = set()
    extensions: list[str] = []
    attributes: list[str] = []
    for item in attrs:
        oid = item if isinstance(item, str) else item.oid
        values = () if isinstance(item, str) else item.values
        if oid == _CHALLENGE:
            challenge = True
        elif oid in _KEY_ALGORITHMS:
            keys.extend(_key_choices(oid, values))
        elif not values and _curve_name(oid) is not None:
            # A bare curve OID is not the RFC 8951 form, but its meaning is plain.
            keys.extend(_key_choices(_EC, (oid,)))
        elif oid in _SIGNATURE_ALGORITHMS and not values:
            signatures.add(oid)
        elif oid == _EXTENSION_REQUEST and values:
            for value in values:
                if not isinstance(value, str):
                    raise ValueError("extensionRequest values must be extension OIDs")
                extensions.append(value)
        else:
            attributes.append(oid)
    return CsrRequirements(
        challenge_password=challenge,
        keys=tuple(dict.fromkeys(keys)),
        signature_algorithms=frozenset(signatures),
        extensions=tuple(dict.fromkeys(extensions)),
        attributes=tuple(dict.fromkeys(attributes)),
    )


def _key_choices(oid: str, values: tuple[wire.CsrAttrValue, ...]) -> list[KeyChoice]:
    algorithm = _KEY_ALGORITHMS[oid]
    if not values:
        return [KeyChoice(algorithm)]
    if algorithm == "rsa":
        # RFC 9908 §4 (its 4096-bit example): rsaEncryption with the modulus size as INTEGER.
        return [KeyChoice("rsa", bits=_rsa_bits(value)) for value in values]
    if algorithm != "ec":
        raise ValueError(f"{describe_oid(oid)} takes no values in CSR attributes")
    choices = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError("id-ecPublicKey values must be curve OIDs")
        curve = _curve_name(value)
        if curve is None:
            raise ValueError(f"unknown elliptic curve {describe_oid(value)}")
        if curve not in ALLOWED_CURVES:
            raise ValueError(f"elliptic curve {curve} is not allowed")
        choices.append(KeyChoice("ec", curve))
    return choices


def _rsa_bits(value: wire.CsrAttrValue) -> int:
    bits = wire.decode_integer(value) if isinstance(value, bytes) else None
    if bits is None or not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise ValueError(
            f"rsaEncryption takes an RSA size in bits ({MIN_RSA_BITS} to {MAX_RSA_BITS})"
        )
    return bits


def _curve_name(dotted: str) -> str | None:
    try:
        return ec.get_curve_for_oid(x509.ObjectIdentifier(dotted))().name
    except LookupError:
        return None


def check_csr(
    requirements: CsrRequirements,
    csr: x509.CertificateSigningRequest,
    *,
    client_key: bool,
    is_ra: bool,
) -> None:
    """Refuse `csr` when it misses any requirement, naming every shortfall.

    Args:
        requirements: from `csr_requirements`.
        csr: the request.
        client_key: the CSR's key and signature matter (False on /serverkeygen, §4.4.1).
        is_ra: the requester is an RA, exempt from the challengePassword requirement (§3.7).

    Raises:
        InvalidCsr: 400, listing what is missing or wrong.
    """
    problems = csr_problems(requirements, csr, client_key=client_key, is_ra=is_ra)
    if problems:
        raise InvalidCsr(
            "the CSR does not meet this CA's CSR attributes (see /csrattrs, RFC 7030 §4.5.2): "
            + "; ".join(problems)
        )


def csr_problems(
    requirements: CsrRequirements,
    csr: x509.CertificateSigningRequest,
    *,
    client_key: bool,
    is_ra: bool,
) -> list[str]:
    """What `csr` lacks, one phrase each (see `check_csr`); empty when it complies."""
    try:
        present = {attribute.oid.dotted_string for attribute in csr.attributes}
        requested = {extension.oid.dotted_string for extension in csr.extensions}
    except (ValueError, x509.DuplicateExtension):
        raise InvalidCsr("malformed CSR attributes") from None
    problems = []
    if requirements.challenge_password and not is_ra and _CHALLENGE not in present:
        problems.append(f"missing attribute {describe_oid(_CHALLENGE)}")
    if client_key and requirements.keys:
        try:
            key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidCsr("CSR key algorithm is not supported") from None
        if not any(choice.accepts(key) for choice in requirements.keys):
            wanted = " or ".join(choice.text for choice in requirements.keys)
            problems.append(f"key must be {wanted}, not {key_type_of(key)}")
    if client_key and requirements.signature_algorithms:
        signed_with = csr.signature_algorithm_oid.dotted_string
        if signed_with not in requirements.signature_algorithms:
            wanted = " or ".join(describe_oid(o) for o in sorted(requirements.signature_algorithms))
            problems.append(
                f"signature algorithm must be {wanted}, not {describe_oid(signed_with)}"
            )
    for oid in requirements.extensions:
        if oid not in requested:
            problems.append(f"missing extension {describe_oid(oid)} in the extensionRequest")
    for oid in requirements.attributes:
        in_subject = csr.subject.get_attributes_for_oid(x509.ObjectIdentifier(oid))
        if oid not in present and not in_subject:
            problems.append(f"missing attribute {describe_oid(oid)}")
    return problems


def serverkeygen_key_type(requirements: CsrRequirements, configured: KeyType) -> KeyType:
    """The key type /serverkeygen generates for a label.

    The configured `serverkeygen_key_type` when no key is announced or it fits the announcement;
    otherwise the first announced kind that can be generated (RSA: 2048 bits).

    Raises:
        ValueError: the label announces only keys that cannot be generated (Ed25519, P-521).
    """
    if not requirements.keys or any(c.accepts_type(configured) for c in requirements.keys):
        return configured
    for choice in requirements.keys:
        generated = choice.generatable()
        if generated is not None:
            return generated
    wanted = " or ".join(choice.text for choice in requirements.keys)
    raise ValueError(f"/serverkeygen cannot generate the announced key type ({wanted})")


def describe_oid(dotted: str) -> str:
    """`name (dotted)` for OIDs we have a name for, else the dotted form."""
    name = _NAMES.get(dotted)
    return f"{name} ({dotted})" if name else dotted
