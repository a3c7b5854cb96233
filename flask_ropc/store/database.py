"""Engines and connections: the one place that knows about dialects.

Owns :func:`create_engine` (the embedded database's engine and its SQLite
pragmas) and :class:`Database`, which every other ``store`` module uses for
its connections and its clock. Imports nothing of ours.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

import sqlalchemy as sa
import sqlalchemy.exc

#: Database errors that mean "the database is unreachable right now" rather
#: than "our code is wrong": they become 503, everything else 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)

#: Every error the database layer raises.
DatabaseError = sqlalchemy.exc.SQLAlchemyError

#: A callable returning the current Unix time; injectable for tests.
Clock = Callable[[], float]


class Database:
    """An engine (looked up per use) and the clock rows are stamped with.

    :param get_engine: returns the engine to use; called per operation because
        Flask-SQLAlchemy's ``db.engine`` is looked up per app context.
    :param clock: returns the current Unix time.
    :param owned: the engine we created ourselves (embedded database), which
        :meth:`dispose` closes; ``None`` when it is the app's.
    """

    def __init__(
        self,
        get_engine: Callable[[], sa.Engine],
        clock: Clock,
        owned: sa.Engine | None = None,
    ) -> None:
        self._get_engine = get_engine
        self.clock = clock
        self.owned = owned
        self._reader: tuple[sa.Engine, sa.Engine] | None = None

    @property
    def engine(self) -> sa.Engine:
        """The engine in use now."""
        return self._get_engine()

    @property
    def dialect(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ..."""
        return self.engine.dialect.name

    def now(self) -> int:
        """The current time as whole Unix seconds."""
        return int(self.clock())

    def begin(self) -> t.ContextManager[sa.Connection]:
        """A connection in a transaction, committed at the end of the block."""
        return self.engine.begin()

    def autocommit(self) -> t.ContextManager[sa.Connection]:
        """A connection for reads and single-statement writes (committed).

        On PostgreSQL it is in autocommit mode. Our reads are single
        statements, atomic on their own (inside a transaction the default
        READ COMMITTED would give each statement its own snapshot anyway),
        and so are the throttle's counter updates; without a transaction
        each costs two round trips instead of four (no ``BEGIN``, no
        ``COMMIT`` or ``ROLLBACK``). Switching psycopg to autocommit is
        client-side, and the pool restores the level on return.

        Elsewhere it is a plain ``engine.begin()``: SQLite's driver starts a
        transaction only before a write anyway, while switching its
        isolation level costs a ``PRAGMA`` on every return to the pool.
        """
        engine = self.engine
        if engine.dialect.name != "postgresql":
            return engine.begin()
        if self._reader is None or self._reader[0] is not engine:
            self._reader = (
                engine,
                engine.execution_options(isolation_level="AUTOCOMMIT"),
            )
        return self._reader[1].connect()

    def dispose(self) -> None:
        """Close the pooled connections of an engine we created; else nothing."""
        if self.owned is not None:
            self.owned.dispose()


def create_engine(uri: str) -> sa.Engine:
    """Create the engine for the embedded database.

    SQLite gets WAL mode and ``synchronous=NORMAL`` (readers never wait for
    the writer; a commit is an order of magnitude cheaper and still durable
    against application crashes) and a busy timeout so that concurrent
    workers wait for the write lock instead of failing with "database is
    locked". Every engine checks connections before use so that a restarted
    database server does not fail the next request. Parameters are hidden
    from SQL error messages: they can hold token digests.
    """
    url = sa.make_url(uri)
    options: dict[str, t.Any] = {"hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": 30}
    else:
        options["pool_pre_ping"] = True
    engine = sa.create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: t.Any, connection_record: t.Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
