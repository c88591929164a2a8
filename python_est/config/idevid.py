"""`idevid_template`: the subject a factory (IDevID) certificate obtains (issue 18 item 3).

The template is an RFC 4514 name whose attribute values may hold placeholders. It is parsed
once as a name, and each placeholder is replaced inside one attribute's value
(`policy.factory`), so a factory certificate's value is never parsed as name syntax: a serial
number "x,CN=admin" stays one value.
"""

from __future__ import annotations

import re

from cryptography import x509

# {serialNumber}: the factory certificate's subject serialNumber attribute (X.520, 2.5.4.5);
# {hwSerialNum}: the hwSerialNum of its hardwareModuleName subjectAltName (RFC 4108 §5).
IDEVID_FIELDS = ("serialNumber", "hwSerialNum")
_FIELD = re.compile(r"\{([^{}]*)\}")


def parse_template(text: str) -> x509.Name:
    """The template as a name with its placeholders still in the values.

    Raises:
        ValueError: empty, not an RFC 4514 name, an unknown placeholder, or none at all.
    """
    if not text.strip():
        raise ValueError("idevid_subject = template needs a template such as CN={serialNumber}")
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise ValueError(f"not an RFC 4514 name: {exc}") from None
    used = set()
    for attribute in name:
        value = attribute.value
        if not isinstance(value, str):
            raise ValueError("a template attribute must be text")
        for field in _FIELD.findall(value):
            if field not in IDEVID_FIELDS:
                raise ValueError(f"unknown placeholder {{{field}}}: use {', '.join(IDEVID_FIELDS)}")
            used.add(field)
    if not used:
        # A fixed subject would give every device of the manufacturer the same name.
        raise ValueError("the template uses no placeholder, so every device would share it")
    return name


def fill(value: str, values: dict[str, str]) -> str:
    """`value` with each placeholder replaced (every name in it must be in `values`)."""
    return _FIELD.sub(lambda match: values[match.group(1)], value)
