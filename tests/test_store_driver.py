"""The hot path's statements on the DBAPI cursor (``store/driver.py``).

They must mean exactly what SQLAlchemy's ``execute`` would: the values a
statement carries itself, an ``INSERT``'s column defaults, rows by name and
``rowcount``, SQLAlchemy's own exceptions, and SQLAlchemy itself as soon
as someone listens to the cursor events. Run on the test's database (a
SQLite file, or PostgreSQL when ``ROPC_TEST_DATABASE_URL`` is set).
"""

from __future__ import annotations

import typing as t

import pytest
import sqlalchemy as sa

from flask_ropc.store.database import Database
from flask_ropc.store.database import create_engine


@pytest.fixture
def database(database_uri: str) -> t.Iterator[tuple[Database, sa.Table]]:
    engine = create_engine(database_uri)
    metadata = sa.MetaData()
    table = sa.Table(
        "ropc_test_driver",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(32), nullable=False, unique=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("note", sa.String(32), nullable=False, default="none"),
        sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        yield Database(lambda: engine, lambda: 0.0, engine), table
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_defaults_literals_rows_and_rowcount_as_sqlalchemy_gives_them(
    database: tuple[Database, sa.Table],
) -> None:
    db, table = database
    insert = table.insert().values(key=sa.bindparam("k"), count=sa.bindparam("n"))
    less = (
        table.update()
        .where(table.c.count > sa.bindparam("floor"))
        .values(count=table.c.count - 1)
    )
    read = sa.select(table.c.key, table.c.count, table.c.note, table.c.enabled)
    with db.begin() as conn:
        for key, count in (("a", 1), ("b", 5), ("c", 7)):
            db.run(conn, insert, {"k": key, "n": count})
    with db.begin() as conn:
        # ``count - 1`` carries its 1 as a bound value of its own.
        assert db.run(conn, less, {"floor": 2}).rowcount == 2
    with db.autocommit() as conn:
        rows = db.run(conn, read.order_by(table.c.key), {})
    assert [(row.key, row.count, row.note, bool(row.enabled)) for row in rows] == [
        ("a", 1, "none", True),
        ("b", 4, "none", True),
        ("c", 6, "none", True),
    ]
    with db.autocommit() as conn:
        assert db.run(conn, read.where(table.c.key == "zzz"), {}).first() is None


def test_a_failed_statement_raises_sqlalchemys_error_and_rolls_back(
    database: tuple[Database, sa.Table],
) -> None:
    db, table = database
    insert = table.insert().values(key=sa.bindparam("k"), count=sa.bindparam("n"))
    with pytest.raises(sa.exc.IntegrityError) as raised:
        with db.begin() as conn:
            db.run(conn, insert, {"k": "a", "n": 1})
            db.run(conn, insert, {"k": "a", "n": 2})
    # Parameters are hidden from the message (they can hold token digests).
    assert "'a'" not in str(raised.value)
    with db.autocommit() as conn:
        assert (
            db.run(conn, sa.select(sa.func.count()).select_from(table), {})[0][0] == 0
        )


def test_with_a_cursor_event_listener_sqlalchemy_runs_the_statement(
    database: tuple[Database, sa.Table],
) -> None:
    """Tracing and query logs hook the cursor events: they must see ours."""
    db, table = database
    seen: list[str] = []

    def record(conn: t.Any, cursor: t.Any, statement: str, *_: t.Any) -> None:
        seen.append(statement)

    insert = table.insert().values(key=sa.bindparam("k"), count=sa.bindparam("n"))
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.begin() as conn:
            db.run(conn, insert, {"k": "a", "n": 1})
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    with db.begin() as conn:
        db.run(conn, insert, {"k": "b", "n": 2})
    assert len(seen) == 1 and seen[0].startswith("INSERT INTO ropc_test_driver")
    with db.autocommit() as conn:
        keys = [row.key for row in db.run(conn, sa.select(table.c.key), {})]
    assert sorted(keys) == ["a", "b"]
