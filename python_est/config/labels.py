"""The CA label sections: `[profile]` (the unlabelled paths, and every label's defaults) and each
`[label:NAME]`, read and checked against each other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from python_est.config.backend import check_backend
from python_est.config.convert import to_list, to_positive_int
from python_est.config.idevid import parse_template
from python_est.config.keys import (
    LABEL_KEYS,
    LABEL_PATH_KEYS,
    LABEL_PATH_LIST_KEYS,
    LABEL_PREFIX,
    LABEL_SECRET_KEYS,
    PROFILE_FIELD,
    PROFILE_KEYS,
)
from python_est.config.legacy import legacy_handler
from python_est.config.model import LabelConfig
from python_est.config.passphrase import to_passphrase
from python_est.config.reader import Reader, resolve
from python_est.oids import ID_KP_CMC_RA


def read_labels(reader: Reader) -> dict[str, LabelConfig]:
    """Every label by name ("" for `[profile]`, whose keys are the defaults of each label).

    Raises:
        ConfigError: a key's value is wrong.
    """
    default = _label_config(reader, "profile", "", LabelConfig())
    legacy_days = reader.get("CAhandler", "cert_validity_days", None, to_positive_int)
    if legacy_days is not None and not reader.parser.has_option("profile", "validity_days"):
        default = replace(default, profile=replace(default.profile, validity_days=legacy_days))
    handler_file, _ = legacy_handler(reader)
    if handler_file is not None and not reader.parser.has_option("profile", "backend"):
        # The older python-est (an est_proxy fork) ran this file: it still does.
        default = replace(default, backend="handler", handler_file=handler_file)
    labels = {"": default}
    for section in reader.parser.sections():
        if section.startswith(LABEL_PREFIX):
            name = section[len(LABEL_PREFIX) :]
            labels[name] = _label_config(reader, section, name, default)
    return labels


def check_labels(reader: Reader, labels: dict[str, LabelConfig]) -> list[str]:
    """Refuse `reenroll_from` naming no label; warn where cmcRA overrides `approval = auto`."""
    warnings = []
    for name, label in labels.items():
        section = f"{LABEL_PREFIX}{name}" if name else "profile"
        for source in label.reenroll_from:
            if source not in labels:
                raise reader.error(
                    section, "reenroll_from", f'no CA label {source!r} ("" names the default)'
                )
        if ID_KP_CMC_RA in label.profile.extended_key_usage and label.approval == "auto":
            warnings.append(
                f"{reader.source}: [{section}] extended_key_usage grants cmcRA: every request "
                "is held for manual approval although approval = auto"
            )
        _check_webhooks(reader, section, label)
        _check_idevid(reader, section, label)
        labels[name] = check_backend(reader, section, label)
    return warnings


def _check_webhooks(reader: Reader, section: str, label: LabelConfig) -> None:
    # The webhook's own trust anchors only: the system store would let any public CA vouch
    # for an internal authorization service.
    urls = (label.authorize_url, label.notify_url)
    if any(url.startswith("https:") for url in urls) and label.webhook_ca_file is None:
        raise reader.error(
            section, "webhook_ca_file", "an https:// webhook needs the CA bundle that signs it"
        )
    if (label.webhook_client_cert is None) != (label.webhook_client_key is None):
        raise reader.error(
            section, "webhook_client_key", "webhook_client_cert and webhook_client_key go together"
        )


def _check_idevid(reader: Reader, section: str, label: LabelConfig) -> None:
    if label.manufacturer_crls and not label.manufacturer_cas:
        raise reader.error(section, "manufacturer_crls", "needs manufacturer_cas")
    if label.idevid_subject == "template":
        try:
            parse_template(label.idevid_template)
        except ValueError as exc:
            raise reader.error(section, "idevid_template", str(exc)) from None


def _label_config(reader: Reader, section: str, name: str, base: LabelConfig) -> LabelConfig:
    profile_changes: dict[str, object] = {"name": name}
    for key, convert in PROFILE_KEYS.items():
        value = reader.get(section, key, None, convert)
        if value is not None:
            profile_changes[PROFILE_FIELD[key]] = value
    label_changes: dict[str, object] = {"name": name}
    for key, convert in LABEL_KEYS.items():
        value = reader.get(section, key, None, convert)
        if value is not None:
            label_changes[key] = value
    for key in LABEL_PATH_KEYS:
        path = reader.path(section, key, None, reader.base)
        if path is not None:
            label_changes[key] = path
    for key in LABEL_PATH_LIST_KEYS:
        items = reader.get(section, key, None, to_list)
        if items is not None:
            folder = reader.base
            label_changes[key] = tuple(resolve(Path(i).expanduser(), folder) for i in items)
    for key in LABEL_SECRET_KEYS:
        secret = reader.get(
            section, key, None, lambda text: to_passphrase(text, reader.base) if text else None
        )
        if secret is not None:
            label_changes[key] = replace(secret, section=section, key=key)
    profile = replace(base.profile, **profile_changes)  # type: ignore[arg-type]
    return replace(base, profile=profile, **label_changes)  # type: ignore[arg-type]
