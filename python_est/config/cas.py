"""Several CAs: `[ca:NAME]` sections, read with the keys of `[ca]`, and `[label:X] ca = NAME`.

A `[ca:NAME]` section takes exactly the keys of `[ca]`, read by the same function (`load._ca`)
through a `CaSection` view that shows it `[ca:NAME]` under the name `[ca]`, so every key `[ca]`
gains (a key location, a passphrase source) works for every CA without a second reader. The
older products' `[CAhandler]` keys belong to `[ca]` only: the view hides every other section.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from python_est.config.keys import CA_PREFIX, LABEL_PREFIX
from python_est.config.model import DEFAULT_CA, CaConfig, CrlConfig, LabelConfig
from python_est.config.reader import Reader
from python_est.errors import ConfigError

# A CA name is a folder under the state directory (`state/cas/NAME/`), a CRL file name and a
# URL path segment: a short, plain token keeps it safe as all three.
_CA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_GENERATION = re.compile(r"-g[0-9]+$")


def ca_name_problem(name: str) -> str | None:
    """Why `name` cannot name a `[ca:NAME]`, or None when it can."""
    if not _CA_NAME.fullmatch(name):
        return f"CA name {name!r}: 1 to 63 letters, digits, '-' or '_', not starting with - or _"
    if name == DEFAULT_CA:
        return f"CA name {name!r} is reserved for [ca]"
    if _GENERATION.search(name):
        return f"CA name {name!r}: a name ending in -gN is the CRL of a rolled-over root"
    return None


class CaSection(Reader):
    """`reader` seen from `[ca:NAME]`: its `[ca]` is that section, and no other section exists.

    Values consumed are marked on `reader` (its `used` set is shared), and errors name the real
    section.
    """

    def __init__(self, reader: Reader, name: str) -> None:
        super().__init__(reader.parser, reader.source, reader.base)
        self.used = reader.used
        self.section = CA_PREFIX + name

    def error(self, section: str, key: str | None, problem: str) -> ConfigError:
        return super().error(self.section if section == "ca" else section, key, problem)

    def raw(self, section: str, key: str) -> str | None:
        return super().raw(self.section, key) if section == "ca" else None


def named_cas(
    reader: Reader, read_ca: Callable[[Reader], tuple[CaConfig, list[str]]], crl: CrlConfig
) -> tuple[dict[str, CaConfig], list[str]]:
    """Every `[ca:NAME]` section, read by `read_ca` (the reader of `[ca]`), and its warnings.

    A CA without `common_name` is called "python-est NAME CA", so that two generated CAs never
    share a subject name (path building and CRL issuers go by names).

    Raises:
        ConfigError: a name is invalid, or its CRL path or file would be the default CA's.
    """
    cas: dict[str, CaConfig] = {}
    warnings: list[str] = []
    for section in reader.parser.sections():
        if not section.startswith(CA_PREFIX):
            continue
        name = section[len(CA_PREFIX) :]
        view = CaSection(reader, name)
        cfg, more = read_ca(view)
        if not reader.parser.has_option(section, "common_name"):
            cfg = replace(cfg, common_name=f"python-est {name} CA")
        cfg = _sources_in(cfg, section)
        own = crl.for_ca(name)
        if own.path == crl.path or own.file == crl.file:
            raise reader.error(
                section, None, f"its CRL {own.path} would be the [crl] one; rename the CA"
            )
        cas[name] = cfg
        warnings.extend(more)
    return cas, warnings


def _sources_in(cfg: CaConfig, section: str) -> CaConfig:
    """`cfg` with its secret sources naming `section`: the view read them as `[ca]`, and an
    unreadable PIN or passphrase file must be reported under the section that names it."""
    if cfg.pkcs11 is not None:
        pin = replace(cfg.pkcs11.pin, section=section)
        cfg = replace(cfg, pkcs11=replace(cfg.pkcs11, pin=pin))
    if cfg.key_passphrase is not None:
        cfg = replace(cfg, key_passphrase=replace(cfg.key_passphrase, section=section))
    return cfg


def check_label_cas(
    reader: Reader, labels: Mapping[str, LabelConfig], cas: Mapping[str, object]
) -> None:
    """Refuse a label whose `ca` names no CA.

    Raises:
        ConfigError: naming the label's section and its `ca` key.
    """
    for name, label in labels.items():
        if label.ca != DEFAULT_CA and label.ca not in cas:
            section = f"{LABEL_PREFIX}{name}" if name else "profile"
            known = ", ".join([DEFAULT_CA, *cas])
            raise reader.error(section, "ca", f"no CA {label.ca!r} (configured: {known})")
