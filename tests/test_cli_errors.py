"""Database failures in ``flask ropc`` commands: the driver's own message,
the database named with its password hidden, and the init-db hint only
when our tables are missing.

Through Flask's CLI runner against real failures: a closed port, a database
and a user that do not exist on the real PostgreSQL, an SQLite file in a
directory that does not exist, and tables that were dropped.
"""

from __future__ import annotations

import os
import pathlib
import socket
import typing as t
import urllib.parse
from collections.abc import Iterator

import flask
import pytest
import sqlalchemy as sa

from flask_ropc import ROPC

from conftest import PG_URL

PASSWORD = "pw:s3cr@t/Zq9"
QUOTED = urllib.parse.quote(PASSWORD, safe="")
HINT = "has 'flask ropc init-db' been run"
COMMANDS = [["init-db"], ["list-clients"], ["cleanup", "--json"], ["unlock", "ann"]]
needs_postgresql = pytest.mark.skipif(
    not PG_URL, reason="set ROPC_TEST_DATABASE_URL to run the PostgreSQL cases"
)


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pg_url(**changes: t.Any) -> str:
    """The test server's URL with a password and ``changes``."""
    assert PG_URL is not None
    url = sa.make_url(PG_URL).set(drivername="postgresql+psycopg", **changes)
    return url.set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.fixture
def run(tmp_path: pathlib.Path) -> Iterator[t.Callable[..., t.Any]]:
    """``run(uri, *args)``: ``flask ropc ARGS`` on an app whose database is ``uri``."""
    extensions: list[tuple[flask.Flask, ROPC]] = []

    def invoke(uri: str, *args: str) -> t.Any:
        app = flask.Flask("ropc_broken_db", instance_path=str(tmp_path / "instance"))
        app.config.update(
            ROPC_DATABASE_URI=uri, ROPC_ISSUER="https://cli.test", SECRET_KEY="k" * 32
        )
        ext = ROPC(app)
        extensions.append((app, ext))
        return app.test_cli_runner().invoke(args=["ropc", *args])

    yield invoke
    for app, ext in extensions:
        with app.app_context():
            ext.dispose()


def failure(result: t.Any) -> str:
    """The message of a command that failed cleanly, with no password in it."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for secret in (PASSWORD, QUOTED, "s3cr"):
        assert secret not in result.output
    return str(result.output)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_closed_port_shows_the_driver_message_and_no_password(
    run: t.Any, args: list[str]
) -> None:
    port = closed_port()
    uri = f"postgresql+psycopg://ropc:{QUOTED}@127.0.0.1:{port}/ropc"

    output = failure(run(uri, *args))

    assert "Connection refused" in output
    assert f"postgresql+psycopg://ropc:***@127.0.0.1:{port}/ropc" in output
    assert HINT not in output and "tables are missing" not in output


@needs_postgresql
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_wrong_database_name_says_it_does_not_exist(
    run: t.Any, args: list[str]
) -> None:
    output = failure(run(pg_url(database="ropc_no_such_database"), *args))

    assert 'database "ropc_no_such_database" does not exist' in output
    assert ":***@" in output
    assert HINT not in output


@needs_postgresql
def test_wrong_user_says_so(run: t.Any) -> None:
    output = failure(run(pg_url(username="ropc_no_such_user"), "init-db"))

    assert "ropc_no_such_user" in output
    assert "authentication failed" in output or "does not exist" in output
    assert HINT not in output


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_missing_sqlite_directory_is_named(
    run: t.Any, tmp_path: pathlib.Path, args: list[str]
) -> None:
    folder = tmp_path / "no" / "such" / "folder"

    output = failure(run(f"sqlite:///{folder}/ropc.sqlite3", *args))

    assert "unable to open database file" in output
    assert f"the directory {folder} does not exist" in output
    assert HINT not in output
    assert not folder.exists()


@pytest.fixture
def empty_database(database_uri: str, tmp_path: pathlib.Path) -> Iterator[str]:
    """A database without our tables, on the test's backend."""
    if database_uri.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    url = sa.make_url(database_uri)
    name = f"ropc_empty_{os.getpid()}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.mark.parametrize("args", COMMANDS[1:], ids=" ".join)
def test_missing_tables_name_init_db_and_the_driver_message(
    run: t.Any, empty_database: str, args: list[str]
) -> None:
    missing = "no such table" if empty_database.startswith("sqlite") else "does not"

    output = failure(run(empty_database, *args))

    assert "tables are missing" in output and "flask ropc init-db" in output
    assert missing in output
    repaired = run(empty_database, "init-db")
    assert repaired.exit_code == 0, repaired.output
    assert run(empty_database, *args).exit_code == 0
