"""Hot-path statements run on the DBAPI cursor of a SQLAlchemy connection.

Why hand-rolled: for each statement SQLAlchemy Core builds an execution
context, processes parameters and wraps the cursor in a result, which costs
more than SQLite's own execution of our one-row statements (about 13 us of
21 us here), and a login runs eight of them. :func:`run` keeps everything
else of SQLAlchemy: the pool (pre-ping, reset on return), the connection
and its transaction (begun here as ``execute`` would autobegin it), the
compiler (each statement compiled once per dialect and cached), the wrapped
exceptions (``OperationalError`` stays a 503) and disconnect handling (a
lost connection is invalidated, so the pool never hands it out again).

It steps aside whenever something listens to the engine's cursor events
(tracing, query logging, tests that inject faults): they then see the
statement run by SQLAlchemy itself, exactly as before. Only statements
whose values need no type processing go through here: our hot-path tables
hold integers, strings, booleans and floats, which both drivers take and
give as they are (a SQLite boolean reads back as 0 or 1). Imports nothing
of ours.
"""

from __future__ import annotations

import collections
import typing as t
from collections.abc import Mapping
from collections.abc import Sequence

import sqlalchemy as sa
import sqlalchemy.exc


class Rows(list[t.Any]):
    """A statement's rows (read at once: ours are few) and its ``rowcount``."""

    rowcount: int = -1

    def first(self) -> t.Any | None:
        """The first row, or ``None``."""
        return self[0] if self else None


class Prepared:
    """One statement compiled for one dialect: its SQL, the order of its
    positional parameters (``None`` for named ones) and the values it
    carries itself (literals, column defaults)."""

    __slots__ = ("statement", "reads", "sql", "order", "defaults", "row_type")

    def __init__(self, statement: t.Any, dialect: sa.Dialect) -> None:
        # The statement is kept so that its id, the cache key, stays its own.
        self.statement = statement
        #: A plain SELECT: it needs no transaction of its own.
        self.reads = isinstance(statement, sa.Select)
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        positions = compiled.positiontup
        self.order: tuple[str, ...] | None = (
            tuple(positions) if positions is not None else None
        )
        # Values the statement carries itself: literals (``count - 1``)...
        self.defaults: dict[str, t.Any] = {
            name: bind.value
            for bind, name in compiled.bind_names.items()
            if bind.callable is None and bind.value is not None
        }
        # ...and the scalar Python-side defaults of columns an INSERT omits.
        for column in getattr(compiled, "insert_prefetch", ()):
            default = column.default
            if default is None or not default.is_scalar:
                raise ValueError(f"{column} has a default run needs to call")
            self.defaults[column.key] = default.arg
        self.row_type: t.Any = None

    def arguments(self, params: Mapping[str, t.Any]) -> t.Any:
        """The driver's parameters for ``params``."""
        if self.defaults:
            params = {**self.defaults, **params}
        if self.order is None:
            return params
        return tuple([params[name] for name in self.order])

    def rows(self, cursor: t.Any) -> Rows:
        """The cursor's rows as named tuples (attribute access, as SQLAlchemy's)."""
        description = cursor.description
        if description is None:
            found = Rows()
        else:
            if self.row_type is None:
                names = [column[0] for column in description]
                self.row_type = collections.namedtuple(  # type: ignore[misc]
                    "Row", names, rename=True
                )
            make = self.row_type._make
            found = Rows([make(row) for row in cursor.fetchall()])
        found.rowcount = cursor.rowcount
        return found


class Runner:
    """Runs statements through :func:`run`, each compiled once per dialect."""

    def __init__(self) -> None:
        self._prepared: dict[tuple[int, int], Prepared] = {}

    def run(
        self, conn: sa.Connection, statement: t.Any, params: Mapping[str, t.Any]
    ) -> Rows:
        """Run ``statement`` with ``params`` on ``conn``; see the module."""
        dispatch = conn.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            result = conn.execute(statement, dict(params))
            rows = Rows(result.all() if result.returns_rows else ())
            rows.rowcount = result.rowcount
            return rows
        dialect = conn.dialect
        key = (id(statement), id(dialect))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(statement, dialect)
        if not prepared.reads and not conn.in_transaction():
            # What execute() does, so that commit() and rollback() act on
            # the write. A read begins none: it is atomic on its own; the
            # SQLite driver opens no transaction for it, and our reads on
            # PostgreSQL run in autocommit or in a transaction begun already
            # (one a driver opened anyway ends when the pool resets it).
            conn.begin()
        return _execute(conn, prepared, prepared.arguments(params))


def _execute(conn: sa.Connection, prepared: Prepared, arguments: t.Any) -> Rows:
    proxied = conn.connection
    cursor = proxied.cursor()
    try:
        cursor.execute(prepared.sql, arguments)
        return prepared.rows(cursor)
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped(conn, proxied, cursor, prepared.sql, arguments, error) from error
    finally:
        cursor.close()


def _wrapped(
    conn: sa.Connection,
    proxied: t.Any,
    cursor: t.Any,
    sql: str,
    arguments: Sequence[t.Any] | Mapping[str, t.Any],
    error: Exception,
) -> sqlalchemy.exc.DBAPIError:
    """SQLAlchemy's exception for ``error``, the connection invalidated if
    the error says it is lost (as SQLAlchemy itself would)."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(t.cast(t.Any, error), proxied.dbapi_connection, cursor)
    wrapped = sqlalchemy.exc.DBAPIError.instance(
        sql,
        arguments,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        dialect=dialect,
        connection_invalidated=lost,
    )
    if lost:
        conn.invalidate(wrapped)
    return t.cast(sqlalchemy.exc.DBAPIError, wrapped)
