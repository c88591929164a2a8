"""`Database`: a small, thread-safe pool of psycopg connections to one PostgreSQL database.

Every operation is one transaction run by `Database.run(work)`. The retry rule is what keeps
"nothing issued is lost" true across connection loss:

- A failure before COMMIT is sent leaves nothing behind (PostgreSQL rolls the transaction back
  when the connection dies), so the work is run once more on a fresh connection. That is how a
  pooled connection that the server or a network device dropped while idle heals itself.
- A failure while COMMIT is in flight leaves the outcome unknown. It is never retried: the caller
  gets `Unavailable` (503 with Retry-After), so a certificate is never handed out unless its
  COMMIT was acknowledged.
- When the database cannot be reached at all, `Unavailable` comes at once; the next operation
  tries to connect again, so the server recovers by itself when the database is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import conninfo
from psycopg.rows import DictRow, dict_row

from python_est.errors import LedgerError, Unavailable

if TYPE_CHECKING:
    from typing_extensions import LiteralString

log = logging.getLogger(__name__)

T = TypeVar("T")
Cursor = psycopg.Cursor[DictRow]
Connection = psycopg.Connection[DictRow]

RETRY_AFTER_S = 10
UNAVAILABLE_DETAIL = "the database is unavailable"
URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_POOL_SIZE = 8
# A statement that takes longer than this is cancelled (and answered 503): a stuck lock or an
# overloaded database must not pin server threads for ever.
STATEMENT_TIMEOUT_MS = 15_000


def is_database_url(text: str) -> bool:
    """Whether `text` names a PostgreSQL database (a `postgresql://` or `postgres://` URL)."""
    return text.startswith(URL_SCHEMES)


def describe_url(url: str) -> str:
    """`host:port/dbname` of a URL, without user or password, for logs and messages."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    return f"{host}:{port}/{parts.get('dbname') or ''}"


class Database:
    """Connections to one PostgreSQL database, opened on demand and reused.

    Args:
        url: a libpq connection URL (`postgresql://user@host:port/dbname`); prefer a password
            file or `PGPASSWORD` to a password inside the URL.
        pool_size: most connections open at once; more concurrent operations wait.
        connect_timeout: seconds to wait for a new connection (libpq rounds to whole seconds,
            at least 2).

    Raises:
        ValueError: `url` is not a PostgreSQL URL or does not parse.
    """

    def __init__(
        self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, connect_timeout: float = 5.0
    ) -> None:
        if not is_database_url(url):
            raise ValueError("the database URL must start with postgresql://")
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise ValueError("the database URL does not parse") from None
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._url = url
        self._connect_timeout = max(2, round(connect_timeout))
        self._wait_s = connect_timeout + STATEMENT_TIMEOUT_MS / 1000
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        self._idle: list[Connection] = []

    @property
    def name(self) -> str:
        """`host:port/dbname`, safe to log."""
        return describe_url(self._url)

    def run(self, work: Callable[[Cursor], T]) -> T:
        """Run `work` in one transaction on a pooled connection and commit it.

        `work` may run twice (see the module docstring): it must only touch the database.

        Raises:
            Unavailable: the database cannot be reached, dropped the connection, or the outcome
                of the COMMIT is unknown.
            psycopg.IntegrityError: a constraint refused the change (the caller decides).
            LedgerError: any other database error (a bug or a schema problem).
        """
        with self._slot():
            for attempt in (1, 2):
                conn, reused = self._acquire()
                try:
                    with conn.cursor() as cursor:
                        result = work(cursor)
                except psycopg.OperationalError as exc:
                    # Rolled back by the server (or the connection is gone): safe to run again.
                    self._discard(conn, drain=True)
                    if attempt == 1 and (reused or not _is_connection_error(exc)):
                        log.info("database operation failed (%s); retrying", _summary(exc))
                        continue
                    raise _unavailable(exc) from exc
                except psycopg.IntegrityError:
                    self._rollback_and_release(conn)
                    raise
                except psycopg.Error as exc:
                    self._rollback_and_release(conn)
                    log.error("database error: %s", _summary(exc))
                    raise LedgerError(UNAVAILABLE_DETAIL) from exc
                except Exception:
                    self._rollback_and_release(conn)
                    raise
                try:
                    conn.commit()
                except psycopg.Error as exc:
                    # The COMMIT may or may not have happened: never retried, never reported
                    # as done.
                    self._discard(conn, drain=True)
                    raise _unavailable(exc) from exc
                self._release(conn)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection. A later operation connects again.

        Call it before `os.fork()`: a connection must never be shared by two processes.
        """
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_s):
            raise Unavailable("the database is busy", retry_after=RETRY_AFTER_S)
        try:
            yield
        finally:
            self._slots.release()

    def _acquire(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            conn = psycopg.connect(
                self._url,
                row_factory=dict_row,
                connect_timeout=self._connect_timeout,
                application_name="python-est",
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                keepalives=1,
                keepalives_idle=30,
            )
        except psycopg.Error as exc:
            log.warning("cannot connect to the database %s: %s", self.name, _summary(exc))
            raise _unavailable(exc) from exc
        return conn, False

    def _release(self, conn: Connection) -> None:
        if conn.closed:
            return
        if conn.broken:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def _rollback_and_release(self, conn: Connection) -> None:
        try:
            conn.rollback()
        except psycopg.Error:
            self._discard(conn, drain=False)
            return
        self._release(conn)

    def _discard(self, conn: Connection, *, drain: bool) -> None:
        # One dead connection usually means they all are (a database restart): drop the idle
        # ones too, so the retry gets a new connection instead of another stale one.
        stale: list[Connection] = []
        if drain:
            with self._lock:
                stale, self._idle = self._idle, []
        for item in (conn, *stale):
            try:
                item.close()
            except psycopg.Error:
                log.debug("closing a dead database connection failed", exc_info=True)


def _is_connection_error(exc: psycopg.OperationalError) -> bool:
    # No SQLSTATE: libpq itself failed (refused, reset, timed out), not the server's answer.
    return exc.sqlstate is None


def _unavailable(exc: psycopg.Error) -> Unavailable:
    log.warning("database unavailable: %s", _summary(exc))
    return Unavailable(UNAVAILABLE_DETAIL, retry_after=RETRY_AFTER_S)


def _summary(exc: BaseException) -> str:
    # The first line only: libpq messages can span lines; they never hold the password.
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"


def scalar(cursor: Cursor, sql: LiteralString, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of `sql`, or None when there is no row."""
    row = cursor.execute(sql, params).fetchone()
    return None if row is None else next(iter(row.values()))
