"""Our Alembic revisions build exactly the tables the models describe, and
join an app's own Flask-Migrate history through ``flask ropc migration``:
the plain ``flask db`` commands then never write the app's revisions into
our package, never have two heads, and never touch the app's tables when
ours are removed."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import flask
import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_sqlalchemy import SQLAlchemy

import flask_ropc.migrations
from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import hashing
from flask_ropc.models import new_tables

from conftest import PG_URL
from conftest import SECRET_KEY
from conftest import basic_auth
from conftest import password_form


@pytest.fixture(autouse=True)
def _keep_logging_configuration() -> t.Iterator[None]:
    """Flask-Migrate's env.py calls logging.config.fileConfig, which disables
    every existing logger (ours included) and replaces the root handlers;
    put everything back so later tests still see our log records."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    disabled = {logger.name: logger.disabled for logger in loggers}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = disabled.get(logger.name, False)


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[str]:
    """A database with no tables at all: a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    assert PG_URL is not None
    admin_url = sa.make_url(PG_URL).set(drivername="postgresql+psycopg")
    name = "ropc_migrate_" + secrets.token_hex(5)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


WORKTREE = Path(__file__).resolve().parent.parent

APP_SOURCE = textwrap.dedent(
    """
    import os

    import flask
    import flask_migrate
    from flask_sqlalchemy import SQLAlchemy

    import flask_ropc.migrations
    from flask_ropc import ROPC

    app = flask.Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["APP_DATABASE_URL"]
    app.config["SECRET_KEY"] = "a-test-only-secret-key-of-enough-length"
    db = SQLAlchemy(app)


    class User(db.Model):
        __tablename__ = "users"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)


    ropc = ROPC(app, db=db)
    migrate = flask_migrate.Migrate(app, db)
    migrate.configure(flask_ropc.migrations.configure)
    """
)


def _app_with_migrate(
    uri: str, directory: Path
) -> tuple[flask.Flask, SQLAlchemy, ROPC]:
    app = flask.Flask("migrated_app", instance_path=str(directory / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    app.config["SECRET_KEY"] = SECRET_KEY
    db = SQLAlchemy()
    db.init_app(app)
    ropc = ROPC(app, db=db)
    ropc.password_validator(
        lambda req: GrantResult.success("user-1") if req.password == "pw" else None
    )
    migrate = flask_migrate.Migrate(app, db, directory=str(directory / "migrations"))
    migrate.configure(flask_ropc.migrations.configure)
    return app, db, ropc


class FlaskCommand:
    """The real ``flask`` command on the app above, run in ``tmp_path``."""

    def __init__(self, directory: Path, uri: str) -> None:
        (directory / "myapp.py").write_text(APP_SOURCE, "utf-8")
        self.directory = directory
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(WORKTREE), str(directory)]),
            "FLASK_APP": "myapp",
            "APP_DATABASE_URL": uri,
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }

    def __call__(self, *args: str, ok: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = result.stdout + result.stderr
        assert (result.returncode == 0) == ok, output
        return output


def _files(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.py")}


def _our_differences(uri: str) -> list[t.Any]:
    """What autogenerate finds between the database and our models only."""
    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": lambda name, type_, parents: (
                        type_ != "table" or name in flask_ropc.migrations.TABLES
                    ),
                },
            )
            metadata = new_tables().clients.metadata
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _table_names(uri: str) -> set[str]:
    engine = sa.create_engine(uri)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_documented_flask_db_commands_keep_the_apps_tables(
    empty_database: str, tmp_path: Path
) -> None:
    """docs/deploying.md, command by command, with an app that has a model."""
    flask_cmd = FlaskCommand(tmp_path, empty_database)
    versions = tmp_path / "migrations" / "versions"
    ours_before = _files(Path(flask_ropc.migrations.VERSIONS_DIR))

    flask_cmd("db", "init")
    flask_cmd("ropc", "migration")
    ropc_files = _files(versions)
    assert len(ropc_files) == len(flask_ropc.migrations.templates())
    assert all("_flask_ropc_" in name for name in ropc_files)
    flask_cmd("db", "upgrade")
    assert "ropc_clients" in _table_names(empty_database)

    # The app's own first revision goes into the app's folder, holds the
    # app's table only, and follows ours: one head.
    flask_cmd("db", "migrate", "-m", "users")
    app_files = _files(versions) - ropc_files
    assert len(app_files) == 1
    app_revision = (versions / next(iter(app_files))).read_text("utf-8")
    assert (
        "'users'" in app_revision
        and "ropc_" not in app_revision.split("def upgrade", 1)[1]
    )
    assert _files(Path(flask_ropc.migrations.VERSIONS_DIR)) == ours_before
    flask_cmd("db", "upgrade")
    assert "No changes in schema detected" in flask_cmd("db", "migrate")
    flask_cmd("db", "check")
    assert _our_differences(empty_database) == []
    # Nothing to add the second time.
    assert "already in the migration history" in flask_cmd("ropc", "migration")

    engine = sa.create_engine(empty_database)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, name) VALUES (1, 'ann')"))
    engine.dispose()

    # Removing our tables is a revision of its own; the app's table and row
    # stay, and autogenerate neither re-creates ours nor drops anything.
    flask_cmd("ropc", "migration", "--remove")
    flask_cmd("db", "upgrade")
    tables = _table_names(empty_database)
    assert "users" in tables
    assert not {name for name in tables if name.startswith("ropc_")}
    engine = sa.create_engine(empty_database)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM users")).scalars().all() == [
            "ann"
        ]
    engine.dispose()
    flask_cmd("db", "check")
    assert "No changes in schema detected" in flask_cmd("db", "migrate")

    # Downgrading the removal brings our tables back, still with one head.
    flask_cmd("db", "downgrade")
    assert {"users", "ropc_clients"} <= _table_names(empty_database)
    assert _our_differences(empty_database) == []
    assert flask_cmd("db", "heads").count("(head)") == 1


def test_migrated_database_serves_tokens(empty_database: str, tmp_path: Path) -> None:
    app, db, ropc = _app_with_migrate(empty_database, tmp_path)
    runner = app.test_cli_runner()
    with app.app_context():
        flask_migrate.init(directory=str(tmp_path / "migrations"))
    result = runner.invoke(args=["ropc", "migration"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        flask_migrate.upgrade(directory=str(tmp_path / "migrations"))
        client, secret = ropc.clients.create("Migrated", scopes=["api"])
        db.engine.dispose()
    assert secret is not None
    form = password_form()
    form["password"] = "pw"
    response = app.test_client().post(
        "/oauth/token", data=form, headers=basic_auth(client.client_id, secret)
    )
    assert response.status_code == 200, response.json
    with app.app_context():
        db.engine.dispose()


def test_migration_needs_flask_db_init_first(tmp_path: Path) -> None:
    app, _, _ = _app_with_migrate(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path)
    result = app.test_cli_runner().invoke(args=["ropc", "migration"])
    assert result.exit_code == 1
    assert "flask db init" in result.output


def _insert_old_client(uri: str, client_id: str, method: str, secret: str) -> None:
    """A client row as releases before the auth-method list wrote it (SQL on
    purpose, with the internal ``hashing.digest``: the old code is gone)."""
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ropc_clients (client_id, name, secret_digest, "
                "token_endpoint_auth_method, scopes, grant_types, enabled, "
                "is_resource_server, trusted_backend, password_grant_count, "
                "created_at) VALUES (:cid, 'Old', :digest, :method, 'api', "
                "'password', true, false, false, 0, 1)"
            ),
            {"cid": client_id, "digest": hashing.digest(secret), "method": method},
        )
    engine.dispose()


@pytest.mark.parametrize("upgrade", ["init-db", "alembic"])
def test_an_old_database_upgrades_and_old_basic_clients_accept_both(
    empty_database: str, tmp_path: Path, upgrade: str
) -> None:
    """A database from before the auth-method list, upgraded by ``flask ropc
    init-db`` or by our next revision: the old default (basic) then accepts
    the body too; a client that chose client_secret_post keeps its choice."""
    app, db, _ = _app_with_migrate(empty_database, tmp_path)
    runner = app.test_cli_runner()
    directory = str(tmp_path / "migrations")
    if upgrade == "init-db":
        assert runner.invoke(args=["ropc", "init-db"]).exit_code == 0
        engine = sa.create_engine(empty_database)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "ALTER TABLE ropc_clients DROP COLUMN token_endpoint_auth_methods"
                )
            )
        engine.dispose()
    else:
        with app.app_context():
            flask_migrate.init(directory=directory)
        assert runner.invoke(args=["ropc", "migration"]).exit_code == 0
        first = next((tmp_path / "migrations" / "versions").glob("ropc_0001_*.py"))
        with app.app_context():
            flask_migrate.upgrade(directory=directory, revision=first.name[:18])
    secret = "s" * 32
    _insert_old_client(empty_database, "old-basic", "client_secret_basic", secret)
    _insert_old_client(empty_database, "old-post", "client_secret_post", secret)
    if upgrade == "init-db":
        result = runner.invoke(args=["ropc", "init-db"])
        assert result.exit_code == 0, result.output
    else:
        with app.app_context():
            flask_migrate.upgrade(directory=directory)
    http = app.test_client()
    form = {**password_form(), "password": "pw"}

    def body(client_id: str) -> int:
        data = {**form, "client_id": client_id, "client_secret": secret}
        return http.post("/oauth/token", data=data).status_code

    def basic(client_id: str) -> int:
        headers = basic_auth(client_id, secret)
        return http.post("/oauth/token", data=form, headers=headers).status_code

    assert (body("old-basic"), basic("old-basic")) == (200, 200)
    assert (body("old-post"), basic("old-post")) == (200, 401)
    with app.app_context():
        db.engine.dispose()


def test_the_dpop_nonce_revision_upgrades_and_downgrades(
    empty_database: str, tmp_path: Path
) -> None:
    """Revision 0006 adds ``ropc_clients.dpop_nonce`` and its downgrade
    drops it again, keeping the clients (who then follow ROPC_DPOP_NONCE)."""
    app, db, ropc = _app_with_migrate(empty_database, tmp_path)
    directory = str(tmp_path / "migrations")
    with app.app_context():
        flask_migrate.init(directory=directory)
    assert app.test_cli_runner().invoke(args=["ropc", "migration"]).exit_code == 0
    written = (tmp_path / "migrations" / "versions").glob("ropc_0006_*.py")
    nonce_revision = next(written).name[:18]

    def columns() -> set[str]:
        engine = sa.create_engine(empty_database)
        try:
            found = sa.inspect(engine).get_columns("ropc_clients")
            return {column["name"] for column in found}
        finally:
            engine.dispose()

    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        client, _ = ropc.clients.create("App", dpop_nonce="required")
        db.engine.dispose()
    assert "dpop_nonce" in columns()
    with app.app_context():
        # Down to just before 0006, whatever revisions come between.
        flask_migrate.downgrade(directory=directory, revision=f"{nonce_revision}-1")
        db.engine.dispose()
    assert "dpop_nonce" not in columns() and "dpop" in columns()
    engine = sa.create_engine(empty_database)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM ropc_clients")).scalars()
        assert list(names) == ["App"]
    engine.dispose()
    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        assert ropc.clients.require(client.client_id).dpop_nonce == "default"
        db.engine.dispose()
    assert _our_differences(empty_database) == []


def test_the_auth_context_revision_upgrades_and_downgrades(
    empty_database: str, tmp_path: Path
) -> None:
    """Revision 0007 adds amr/acr (both token tables) and auth_time (access
    tokens); its downgrade drops them, keeping the tokens; upgraded again,
    the old rows read as a password login."""
    app, db, ropc = _app_with_migrate(empty_database, tmp_path)
    directory = str(tmp_path / "migrations")
    with app.app_context():
        flask_migrate.init(directory=directory)
    assert app.test_cli_runner().invoke(args=["ropc", "migration"]).exit_code == 0
    written = (tmp_path / "migrations" / "versions").glob("ropc_0007_*.py")
    context_revision = next(written).name[:18]

    def columns(table: str) -> set[str]:
        engine = sa.create_engine(empty_database)
        try:
            return {column["name"] for column in sa.inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        client, secret = ropc.clients.create(
            "App", scopes=["api"], grant_types=["password", "refresh_token"]
        )
        db.engine.dispose()
    assert secret is not None
    assert {"amr", "acr", "auth_time"} <= columns("ropc_access_tokens")
    assert {"amr", "acr"} <= columns("ropc_refresh_tokens")
    http = app.test_client()
    form = {**password_form(), "password": "pw", "scope": "api offline_access"}
    login = http.post(
        "/oauth/token", data=form, headers=basic_auth(client.client_id, secret)
    )
    assert login.status_code == 200, login.json
    with app.app_context():
        flask_migrate.downgrade(directory=directory, revision=f"{context_revision}-1")
        db.engine.dispose()
    assert not {"amr", "acr", "auth_time"} & columns("ropc_access_tokens")
    assert not {"amr", "acr"} & columns("ropc_refresh_tokens")
    assert "dpop_nonce" in columns("ropc_clients")
    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        db.engine.dispose()
    assert _our_differences(empty_database) == []
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": login.json["refresh_token"],
    }
    refreshed = http.post(
        "/oauth/token", data=refresh, headers=basic_auth(client.client_id, secret)
    )
    assert refreshed.status_code == 200, refreshed.json
    info = http.post(
        "/oauth/introspect",
        data={"token": refreshed.json["access_token"]},
        headers=basic_auth(client.client_id, secret),
    ).json
    assert (info["amr"], info["acr"]) == (["pwd"], "urn:flask-ropc:acr:pwd")
    with app.app_context():
        db.engine.dispose()


def test_the_mfa_revision_creates_and_drops_only_its_tables(
    empty_database: str, tmp_path: Path
) -> None:
    """Revision 0008 adds ``ropc_mfa_tokens`` and ``ropc_mfa_steps``; its
    downgrade drops them and nothing else."""
    app, db, ropc = _app_with_migrate(empty_database, tmp_path)
    directory = str(tmp_path / "migrations")
    with app.app_context():
        flask_migrate.init(directory=directory)
    assert app.test_cli_runner().invoke(args=["ropc", "migration"]).exit_code == 0
    written = (tmp_path / "migrations" / "versions").glob("ropc_0008_*.py")
    mfa_revision = next(written).name[:18]

    def tables() -> set[str]:
        engine = sa.create_engine(empty_database)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        ropc.clients.create("App")
        db.engine.dispose()
    assert {"ropc_mfa_tokens", "ropc_mfa_steps"} <= tables()
    assert _our_differences(empty_database) == []
    with app.app_context():
        flask_migrate.downgrade(directory=directory, revision=f"{mfa_revision}-1")
        db.engine.dispose()
    assert not {"ropc_mfa_tokens", "ropc_mfa_steps"} & tables()
    assert "ropc_clients" in tables()
    with app.app_context():
        flask_migrate.upgrade(directory=directory)
        assert [c.name for c in ropc.clients.list()] == ["App"]
        db.engine.dispose()
    assert _our_differences(empty_database) == []
