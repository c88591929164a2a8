"""Pure authentication and authorization decisions about one request."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from python_est.config import AuthMethod, AuthRequirement
from python_est.errors import Forbidden, InvalidCsr
from python_est.policy.identity import ClientCertificate, TlsInfo
from python_est.policy.subject import (
    names_equal,
    password_refusal,
    quote,
    same_names,
    san_key,
    sans_of,
)
from python_est.profile import IssuanceProfile

# --- Authentication and authorization decisions (RFC 7030 §3.2.3, §3.3, §3.5, §3.7, §4.2.2) ---
#
# Who may ask for which names:
# - An RA certificate (id-kp-cmcRA, RFC 7030 §3.7) may request any subject the profile allows.
# - A password user (TLS-SRP or HTTP Basic) with `password_subjects = own` may only obtain names
#   from `users.allowed_names(user)`: at least one subject CN, every subject CN and every
#   subjectAltName value (DNS, email, URI, IP as text); other subject attribute types only when
#   the profile lets requesters choose them (`subject.password_refusal`). With `any` the profile
#   decides.
# - A plain client certificate may /simpleenroll only for its own identity: the same Subject
#   and subjectAltNames that its certificate also holds. Otherwise any device could obtain a
#   certificate naming another device.
# One entitled identity is enough. Only identities whose method belongs to a satisfied
# alternative of the operation's auth requirement count. Names compare exactly, the same way
# everywhere (`python_est.policy.subject`).


@dataclass(frozen=True)
class BasicCredentials:
    """HTTP Basic credentials (RFC 7617) as sent; the password never shows in a repr."""

    user: str
    password: str = field(repr=False)

    @property
    def is_empty(self) -> bool:
        """Empty user and password: what libest's estclient sends when it has none (`Og==`)."""
        return self.user == "" and self.password == ""


def parse_basic_authorization(value: str | None) -> BasicCredentials | None:
    """Parse an `Authorization` header value.

    The scheme is case-insensitive; the decoded text is split at the first ':' only, and an
    empty user name is allowed (RFC 7030 §3.2.3).

    Returns:
        The credentials, or None when the header is absent or uses another scheme.

    Raises:
        ValueError: a Basic header whose token is not base64 of "user:password".
    """
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the Basic credentials are not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, separator, password = text.partition(":")
    if not separator:
        raise ValueError("the Basic credentials lack the ':' separator")
    return BasicCredentials(user=user, password=password)


def satisfied_methods(
    requirement: AuthRequirement, present: frozenset[AuthMethod]
) -> frozenset[AuthMethod] | None:
    """The methods of every alternative of `requirement` that `present` fulfils, None if none."""
    satisfied = [alternative for alternative in requirement if alternative <= present]
    if not satisfied:
        return None
    return frozenset().union(*satisfied)


_METHOD_ORDER = (AuthMethod.CERT, AuthMethod.SRP, AuthMethod.BASIC)


@dataclass(frozen=True)
class Authentication:
    """The identities that authenticated one request.

    Attributes:
        methods: methods of the satisfied alternatives; only their identities count.
        certificate: the validated client certificate, when CERT counts.
        srp_user: the TLS-SRP user, when SRP counts.
        basic_user: the HTTP Basic user, when BASIC counts.
        device: the pre-registered device whose one-time code was the Basic password.
    """

    methods: frozenset[AuthMethod]
    certificate: ClientCertificate | None = None
    srp_user: str | None = None
    basic_user: str | None = None
    device: str | None = None

    @property
    def method_text(self) -> str:
        """The methods as the config spells a combination ("cert+basic")."""
        return "+".join(m.value for m in _METHOD_ORDER if m in self.methods)

    @property
    def password_users(self) -> tuple[str, ...]:
        users = (self.srp_user, self.basic_user)
        return tuple(dict.fromkeys(u for u in users if u is not None))

    @property
    def is_ra(self) -> bool:
        return self.certificate is not None and self.certificate.is_ra

    @property
    def requester(self) -> str:
        """Who asked, for the ledger and the audit log: user names and/or certificate subject."""
        parts = list(self.password_users)
        if self.certificate is not None:
            parts.append(self.certificate.leaf.subject.rfc4514_string())
        return " + ".join(parts) if parts else "anonymous"


def authorize_enrollment(
    csr: x509.CertificateSigningRequest,
    auth: Authentication,
    *,
    password_subjects: str,
    allowed_names: Mapping[str, Sequence[str]],
    profile: IssuanceProfile,
) -> None:
    """Decide whether `auth` entitles the requester to the names in `csr` (RFC 7030 §3.7, §4.2).

    Args:
        csr: the request (its Subject and subjectAltNames are judged).
        auth: who authenticated.
        password_subjects: "own" or "any" (see the section comment above).
        allowed_names: `users.allowed_names(user)` for each of `auth.password_users`.
        profile: the label's profile (which subject attributes password users may choose).

    Raises:
        Forbidden: no identity is entitled; the detail names the refused field.
        InvalidCsr: the CSR's extensions cannot be read.
    """
    if auth.is_ra:
        return
    refusals: list[str] = []
    for user in auth.password_users:
        if password_subjects == "any":
            return
        refusal = password_refusal(csr, user, allowed_names.get(user, ()), profile)
        if refusal is None:
            return
        refusals.append(refusal)
    if auth.certificate is not None:
        refusal = _certificate_refusal(csr, auth.certificate.leaf)
        if refusal is None:
            return
        refusals.append(refusal)
    raise Forbidden("; ".join(refusals) or "no authenticated identity may request certificates")


def check_reenrollment(csr: x509.CertificateSigningRequest, current: x509.Certificate) -> None:
    """RFC 7030 §4.2.2: the CSR's Subject and subjectAltName must equal the renewed certificate's.

    The key may change (rekey) or stay (renewal); both are allowed.

    Raises:
        Forbidden: Subject or subjectAltName differ.
        InvalidCsr: the CSR's extensions cannot be read.
    """
    if not names_equal(csr.subject, current.subject):
        raise Forbidden(
            f"reenrollment subject {quote(csr.subject.rfc4514_string())} differs from the "
            f"certificate being renewed ({quote(current.subject.rfc4514_string())}) "
            "(RFC 7030 §4.2.2)"
        )
    if not same_names(csr, current):
        raise Forbidden(
            "reenrollment subjectAltName differs from the certificate being renewed "
            "(RFC 7030 §4.2.2)"
        )


def check_linking(
    challenge_password: str | None, tls: TlsInfo, *, required: bool, is_ra: bool
) -> None:
    """Check the tls-unique proof-of-possession linking of RFC 7030 §3.5.

    The challengePassword must equal base64(tls-unique) of this connection. When linking is
    not required, only a value shaped like a tls-unique (base64 of as many bytes) is checked,
    so a challengePassword used for another purpose still passes. RA clients are exempt
    (RFC 7030 §3.7). tls-unique is undefined for TLS 1.3 (RFC 9266), so required linking fails
    there with a clear reason rather than comparing an arbitrary value.

    Required linking also needs the extended master secret (RFC 7627): without it a
    man-in-the-middle can give its connection to us the same tls-unique as the victim's
    connection to it (the triple-handshake attack), and the victim's CSR would link.

    Raises:
        InvalidCsr: linking required but absent or impossible, or a tls-unique mismatch.
    """
    if is_ra:
        return
    expected = tls.tls_unique
    if required and expected is not None and not tls.extended_master_secret:
        raise InvalidCsr(
            "this CA requires proof-of-possession linking (RFC 7030 §3.5), which needs the "
            "TLS extended master secret (RFC 7627); this connection did not negotiate it: "
            "reconnect with a client that offers extended_master_secret"
        )
    if required and expected is None:
        # Said before anything else: a TLS 1.3 client cannot comply by changing its CSR.
        why = (
            "tls-unique is undefined for TLS 1.3 (RFC 9266)"
            if tls.version == "TLS1.3"
            else "this connection has no tls-unique"
        )
        raise InvalidCsr(
            "this CA requires proof-of-possession linking (RFC 7030 §3.5), which needs TLS 1.2: "
            f"{why}; reconnect with TLS 1.2"
        )
    if challenge_password is None:
        if required:
            raise InvalidCsr(
                "this CA requires proof-of-possession linking: put base64(tls-unique) in the "
                "CSR challengePassword (RFC 7030 §3.5)"
            )
        return
    if expected is None:
        return
    if not required and not _looks_like(challenge_password, len(expected)):
        return
    wanted = base64.b64encode(expected)
    if not hmac.compare_digest(challenge_password.strip().encode("utf-8", "replace"), wanted):
        raise InvalidCsr(
            "the CSR challengePassword does not match this TLS session's tls-unique "
            "(proof-of-possession linking, RFC 7030 §3.5)"
        )


def _looks_like(value: str, size: int) -> bool:
    try:
        return len(base64.b64decode(value.strip(), validate=True)) == size
    except (binascii.Error, ValueError):
        return False


def _certificate_refusal(csr: x509.CertificateSigningRequest, cert: x509.Certificate) -> str | None:
    if not names_equal(csr.subject, cert.subject):
        return (
            f"subject {quote(csr.subject.rfc4514_string())} differs from the client "
            "certificate's subject"
        )
    held = {san_key(name) for name in sans_of(cert)}
    for name in sans_of(csr):
        if san_key(name) not in held:
            return f"subjectAltName {quote(str(name.value))} is not in the client certificate"
    return None
