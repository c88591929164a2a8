"""Rows of the `users` table: writing a `Record`, reading one back (validated like the file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from python_est.pgsql import Cursor
from python_est.users.fileformat import Record, check_entry
from python_est.users.srp import GROUPS, check_allowed_names, int_bytes


def json_names(names: tuple[str, ...] | None) -> Jsonb | None:
    return None if names is None else Jsonb(list(names))


def insert_user(cursor: Cursor, name: str, record: Record, *, overwrite: bool) -> bool:
    verifier = int_bytes(record.verifier, GROUPS[record.group_bits][0])
    values = (
        name,
        record.group_bits,
        record.salt,
        verifier,
        json_names(record.allowed_names),
        record.created,
    )
    if overwrite:
        cursor.execute(
            "INSERT INTO users (name, group_bits, salt, verifier, allowed_names, created)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " group_bits = EXCLUDED.group_bits, salt = EXCLUDED.salt,"
            " verifier = EXCLUDED.verifier, allowed_names = EXCLUDED.allowed_names,"
            " created = EXCLUDED.created",
            values,
        )
        return True
    cursor.execute(
        "INSERT INTO users (name, group_bits, salt, verifier, allowed_names, created)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
        values,
    )
    return cursor.rowcount == 1


def read_record(row: Mapping[str, Any]) -> Record:
    name = str(row["name"])
    salt = bytes(row["salt"])
    verifier = int.from_bytes(bytes(row["verifier"]), "big")
    bits = check_entry(name, int(row["group_bits"]), salt, verifier)
    allowed = row["allowed_names"]
    return Record(
        bits,
        salt,
        verifier,
        None if allowed is None else check_allowed_names(list(allowed)),
        str(row["created"]),
    )
