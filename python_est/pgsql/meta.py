"""Named server secrets in the `meta` table, created once and then shared by every instance."""

from __future__ import annotations

import secrets

from python_est.pgsql.connection import Cursor, Database, scalar


def shared_secret(db: Database, name: str, size: int = 32) -> bytes:
    """The secret called `name`, made of `size` random bytes by whichever instance asks first.

    Raises:
        Unavailable: the database cannot be reached.
    """
    fresh = secrets.token_bytes(size)

    def work(cursor: Cursor) -> bytes:
        # ON CONFLICT DO NOTHING: of two instances starting together, the first insert wins and
        # both read the winner back.
        cursor.execute(
            "INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (name, fresh),
        )
        return bytes(scalar(cursor, "SELECT value FROM meta WHERE name = %s", (name,)))

    return db.run(work)
