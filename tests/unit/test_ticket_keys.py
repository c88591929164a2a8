"""The shared session-ticket key file: created 0600, rotated after a day, re-read on change."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from python_est.errors import ConfigError
from python_est.statedir import StateDir
from python_est.ticketkeys.file import (
    KEY_BYTES,
    ROTATE_AFTER,
    TicketKeyFile,
    read_ticket_keys,
    rotate_ticket_keys,
)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_created_private_with_one_key(tmp_path: Path) -> None:
    path = StateDir(tmp_path / "state").ticket_keys
    assert path == tmp_path / "state" / "tls" / "ticket.keys"
    assert read_ticket_keys(path) == ()
    keys = rotate_ticket_keys(path)
    assert len(keys) == 1 and len(keys[0]) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_ticket_keys(path) == keys


def test_rotation_adds_a_key_when_the_newest_is_old_and_keeps_one_previous(
    tmp_path: Path,
) -> None:
    path = StateDir(tmp_path).ticket_keys
    first = rotate_ticket_keys(path)
    assert rotate_ticket_keys(path) == first  # fresh: unchanged
    age(path, ROTATE_AFTER + 1)
    second = rotate_ticket_keys(path)
    assert second[1:] == first and second[0] not in first
    age(path, ROTATE_AFTER + 1)
    third = rotate_ticket_keys(path)
    assert third[1:] == second[:1] and len(third) == 2  # the oldest key is gone


@pytest.mark.parametrize(
    ("content", "mode", "problem"),
    [
        ("zz\n", 0o600, "not one hex key per line"),
        ("abcd\n", 0o600, "every key must be 32 bytes"),
        ("", 0o600, "every key must be 32 bytes"),
        ("00" * 32 + "\n", 0o644, "must not be readable by group or others"),
    ],
)
def test_unusable_files_are_config_errors(
    tmp_path: Path, content: str, mode: int, problem: str
) -> None:
    path = tmp_path / "ticket.keys"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(ConfigError, match=problem):
        read_ticket_keys(path)
    with pytest.raises(ConfigError, match=problem):
        rotate_ticket_keys(path)


def test_key_file_follows_rotations_and_survives_a_broken_file(tmp_path: Path) -> None:
    path = StateDir(tmp_path).ticket_keys
    first = rotate_ticket_keys(path)
    keys = TicketKeyFile(path, refresh=0.0)
    assert keys() == first
    age(path, ROTATE_AFTER + 1)
    second = rotate_ticket_keys(path)
    assert keys() == second
    path.write_text("broken\n")
    assert keys() == second  # the last good keys stay in use
