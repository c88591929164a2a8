"""The sections of the older tlslite-based python-est and of est_proxy, read as defaults.

Their keys map onto the new sections (`config/python_est.cfg` lists each), or are named in one
warning each as obsolete (`keys.OBSOLETE_KEYS`). Unknown sections and keys are all reported at
once, so a migrated file is fixed in one pass rather than one start per key.
"""

from __future__ import annotations

from pathlib import Path

from python_est.config.cas import ca_name_problem
from python_est.config.convert import to_web_path
from python_est.config.keys import (
    CA_PREFIX,
    HANDLER_SECTION,
    KNOWN_KEYS,
    LABEL_PREFIX,
    OBSOLETE_KEYS,
)
from python_est.config.model import Passphrase
from python_est.config.passphrase import to_passphrase
from python_est.config.reader import Reader
from python_est.errors import ConfigError
from python_est.messages import OPERATION_NAMES, WELL_KNOWN, label_problem


def check_sections(reader: Reader) -> list[str]:
    """Warnings for obsolete keys; every unknown section and key in one `ConfigError`."""
    warnings = []
    unknown: list[tuple[str, str | None]] = []
    handler = _runs_handler(reader)
    for section in reader.parser.sections():
        if section == HANDLER_SECTION and handler:
            continue  # every key is the CA handler's own setting (backend = handler)
        if section.startswith(LABEL_PREFIX):
            label = section[len(LABEL_PREFIX) :]
            # RFC 7030 §3.2.2: one path segment, decoded (`[label:ca:1]` serves .../ca:1/...).
            problem = label_problem(label)
            if problem is not None:
                raise reader.error(section, None, f"label {label!r}: {problem}")
            known = KNOWN_KEYS["profile"]
        elif section.startswith(CA_PREFIX):
            problem = ca_name_problem(section[len(CA_PREFIX) :])
            if problem is not None:
                raise reader.error(section, None, problem)
            known = KNOWN_KEYS["ca"]
        elif section in KNOWN_KEYS:
            known = KNOWN_KEYS[section]
        else:
            unknown.append((section, None))
            continue
        obsolete = OBSOLETE_KEYS.get(section, {})
        for key in reader.parser.options(section):
            if key in obsolete:
                reader.used.add((section, key))
                warnings.append(
                    f"{reader.source}: [{section}] {key}: no longer used ({obsolete[key]}); ignored"
                )
            elif key not in known:
                unknown.append((section, key))
    if len(unknown) == 1:
        where, name = unknown[0]
        raise reader.error(where, name, "unknown section" if name is None else "unknown key")
    if unknown:
        names = ", ".join(f"[{s}]" if k is None else f"[{s}] {k}" for s, k in unknown)
        raise ConfigError(
            reader.source, None, None, f"{len(unknown)} unknown sections or keys: {names}"
        )
    return warnings


def legacy_handler(reader: Reader) -> tuple[Path | None, list[str]]:
    """`[CAhandler] handler_file` of the older python-est and est_proxy: the file, which then
    runs (`backend = handler`); or None, with a warning, when the file is not there (the
    embedded CA then issues from `[CAhandler] issuing_ca_*`, as before issue 18)."""
    path = reader.path(HANDLER_SECTION, "handler_file", None, reader.base)
    if path is None or path.is_file():
        return path, []
    return None, [
        f"{reader.source}: [{HANDLER_SECTION}] handler_file: {path} does not exist; "
        "certificates are issued by the embedded CA"
    ]


def _runs_handler(reader: Reader) -> bool:
    parser = reader.parser
    return legacy_handler(reader)[0] is not None or any(
        parser.get(section, "backend", fallback="").strip() == "handler"
        for section in parser.sections()
        if section == "profile" or section.startswith(LABEL_PREFIX)
    )


def bootstrap_path(reader: Reader) -> tuple[str, list[str]]:
    """`[bootstrap] path`, else the older python-est's `[Bootstrap] endpoint`.

    The older product served its page at `/.well-known/est/bootstrap`. The new key refuses
    `/.well-known/` (the page is not an EST operation); the legacy key may keep one segment there,
    with a warning, so its devices and bookmarks keep working. Only that key puts the page there:
    by default `/.well-known/est/bootstrap` stays a 404.
    """
    if reader.parser.has_option("bootstrap", "path"):
        return reader.get("bootstrap", "path", "/bootstrap", to_web_path), []
    endpoint = reader.get("Bootstrap", "endpoint", "/bootstrap", _to_legacy_page_path)
    if not endpoint.startswith(f"{WELL_KNOWN}/"):
        return endpoint, []
    return endpoint, [
        f"{reader.source}: [Bootstrap] endpoint: the bootstrap page is served at {endpoint}, "
        "inside the EST namespace, because this key of the older python-est asks for it; "
        "[bootstrap] path = /bootstrap moves it out"
    ]


def _to_legacy_page_path(text: str) -> str:
    prefix = f"{WELL_KNOWN}/"
    if not text.startswith(prefix):
        return to_web_path(text)
    segment = text[len(prefix) :].rstrip("/")
    if segment in OPERATION_NAMES:
        raise ValueError(f"{text} is the EST operation {segment}")
    if "/" in segment or "?" in segment or label_problem(segment) is not None:
        raise ValueError(f"must be {prefix}NAME (one path segment) or a path outside it")
    return prefix + segment


def ca_passphrase(reader: Reader, base: Path) -> tuple[Passphrase | None, list[str]]:
    """`[ca] key_passphrase`, else est_proxy's `issuing_ca_key_passphrase` (the passphrase
    itself) or `issuing_ca_key_passphrase_variable` (an environment variable's name)."""
    text = reader.raw("ca", "key_passphrase")
    literal = reader.raw("CAhandler", "issuing_ca_key_passphrase")
    variable = reader.raw("CAhandler", "issuing_ca_key_passphrase_variable")
    if text:
        try:
            return to_passphrase(text, base), []
        except ValueError as exc:
            raise reader.error("ca", "key_passphrase", str(exc)) from None
    if text is not None:
        return None, []
    if literal:
        warning = (
            f"{reader.source}: [CAhandler] issuing_ca_key_passphrase: the CA key's passphrase "
            "is in the config file; prefer [ca] key_passphrase = file:PATH or credential:NAME"
        )
        return Passphrase("pass", literal, "CAhandler", "issuing_ca_key_passphrase"), [warning]
    if variable:
        return Passphrase("env", variable, "CAhandler", "issuing_ca_key_passphrase_variable"), []
    return None, []
