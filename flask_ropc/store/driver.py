"""Hot-path statements run on the DBAPI cursor of a SQLAlchemy connection.

Why hand-rolled: for each statement SQLAlchemy Core builds an execution
context, processes parameters and wraps the cursor in a result, which costs
more than SQLite's own execution of our one-row statements (about 13 us of
21 us here), and a login runs eight of them. :class:`Runner` keeps the rest
of SQLAlchemy: the pool (pre-ping, reset on return), the connection and its
transaction (begun here as ``execute`` would autobegin it), the compiler
(each statement compiled once per dialect and cached), and its handling of
a failed statement, called as ``execute`` calls it (the same exceptions, so
``OperationalError`` stays a 503; ``handle_error`` listeners; a lost
connection invalidated, and the pool's older ones with it).

It steps aside, and ``execute`` runs the statement, whenever SQLAlchemy has
more to do than that: someone listens to the connection's events (tracing,
query logging, tests that inject faults), statements are logged
(``echo``), an execution option changes the SQL (``schema_translate_map``),
or the statement has values to convert, defaults to call or parameters to
render at execution. Our hot-path tables hold integers, strings, booleans
and floats, which both drivers take and give as they are; the one
difference kept is that a SQLite boolean reads back as 0 or 1. Imports
nothing of ours.
"""

from __future__ import annotations

import collections
import operator
import typing as t
from collections.abc import Callable
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
    carries itself (literals, column defaults); or ``eligible`` false when
    SQLAlchemy has work of its own to do for it, and it runs through
    ``execute``."""

    __slots__ = (
        "statement",
        "dialect",
        "eligible",
        "reads",
        "sql",
        "order",
        "defaults",
        "make_row",
        "pick",
    )

    def __init__(self, statement: t.Any, dialect: sa.Dialect) -> None:
        # Both are kept: the cache is keyed by their ids, which stay theirs
        # only while they live.
        self.statement, self.dialect = statement, dialect
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
        prefetch = getattr(compiled, "insert_prefetch", ())
        for column in prefetch:
            if column.default is not None and column.default.is_scalar:
                self.defaults[column.key] = column.default.arg
        self.eligible = _needs_nothing_of_sqlalchemy(compiled, prefetch)
        #: A plain SELECT: it needs no transaction of its own.
        self.reads = isinstance(statement, sa.Select) and not compiled.ctes
        #: Makes a row from a driver's tuple; :data:`_NO_ROWS` for a
        #: statement without any; set by the first run (the names are the
        #: driver's).
        self.make_row: t.Any = None
        #: The positional parameters in order, from a mapping.
        self.pick = _picker(self.order or ())

    def arguments(self, params: Mapping[str, t.Any]) -> t.Any:
        """The driver's parameters for ``params``."""
        if self.defaults:
            params = {**self.defaults, **params}
        if self.order is None:
            return params
        return self.pick(params)

    def rows(self, cursor: t.Any) -> Rows:
        """The cursor's rows as named tuples (attribute access, as SQLAlchemy's)."""
        make = self.make_row
        if make is None:
            description = cursor.description
            if description is None:
                make = _NO_ROWS
            else:
                names = [column[0] for column in description]
                row: t.Any = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
                make = row._make
            self.make_row = make
        found = Rows() if make is _NO_ROWS else Rows(map(make, cursor.fetchall()))
        found.rowcount = cursor.rowcount
        return found


#: :attr:`Prepared.make_row` of a statement that returns no rows.
_NO_ROWS = object()


def _picker(order: Sequence[str]) -> Callable[[Mapping[str, t.Any]], t.Any]:
    """A function of a mapping that gives its values of ``order``, as a tuple."""
    if len(order) > 1:
        return operator.itemgetter(*order)  # in C; one name would give no tuple
    return lambda params: tuple([params[name] for name in order])


#: Column types whose values both drivers take and give as Python has
#: them (a float that is not a Decimal; a SQLite boolean reads back as 0 or
#: 1, the one difference allowed: our readers take its truth).
_PLAIN_TYPES = (sa.Integer, sa.String, sa.Boolean, sa.Float, sa.types.NullType)


def _plain_type(kind: t.Any) -> bool:
    if isinstance(kind, sa.Float) and kind.asdecimal:
        return False
    return isinstance(kind, _PLAIN_TYPES)


def _needs_nothing_of_sqlalchemy(compiled: t.Any, prefetch: Sequence[t.Any]) -> bool:
    """Whether running ``compiled``'s SQL as it is, with the parameters as
    given, is all ``execute`` would do: no value of another type than
    :data:`_PLAIN_TYPES`, no default to call, no parameter rendered at
    execution."""
    if getattr(compiled, "update_prefetch", ()) or compiled.post_compile_params:
        return False
    if getattr(compiled, "escaped_bind_names", None):
        return False
    if any(c.default is None or not c.default.is_scalar for c in prefetch):
        return False
    if any(bind.callable is not None for bind in compiled.bind_names):
        return False
    kinds = [bind.type for bind in compiled.bind_names]
    kinds += [c.type for c in getattr(compiled.statement, "selected_columns", ())]
    return all(_plain_type(kind) for kind in kinds)


class Runner:
    """Runs statements on the driver's cursor (see the module), each compiled
    once per dialect."""

    #: Statements kept compiled, at most (ours are a few dozen; a caller
    #: building statements per call must not grow this without end).
    LIMIT = 512

    def __init__(self) -> None:
        self._prepared: dict[tuple[int, int], Prepared] = {}

    def run(
        self, conn: sa.Connection, statement: t.Any, params: Mapping[str, t.Any]
    ) -> Rows:
        """Run ``statement`` with ``params`` on ``conn``; see the module."""
        dialect = conn.dialect
        key = (id(statement), id(dialect))
        prepared = self._prepared.get(key)
        if prepared is None or prepared.dialect is not dialect:
            if len(self._prepared) >= self.LIMIT:
                self._prepared.clear()
            prepared = self._prepared[key] = Prepared(statement, dialect)
        if not prepared.eligible or _sqlalchemy_must_run(conn):
            result = conn.execute(statement, dict(params))
            rows = Rows(result.all() if result.returns_rows else ())
            rows.rowcount = result.rowcount
            return rows
        if not prepared.reads and not conn.in_transaction():
            # What execute() does, so that commit() and rollback() act on
            # the write. A read begins none: it is atomic on its own; the
            # SQLite driver opens no transaction for it, and our reads on
            # PostgreSQL run in autocommit or in a transaction begun already
            # (one a driver opened anyway ends when the pool resets it).
            conn.begin()
        return _execute(conn, prepared, prepared.arguments(params))


#: Execution options under which running the SQL as compiled is right.
_PLAIN_OPTIONS = frozenset({"isolation_level"})


def _sqlalchemy_must_run(conn: sa.Connection) -> bool:
    """Whether ``conn`` needs ``execute``: someone listens to the events a
    statement passes (``begin``, ``before_execute``, ``after_execute``, the
    cursor events, or the dialect's ``handle_error`` and ``do_execute``;
    ``commit`` and ``rollback`` fire either way), it logs its statements
    (``echo``), or it has execution options that change the SQL
    (``schema_translate_map``, ...).

    These read SQLAlchemy's own flags (``_has_events``, ``_echo``), the ones
    its ``execute`` checks, because asking each event collection would cost
    more than the statement.
    """
    if conn._echo:
        return True
    if conn._has_events or conn.engine._has_events:
        # Set by any listener, also of events that leave statements alone
        # (``engine_connect``: an engine with execution options has one).
        events = conn.dispatch
        if (
            events.begin
            or events.before_execute
            or events.after_execute
            or events.before_cursor_execute
            or events.after_cursor_execute
        ):
            return True
    dialect = conn.dialect
    if dialect._has_events and (
        dialect.dispatch.handle_error or dialect.dispatch.do_execute
    ):
        return True
    options = conn.get_execution_options()
    return bool(options) and not options.keys() <= _PLAIN_OPTIONS


def _execute(conn: sa.Connection, prepared: Prepared, arguments: t.Any) -> Rows:
    cursor = None
    try:
        cursor = conn.connection.cursor()
        cursor.execute(prepared.sql, arguments)
        rows = prepared.rows(cursor)
        cursor.close()
        return rows
    except BaseException as error:
        # SQLAlchemy's own handling, exactly: its exception classes,
        # handle_error listeners, invalidating the connection and the
        # pool's older connections on a disconnect, closing the cursor.
        conn._handle_dbapi_exception(error, prepared.sql, arguments, cursor, None)
        raise  # not reached: it always raises
