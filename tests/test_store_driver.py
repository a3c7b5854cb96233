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

from flask_ropc.state import get_state
from flask_ropc.store.database import Database
from flask_ropc.store.driver import _sqlalchemy_must_run
from flask_ropc.store.engines import create_engine

from conftest import basic_auth
from conftest import password_form


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


def _insert(table: sa.Table) -> t.Any:
    return table.insert().values(key=sa.bindparam("k"), count=sa.bindparam("n"))


def test_begin_listeners_and_echo_see_the_statement(
    database: tuple[Database, sa.Table], caplog: pytest.LogCaptureFixture
) -> None:
    """An app's ``begin`` listener (per-transaction settings) and statement
    logging (``echo``, ``SQLALCHEMY_ECHO``) see our statements as before."""
    db, table = database
    begun: list[bool] = []

    def on_begin(conn: t.Any) -> None:
        begun.append(True)

    sa.event.listen(db.engine, "begin", on_begin)
    try:
        with db.autocommit() as conn:
            db.run(conn, sa.select(table.c.key), {})
    finally:
        sa.event.remove(db.engine, "begin", on_begin)
    assert begun == [True]
    db.engine.echo = True
    try:
        with caplog.at_level("INFO", logger="sqlalchemy.engine"):
            with db.begin() as conn:
                db.run(conn, _insert(table), {"k": "logged", "n": 1})
    finally:
        db.engine.echo = False
    assert any("INSERT INTO ropc_test_driver" in r.getMessage() for r in caplog.records)


def test_handle_error_listeners_see_a_failed_statement(
    database: tuple[Database, sa.Table],
) -> None:
    db, table = database
    seen: list[t.Any] = []

    def on_error(context: t.Any) -> None:
        seen.append(context.original_exception)

    with db.begin() as conn:
        db.run(conn, _insert(table), {"k": "a", "n": 1})
    sa.event.listen(db.engine, "handle_error", on_error)
    try:
        with pytest.raises(sa.exc.IntegrityError):
            with db.begin() as conn:
                db.run(conn, _insert(table), {"k": "a", "n": 2})
    finally:
        sa.event.remove(db.engine, "handle_error", on_error)
    assert len(seen) == 1


def test_a_schema_translate_map_is_honoured(database_uri: str) -> None:
    """Schema-per-tenant apps map our tables' schema on their engine."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("schemas are PostgreSQL's")
    engine = create_engine(database_uri)
    metadata = sa.MetaData()
    table = sa.Table("ropc_test_tenant", metadata, sa.Column("name", sa.Text))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS ropc_tenant CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA ropc_tenant"))
        for schema in ("public", "ropc_tenant"):
            conn.execute(sa.text(f"CREATE TABLE {schema}.ropc_test_tenant (name text)"))
            conn.execute(
                sa.text(f"INSERT INTO {schema}.ropc_test_tenant VALUES ('{schema}')")  # noqa: S608
            )
    tenant = sa.create_engine(
        database_uri, execution_options={"schema_translate_map": {None: "ropc_tenant"}}
    )
    db = Database(lambda: tenant, lambda: 0.0)
    try:
        with db.autocommit() as conn:
            rows = db.run(conn, sa.select(table.c.name), {})
        assert [row.name for row in rows] == ["ropc_tenant"]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE public.ropc_test_tenant"))
            conn.execute(sa.text("DROP SCHEMA ropc_tenant CASCADE"))
        tenant.dispose()
        engine.dispose()


def test_every_statement_of_a_login_and_refresh_runs_on_the_driver(
    app: t.Any, http: t.Any, make_client: t.Any
) -> None:
    """The hot path's statements need nothing of SQLAlchemy's execution (a
    column type or default that did would silently cost the saving)."""
    client = make_client(grant_types=["password", "refresh_token"])
    login = http.post(
        "/oauth/token",
        data=password_form(scope="api offline_access"),
        headers=basic_auth(*client),
    )
    assert login.status_code == 200
    refresh = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": login.json["refresh_token"],
        },
        headers=basic_auth(*client),
    )
    assert refresh.status_code == 200
    me = http.get(
        "/api/me", headers={"Authorization": f"Bearer {refresh.json['access_token']}"}
    )
    assert me.status_code == 200
    with app.app_context():
        # Internal on purpose: what was compiled, and whether it may run plain.
        database = get_state(app).store.db
        prepared = list(database._runner._prepared.values())
        with database.autocommit() as conn:
            # Nothing of ours listens to the engine's events or logs SQL.
            assert not _sqlalchemy_must_run(conn)
    assert len(prepared) >= 6
    assert [p.sql for p in prepared if not p.eligible] == []


def test_a_lost_connection_invalidates_the_pools_older_ones(database_uri: str) -> None:
    """On an engine without pre-ping (Flask-SQLAlchemy's default), a
    statement that finds its server process gone fails once, as a
    disconnect, and the pool drops its other connections of that age too:
    the next statement gets a new connection instead of failing again."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("server processes are PostgreSQL's")
    engine = sa.create_engine(database_uri, pool_size=3, hide_parameters=True)
    db = Database(lambda: engine, lambda: 0.0)
    read = sa.select(sa.literal_column("1").label("one"))
    try:
        held = [engine.connect() for _ in range(3)]
        pids = [conn.connection.dbapi_connection.info.backend_pid for conn in held]
        for conn in held:
            conn.close()
        admin = sa.create_engine(database_uri, poolclass=sa.pool.NullPool)
        with admin.connect() as other:
            for pid in pids:
                other.execute(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                )
        with pytest.raises(sa.exc.OperationalError) as lost:
            with db.autocommit() as conn:
                db.run(conn, read, {})
        assert lost.value.connection_invalidated
        for _ in range(3):
            with db.autocommit() as conn:
                assert db.run(conn, read, {}).first().one == 1
    finally:
        engine.dispose()
