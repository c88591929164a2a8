"""What start-up derives once from each label's config (`LabelPlan`): the /csrattrs it serves, the
requirements a CSR must meet, the /serverkeygen key type and the values it prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from python_est import wire
from python_est.config import LabelConfig
from python_est.keys import KeyType
from python_est.service.enforce import CsrRequirements, csr_requirements, serverkeygen_key_type
from python_est.service.prescribed import (
    Prescription,
    csrattrs_items,
    parse_extensions,
    parse_subject,
)
from python_est.service.prescribed_check import filled_profile


@dataclass(frozen=True)
class LabelPlan:
    """What start-up derives once from a label's config."""

    attrs: wire.CsrAttrs
    requirements: CsrRequirements
    keygen_type: KeyType
    prescription: Prescription
    # The label as the service applies it: its profile fills in the prescribed values.
    label: LabelConfig


class LabelError(ValueError):
    """A label's CSR attribute settings cannot be served; `key` names the config key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_label(label: LabelConfig) -> None:
    """Check that the service can serve `label`, as `EstService` does at start-up.

    For the CLI, which reports the problem as a config error on the key `LabelError` names.

    Raises:
        LabelError: `csrattrs` does not parse or cannot be read as requirements (see
            `enforce`), or announces only key types /serverkeygen cannot generate; or
            `csrattrs_subject` / `csrattrs_extensions` cannot be read (see `prescribed`).
    """
    _derive(label)


def plan_label(label: LabelConfig) -> LabelPlan:
    # Derived once at start-up, so a bad spec stops the server instead of failing requests.
    try:
        return _derive(label)
    except LabelError as exc:
        raise LabelError(exc.key, f"CA label {label.name!r}: {exc.key}: {exc}") from None


def _derive(label: LabelConfig) -> LabelPlan:
    try:
        attrs = wire.parse_csrattrs_spec(label.csrattrs)
        if label.require_pop:
            # §3.5: a server that requires linking MUST list challengePassword (R48).
            attrs = wire.with_challenge_password(attrs)
        requirements = csr_requirements(attrs)
        keygen_type = label.serverkeygen_key_type
        if label.serverkeygen:
            keygen_type = serverkeygen_key_type(requirements, keygen_type)
    except ValueError as exc:
        raise LabelError("csrattrs", str(exc)) from None
    try:
        subject = parse_subject(label.csrattrs_subject)
    except ValueError as exc:
        raise LabelError("csrattrs_subject", str(exc)) from None
    try:
        prescription = Prescription(subject, parse_extensions(label.csrattrs_extensions))
    except ValueError as exc:
        raise LabelError("csrattrs_extensions", str(exc)) from None
    try:
        served = csrattrs_items(attrs, prescription, requirements)
    except ValueError as exc:
        raise LabelError("csrattrs_extensions", str(exc)) from None
    effective = replace(label, profile=filled_profile(label.profile, prescription))
    return LabelPlan(served, requirements, keygen_type, prescription, effective)
