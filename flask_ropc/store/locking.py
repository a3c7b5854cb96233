"""Row locks taken in one order per table, so that PostgreSQL writers cannot
deadlock.

PostgreSQL locks the rows an UPDATE or DELETE changes in the order its scan
meets them, which need not be any particular order. Two statements (or
transactions) that change overlapping rows in different orders can each wait
for the other, and PostgreSQL aborts one of them as a deadlock. So every
statement that changes several rows first locks them with ``SELECT ... ORDER
BY ... FOR UPDATE``, in the one order every writer of that table uses: by id
for tokens, by key for throttle counters. SQLAlchemy has no option for this,
hence the helper. SQLite has one writer at a time and needs none of it.
Imports nothing of ours.
"""

from __future__ import annotations

import typing as t

import sqlalchemy as sa


def in_lock_order(
    dialect: str,
    column: t.Any,
    where: tuple[t.Any, ...],
    *,
    collation: str | None = None,
) -> tuple[t.Any, ...]:
    """``where`` for an UPDATE or DELETE that first locks its rows in
    ``column`` order (compared under ``collation``, if given).

    On other databases than PostgreSQL, ``where`` unchanged. The conditions
    are repeated outside the locking sub-select, so that a row changed while
    we waited for its lock is judged by its new values.
    """
    if dialect != "postgresql":
        return where
    return (column.in_(locking_select(column, where, collation=collation)), *where)


def locking_select(
    column: t.Any, where: tuple[t.Any, ...], *, collation: str | None = None
) -> t.Any:
    """``SELECT column ... WHERE where ORDER BY column FOR UPDATE``."""
    order = column.collate(collation) if collation else column
    return sa.select(column).where(*where).order_by(order).with_for_update()


def in_id_order(
    conn: sa.Connection, table: sa.Table, where: tuple[t.Any, ...]
) -> tuple[t.Any, ...]:
    """``where`` for an UPDATE or DELETE of token rows that first locks them in
    id order, the order every writer of several token rows uses."""
    return in_lock_order(conn.dialect.name, table.c.id, where)
