"""`[ca] pkcs11_*`: a CA key on a PKCS#11 token instead of a key file.

Kept apart from `load` so that any section describing a CA (`[ca]`, and per-label CA sections)
reads the same four keys the same way: pass the section name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from python_est.config.model import Pkcs11Key
from python_est.config.passphrase import to_passphrase
from python_est.config.reader import Reader

KEYS = ("pkcs11_module", "pkcs11_token", "pkcs11_key_label", "pkcs11_pin")


def read_pkcs11_key(reader: Reader, base: Path, section: str) -> Pkcs11Key | None:
    """The token key the section names, or None when it names none.

    Raises:
        ConfigError: some of the four keys are set but not all, or the PIN source is the PIN
            itself rather than file:PATH, env:NAME or credential:NAME.
    """
    module = reader.path(section, "pkcs11_module", None, base)
    token = reader.get(section, "pkcs11_token", "", str)
    label = reader.get(section, "pkcs11_key_label", "", str)
    pin_text = reader.get(section, "pkcs11_pin", "", str)
    given = {"pkcs11_module": module, "pkcs11_token": token, "pkcs11_key_label": label}
    given["pkcs11_pin"] = pin_text
    if not any(given.values()):
        return None
    missing = [key for key in KEYS if not given[key]]
    if module is None or missing:
        raise reader.error(section, missing[0], "a token key needs all of " + ", ".join(KEYS))
    try:
        pin = to_passphrase(pin_text, base)
    except ValueError as exc:
        raise reader.error(section, "pkcs11_pin", str(exc)) from None
    return Pkcs11Key(module, token, label, replace(pin, section=section, key="pkcs11_pin"))
