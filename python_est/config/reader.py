"""Typed reads from a parsed INI file, remembering which keys were consumed."""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from python_est.errors import ConfigError

T = TypeVar("T")


class Reader:
    """Reads typed values from one parsed file and remembers which keys were consumed."""

    def __init__(self, parser: configparser.ConfigParser, source: str, base: Path) -> None:
        self.parser = parser
        self.source = source
        self.base = base
        self.used: set[tuple[str, str]] = set()

    def error(self, section: str, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.source, section, key, problem)

    def raw(self, section: str, key: str) -> str | None:
        if not self.parser.has_section(section) or not self.parser.has_option(section, key):
            return None
        self.used.add((section, key))
        return self.parser.get(section, key).strip()

    def get(self, section: str, key: str, default: T, convert: Callable[[str], T]) -> T:
        text = self.raw(section, key)
        if text is None:
            return default
        try:
            return convert(text)
        except (ValueError, KeyError) as exc:
            raise self.error(section, key, f"{exc}") from None

    def path(self, section: str, key: str, default: Path | None, base: Path) -> Path | None:
        text = self.raw(section, key)
        if text is None:
            return default
        if not text:
            return None
        return resolve(Path(text).expanduser(), base)


def resolve(path: Path, base: Path) -> Path:
    # normpath folds "config/../state" so logs and messages show the real location.
    return Path(os.path.normpath(path if path.is_absolute() else base / path))
