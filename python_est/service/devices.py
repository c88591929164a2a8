"""Pre-registered devices in the enrollment path (issue 18 item 2; `python_est.devices`).

A request whose HTTP Basic user names a device registered on the request's label is a code
login: the code is checked against the registration (counted by the same lockouts as
passwords), then a used or expired code is refused with 403, and the CSR must ask for exactly
the registered subject and subjectAltNames (compared as `policy.subject` compares names). The
user store is not consulted for it, and `password_subjects` does not apply: the registration is
the allow-list.

With `require_registration = yes`, any other credential must also match an unused registration
of the label with the CSR's exact names; that registration is used up by the issuance.

The code is used up only when a certificate is issued: `once` claims it right before signing
(one conditional UPDATE, so of two racing requests exactly one signs), records the serial after,
and gives the claim back if signing failed. A held request (manual approval, a webhook's hold)
keeps its code usable until the approved retry is issued.

A code is also a TLS-SRP password (`state.device_srp` gives the handshake its verifier): a
`peer.srp_user` that is not a user of the user store and has an unused SRP registration is a
device (its code used or not: a keep-alive connection outlives the use). It counts on its own
label only (the handshake names none): there it is a code login like the Basic one, a used or
expired code a 403, anywhere else a 403. The ordinary `Authenticator` counts an SRP name only
when it is a user of the user store, so never a device's.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from python_est.config import AuthMethod, AuthRequirement, LabelConfig
from python_est.devices import DeviceRegistry, Registration
from python_est.errors import AuthenticationRequired, Forbidden
from python_est.ledger import serial_hex
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import (
    Authentication,
    PeerIdentity,
    parse_basic_authorization,
    satisfied_methods,
)
from python_est.policy.subject import names_equal, san_key, sans_of
from python_est.ratelimit import FailureCounter
from python_est.service.auth import Authenticator
from python_est.users import UserDirectory

log = logging.getLogger("python_est.service")

Fulfil = Callable[[x509.CertificateSigningRequest], tuple[x509.Certificate, HttpResponse]]
_BASIC = frozenset({AuthMethod.BASIC})
_SRP = frozenset({AuthMethod.SRP})


class DeviceGate:
    """Code logins and registration matching for the enrollment operations.

    Args:
        registry: the registrations (None: no device is registered anywhere).
        users: the user store (None: none), whose names are never devices over TLS-SRP.
        limiter: the password-failure counters (a wrong code counts like a wrong password).
        realm: the HTTP Basic realm of challenges.
        clock: the current time.
    """

    def __init__(
        self,
        registry: DeviceRegistry | None,
        users: UserDirectory | None,
        limiter: FailureCounter,
        realm: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._users = users
        self._limiter = limiter
        self._realm = realm
        self._clock = clock

    def authenticate(
        self,
        request: HttpRequest,
        peer: PeerIdentity,
        label: LabelConfig,
        requirement: AuthRequirement,
        others: Authenticator,
    ) -> tuple[Authentication, Registration | None]:
        """Who asked: a device by its code, or anyone else through `others`.

        Raises:
            AuthenticationRequired: a wrong code or password (401 with the challenge).
            TooManyRequests: the name or the address is locked out.
            Forbidden: the code was used already or has expired.
        """
        login = self._srp_login(peer, label, requirement) or self._login(
            request, peer, label, requirement
        )
        return login or (others.authenticate(request, peer, requirement), None)

    def _is_device_login(self, srp_user: str) -> bool:
        """Whether a TLS-SRP login by `srp_user` used a device's code (module docstring)."""
        # As `state.device_srp` chose the verifier: a user of the store first.
        if self._registry is None or not self._registry.srp_labels(srp_user, unused=False):
            return False
        return self._users is None or not self._users.exists(srp_user)

    def _srp_login(
        self, peer: PeerIdentity, label: LabelConfig, requirement: AuthRequirement
    ) -> tuple[Authentication, Registration] | None:
        name = peer.srp_user
        if name is None or self._registry is None or not self._is_device_login(name):
            return None
        registration = self._registry.get(label.name, name)
        if registration is None or not registration.srp:
            raise Forbidden(f"device {name!r} is not registered on this CA label")
        if satisfied_methods(requirement, _SRP) is None:
            return None  # TLS-SRP alone cannot authenticate here; others ignores the name
        self._check_unused(registration)
        auth = Authentication(methods=_SRP, srp_user=name, device=name)
        return auth, registration

    def _check_unused(self, registration: Registration) -> None:
        name = registration.name
        if registration.used_at is not None:
            raise Forbidden(f"the enrollment code of device {name!r} was used already")
        if not registration.usable(self._clock()):
            assert registration.expires_at is not None
            raise Forbidden(
                f"the enrollment code of device {name!r} expired at "
                f"{registration.expires_at.isoformat(timespec='seconds')}"
            )

    def _login(
        self,
        request: HttpRequest,
        peer: PeerIdentity,
        label: LabelConfig,
        requirement: AuthRequirement,
    ) -> tuple[Authentication, Registration] | None:
        if self._registry is None or satisfied_methods(requirement, _BASIC) is None:
            return None  # Basic alone cannot authenticate here, so neither can a code
        try:
            credentials = parse_basic_authorization(request.header("authorization"))
        except ValueError:
            return None  # the ordinary authentication answers it
        if credentials is None or credentials.is_empty:
            return None
        registration = self._registry.get(label.name, credentials.user)
        if registration is None:
            return None
        name = credentials.user
        self._limiter.check(name, peer.address)
        if not self._registry.check_code(label.name, name, credentials.password):
            self._limiter.record_failure(name, peer.address)
            log.info("enrollment code rejected for device %r", name)
            raise AuthenticationRequired("invalid user name or password", basic_realm=self._realm)
        self._limiter.record_success(name, peer.address)
        self._check_unused(registration)
        auth = Authentication(methods=_BASIC, basic_user=name, device=name)
        return auth, registration

    def bind(
        self,
        csr: x509.CertificateSigningRequest,
        label: LabelConfig,
        registration: Registration | None,
    ) -> Registration | None:
        """The registration this enrollment uses up (see the module docstring), or None.

        Raises:
            Forbidden: the CSR's names are not the registered ones, or the label requires a
                registration and no unused one matches.
        """
        if self._registry is None:
            if label.require_registration:
                raise Forbidden("this CA label issues only to pre-registered devices")
            return None
        if registration is not None:
            if not _matches(csr, registration):
                raise Forbidden(
                    f"device {registration.name!r} is registered for {_shown(registration)}; "
                    "the CSR must ask for exactly that"
                )
            return registration
        if not label.require_registration:
            return None
        subject = csr.subject.rfc4514_string()
        for candidate in self._registry.find_usable(label.name, subject, self._clock()):
            if _matches(csr, candidate):
                return candidate
        raise Forbidden(
            "this CA label issues only to pre-registered devices, and no unused registration "
            "has the CSR's subject and subjectAltNames"
        )

    def once(self, registration: Registration | None, fulfil: Fulfil) -> Fulfil:
        """`fulfil` under a claim on the registration, which it uses up (module docstring);
        `fulfil` itself without a registration."""
        registry = self._registry
        if registration is None or registry is None:
            return fulfil

        def fulfil_once(
            approved: x509.CertificateSigningRequest,
        ) -> tuple[x509.Certificate, HttpResponse]:
            label, name = registration.label, registration.name
            token = secrets.token_hex(8)
            if not registry.claim(label, name, token, self._clock()):
                raise Forbidden(
                    f"the enrollment code of device {name!r} was used already or has expired"
                )
            try:
                cert, response = fulfil(approved)
            except Exception:
                registry.release(label, name, token)
                raise
            registry.mark_used(label, name, token, serial_hex(cert.serial_number), self._clock())
            log.info("device %r enrolled on label %r: code used up", name, label)
            return cert, response

        return fulfil_once


def _matches(csr: x509.CertificateSigningRequest, registration: Registration) -> bool:
    if not names_equal(csr.subject, x509.Name.from_rfc4514_string(registration.subject)):
        return False
    wanted = {san_key(_general_name(text)) for text in registration.sans}
    return {san_key(name) for name in sans_of(csr)} == wanted


def _general_name(text: str) -> x509.GeneralName:
    # The forms `devices.parse_san` stores.
    kind, _, value = text.partition(":")
    if kind == "DNS":
        return x509.DNSName(value)
    if kind == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    if kind == "email":
        return x509.RFC822Name(value)
    return x509.UniformResourceIdentifier(value)


def _shown(registration: Registration) -> str:
    sans = f" with {', '.join(registration.sans)}" if registration.sans else ", no subjectAltName"
    return f"{registration.subject!r}{sans}"
