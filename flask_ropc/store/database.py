"""Connections: the one place that knows about dialects, with :mod:`.engines`.

Owns which errors are outages (:data:`UNAVAILABLE_ERRORS`) and which a missing schema
(:func:`is_missing_schema`), the dialect's ``insert`` for upserts
(:func:`upsert_insert`), and :class:`Database`, which every other
``store`` module uses for its connections, its clock and to run hot-path
statements (:meth:`Database.run`). Imports :mod:`.driver` and
:mod:`.engines` only.
"""

from __future__ import annotations

import contextlib
import contextvars
import typing as t
from collections.abc import Callable
from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from .driver import Rows
from .driver import Runner
from .engines import NO_TIMEOUTS
from .engines import Timeouts
from .engines import timeouts_on_connect

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

#: PostgreSQL's SQLSTATE for "relation does not exist" (``UndefinedTable``).
UNDEFINED_TABLE = "42P01"


def is_missing_schema(error: BaseException) -> bool:
    """Whether ``error`` says a table we query does not exist.

    That is a permanent misconfiguration (``flask ropc init-db`` or the
    migrations were never run on this database), not an outage: retrying
    cannot help. PostgreSQL says so with SQLSTATE 42P01 (a
    ``ProgrammingError``); SQLite with "no such table" (an
    ``OperationalError``, the class of its outages too).
    """
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return False
    original = error.orig
    # psycopg 3 names it sqlstate, psycopg2 pgcode.
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if code == UNDEFINED_TABLE:
        return True
    return str(original).startswith("no such table")


def upsert_insert(dialect: str) -> t.Any:
    """The ``insert`` construct of ``dialect``, the one with ``on_conflict_*``.

    ``"postgresql"`` gets :func:`sqlalchemy.dialects.postgresql.insert`;
    any other name gets :func:`sqlalchemy.dialects.sqlite.insert`, SQLite
    being the only other database we run on. Both spell ``ON CONFLICT``
    alike, so an upsert built from either reads the same.
    """
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


#: A callable returning the current Unix time; injectable for tests.
Clock = Callable[[], float]


class Database:
    """An engine (looked up per use) and the clock rows are stamped with.

    :param get_engine: returns the engine to use; called per operation because
        Flask-SQLAlchemy's ``db.engine`` is looked up per app context.
    :param clock: returns the current Unix time.
    :param owned: the engine we created ourselves (embedded database), which
        :meth:`dispose` closes; ``None`` when it is the app's.
    :param timeouts: the limits of our statements. An engine we made with
        :func:`create_engine` has them on every connection already;
        otherwise, on PostgreSQL, :meth:`begin` sets them with ``SET LOCAL``.
    """

    def __init__(
        self,
        get_engine: Callable[[], sa.Engine],
        clock: Clock,
        owned: sa.Engine | None = None,
        timeouts: Timeouts = NO_TIMEOUTS,
    ) -> None:
        self._get_engine = get_engine
        self.clock = clock
        self.owned = owned
        self._reader: tuple[sa.Engine, sa.Engine] | None = None
        # The connection held by :meth:`held` in this thread or task, if any.
        self._held: contextvars.ContextVar[sa.Connection | None] = (
            contextvars.ContextVar(f"ropc_held_{id(self)}", default=None)
        )
        self._set_local: tuple[t.Any, dict[str, str]] | None = None
        self._runner = Runner()
        settings = timeouts.settings()
        if settings and not (owned is not None and timeouts_on_connect(owned.url)):
            # SET LOCAL of every limit in one statement: one round trip.
            # The names are ours, never input.
            calls = (f"set_config('{name}', :{name}, true)" for name in settings)
            self._set_local = (sa.text("SELECT " + ", ".join(calls)), settings)

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

    def run(
        self, conn: sa.Connection, statement: t.Any, params: t.Mapping[str, t.Any]
    ) -> Rows:
        """Run a hot-path ``statement`` on ``conn`` on the driver's cursor,
        compiled once (see :mod:`.driver`); its rows, read at once."""
        return self._runner.run(conn, statement, params)

    def begin(self) -> t.ContextManager[sa.Connection]:
        """A connection in a transaction, committed at the end of the block.

        On a PostgreSQL engine that is not our own (the app's, shared), the
        transaction starts with ``SET LOCAL`` of our timeouts, in one
        statement: they end with the transaction, so the app's own sessions
        on the same connections keep theirs.
        """
        held = self._held.get()
        if held is not None:
            return self._begin_held(held)
        engine = self.engine
        if self._set_local is None or engine.dialect.name != "postgresql":
            return engine.begin()
        return self._begin_bounded(engine, *self._set_local)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Run every :meth:`autocommit` and :meth:`begin` of the block on one
        pooled connection.

        A request's steps before the app's own code runs (client lookup,
        throttle reservation) use it: one pool checkout, so one pre-ping
        round trip instead of one per statement. The pool's disconnect
        handling is unchanged: an error invalidates the connection, the
        block fails, and the next checkout connects anew. Never hold it
        around app callbacks (the validator): they may need a connection of
        the same pool, and enough such requests at once would exhaust it.
        Nested blocks share the outer one's connection.
        """
        if self._held.get() is not None:
            yield
            return
        engine = self.engine
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                # Reads and single statements need no transaction (see
                # autocommit); _begin_held switches back for a transaction.
                conn.execution_options(isolation_level="AUTOCOMMIT")
            token = self._held.set(conn)
            try:
                yield
            finally:
                self._held.reset(token)

    @contextlib.contextmanager
    def _begin_held(self, conn: sa.Connection) -> Iterator[sa.Connection]:
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:
            conn.execution_options(isolation_level=conn.default_isolation_level)
        try:
            with conn.begin():
                if postgresql and self._set_local is not None:
                    conn.execute(self._set_local[0], self._set_local[1])
                yield conn
        finally:
            if postgresql:
                conn.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    @contextlib.contextmanager
    def _begin_bounded(
        engine: sa.Engine, statement: t.Any, settings: dict[str, str]
    ) -> Iterator[sa.Connection]:
        with engine.begin() as conn:
            conn.execute(statement, settings)
            yield conn

    def autocommit(self) -> t.ContextManager[sa.Connection]:
        """A connection for reads and single-statement writes (committed).

        On PostgreSQL it is in autocommit mode. Our reads are single
        statements, atomic on their own (inside a transaction the default
        READ COMMITTED would give each statement its own snapshot anyway),
        and so are the throttle's counter updates; without a transaction
        each costs two round trips instead of four (no ``BEGIN``, no
        ``COMMIT`` or ``ROLLBACK``). Switching psycopg to autocommit is
        client-side, and the pool restores the level on return.

        Elsewhere it is a connection whose transaction, if one was begun,
        commits at the end (rolls back on an error), as ``engine.begin()``
        would: a read through :meth:`run` begins none (SQLite's driver
        starts a transaction only before a write anyway), which saves the
        transaction's bookkeeping, while switching SQLite's isolation level
        would cost a ``PRAGMA`` on every return to the pool.

        Our timeouts bound these statements on our own engine (set when it
        connects). On an app's shared engine they run under the app's
        settings: ``SET LOCAL`` needs a transaction, which would cost these
        single statements their saving; plain reads never wait for row
        locks, and the counters' rows are locked only by our own, bounded,
        transactions.
        """
        held = self._held.get()
        if held is not None:
            return _Committed(held, close=False)
        engine = self.engine
        if engine.dialect.name != "postgresql":
            return _Committed(engine.connect())
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


class _Committed:
    """``with`` a connection: commit what it began, or roll back on an error;
    then close it, unless it is the one :meth:`Database.held` holds.

    A class rather than ``contextlib.contextmanager``: it runs on every read
    of the hot path, and a generator costs several times more.
    """

    __slots__ = ("_conn", "_close")

    def __init__(self, conn: sa.Connection, *, close: bool = True) -> None:
        self._conn, self._close = conn, close

    def __enter__(self) -> sa.Connection:
        return self._conn

    def __exit__(self, kind: t.Any, error: t.Any, trace: t.Any) -> None:
        conn = self._conn
        try:
            if conn.in_transaction():
                # A write begins one (a read on the driver's cursor does not).
                if kind is None:
                    conn.commit()
                else:
                    conn.rollback()
        finally:
            if self._close:
                conn.close()  # rolls back whatever is left
