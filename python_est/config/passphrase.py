"""The passphrase of an encrypted CA key: from a file, a variable or a systemd credential.

`[ca] key_passphrase` names the source (`file:PATH`, `env:NAME` or `credential:NAME`, as OpenSSL's
`-passin` does), never the passphrase itself, so the config file can stay world-readable. A
systemd unit hands the passphrase over with `LoadCredential=NAME:PATH` (or
`LoadCredentialEncrypted=`); the service reads it from `$CREDENTIALS_DIRECTORY/NAME`, a file only
the service can read, which is never in its environment or in the config.
"""

from __future__ import annotations

import os
from pathlib import Path

from python_est.config.model import Passphrase
from python_est.config.reader import resolve
from python_est.errors import ConfigError

SOURCES = ("file", "env", "credential")


def to_passphrase(text: str, base: Path) -> Passphrase:
    """Parse `file:PATH`, `env:NAME` or `credential:NAME` (relative paths against `base`)."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in SOURCES or not value:
        raise ValueError(
            "must be file:PATH, env:NAME or credential:NAME (a systemd credential), "
            "never the passphrase itself"
        )
    if kind == "file":
        value = str(resolve(Path(value).expanduser(), base))
    elif "/" in value or value in {".", ".."}:
        raise ValueError(f"{kind}: takes a name, got {value!r}")
    return Passphrase(kind, value)


def read_passphrase(passphrase: Passphrase, source: str) -> bytes:
    """The passphrase bytes (a file's trailing newline dropped).

    Raises:
        ConfigError: naming the key that chose the source, with what is missing.
    """

    def error(problem: str) -> ConfigError:
        return ConfigError(source, passphrase.section, passphrase.key, problem)

    if passphrase.kind == "pass":
        return passphrase.value.encode("utf-8")
    if passphrase.kind == "env":
        value = os.environ.get(passphrase.value)
        if value is None:
            raise error(f"the environment variable {passphrase.value} is not set")
        return value.encode("utf-8")
    if passphrase.kind == "credential":
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise error(
                "$CREDENTIALS_DIRECTORY is not set: start the service under systemd with "
                f"LoadCredential={passphrase.value}:/path/to/passphrase"
            )
        path = Path(directory) / passphrase.value
    else:
        path = Path(passphrase.value)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    return data.rstrip(b"\r\n")
