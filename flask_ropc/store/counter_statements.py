"""Statements of the throttle counters, built once per dialect and size.

:func:`incr` is the reservation's upsert on either database, its parameters
from :func:`incr_params`. PostgreSQL runs data-modifying statements inside
``WITH``, all on one snapshot, which lets two steps of
:class:`~.counters.DatabaseCounters` that are separate statements elsewhere
travel as one round trip: the reservation with the read before it
(:func:`reserve`), and a success's settlement, lock, clear and release
(:func:`settle`). SQLite has no data-modifying ``WITH``, and its in-process
round trips cost nothing. Imports :mod:`.locking` and
:func:`.database.upsert_insert` only.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from .database import upsert_insert
from .locking import locking_select

#: PostgreSQL's "C" collation orders strings as Python sorts them (by code
#: point), which is how DatabaseCounters.incr_many lists its rows; the
#: database's default collation may order them otherwise.
PYTHON_ORDER = "C"


def incr(table: sa.Table, dialect: str, size: int) -> t.Any:
    """``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` for ``size`` keys
    (``:k0``, ``:until0``..., ``:amount``, ``:now``).

    One statement reserves every budget of an attempt: one round trip
    and one commit, however many budgets there are.
    """
    insert = upsert_insert(dialect)
    now: t.Any = sa.bindparam("now")
    amount: t.Any = sa.bindparam("amount")
    rows = [
        {
            "key": sa.bindparam(f"k{n}"),
            "count": amount,
            "expires_at": sa.bindparam(f"until{n}"),
        }
        for n in range(size)
    ]
    statement = insert(table).values(rows)
    expired = table.c.expires_at <= now
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "count": sa.case(
                (expired, statement.excluded.count),
                else_=table.c.count + statement.excluded.count,
            ),
            "expires_at": sa.case(
                (expired, statement.excluded.expires_at),
                else_=table.c.expires_at,
            ),
        },
    ).returning(table.c.key, table.c.count, table.c.expires_at)
    # SQLAlchemy does not cache the compilation of multi-row VALUES (it
    # would recompile on every call, ~0.25 ms); the same SQL as text is
    # compiled once and cached like any other statement. The driver-neutral
    # dialect renders no driver casts (which text() would misread as bind
    # names).
    named = (PGDialect if dialect == "postgresql" else SQLiteDialect)(
        paramstyle="named"
    )
    return sa.text(str(statement.compile(dialect=named))).columns(
        table.c.key, table.c.count, table.c.expires_at
    )


def incr_params(
    items: t.Sequence[tuple[str, int]], now: float, amount: int
) -> dict[str, t.Any]:
    """:func:`incr`'s parameters for ``(key, expiry)`` pairs at ``now``.

    The rows are listed in key order, so PostgreSQL locks them in key
    order (see :class:`~.counters.DatabaseCounters`).
    """
    params: dict[str, t.Any] = {"amount": amount, "now": now}
    for n, (key, expiry) in enumerate(sorted(items)):
        params[f"k{n}"] = key
        params[f"until{n}"] = now + expiry
    return params


def reserve(table: sa.Table, reads: int, upsert_sql: str) -> t.Any:
    """The read of ``reads`` keys (``:key0``...) and the upsert ``upsert_sql``
    (``RETURNING key, count, expires_at``) as one statement.

    Rows come back as ``(part, key, count, expires_at)``: part 0 the
    upsert's counts, part 1 the live values read and their expiries, as
    they were before the
    upsert (every part of a statement sees one snapshot).
    """
    now: t.Any = sa.bindparam("now")
    seen = sa.select(table.c.key, table.c.count, table.c.expires_at).where(
        table.c.key.in_([sa.bindparam(f"key{n}") for n in range(reads)]),
        table.c.expires_at > now,
    )
    # The driver-neutral dialect renders no driver casts (see incr).
    named = PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]
    read_sql = str(seen.compile(dialect=named))
    # Both parts are our own compiled statements, no input.
    sql = (
        f"WITH seen AS ({read_sql}), counted AS ({upsert_sql}) "  # noqa: S608
        "SELECT 0 AS part, key, count, expires_at FROM counted "
        "UNION ALL SELECT 1, key, count, expires_at FROM seen"
    )
    return sa.text(sql).columns(
        sa.column("part", sa.Integer),
        table.c.key,
        table.c.count,
        table.c.expires_at,
    )


def settle(table: sa.Table, clear: int, release: int) -> t.Any:
    """A success's settlement as one statement: ``:c0``... cleared, ``:r0``...
    released (``count - 1`` where live and positive), ``:now``.

    ``WITH locked AS (SELECT key ... ORDER BY key FOR UPDATE), cleared AS
    (DELETE ... WHERE key IN locked) UPDATE ... WHERE key IN locked``: rows
    are locked in key order (as every writer of the table locks them) before
    either change touches them, since both only change rows ``locked`` has
    returned, and ``locked`` locks each row as it returns it. A row that
    appeared after the lock is left alone, as in the separate statements.
    """
    clear_keys: list[t.Any] = [sa.bindparam(f"c{n}") for n in range(clear)]
    release_keys: list[t.Any] = [sa.bindparam(f"r{n}") for n in range(release)]
    locked = locking_select(
        table.c.key,
        (table.c.key.in_([*clear_keys, *release_keys]),),
        collation=PYTHON_ORDER,
    ).cte("locked")
    mine = sa.select(locked.c.key)
    now: t.Any = sa.bindparam("now")
    statement = (
        table.update()
        .where(
            table.c.key.in_(mine),
            table.c.key.in_(release_keys),
            table.c.expires_at > now,
            table.c.count > 0,
        )
        .values(count=table.c.count - 1)
    )
    if clear:
        cleared = (
            table.delete()
            .where(table.c.key.in_(mine), table.c.key.in_(clear_keys))
            .cte("cleared")
        )
        statement = statement.add_cte(cleared)
    return statement
