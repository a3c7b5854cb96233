"""Our Alembic revisions build exactly the tables the models describe, and
join an app's own Flask-Migrate history as a branch of their own."""

from __future__ import annotations

import logging
import secrets
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
    migrate.configure(flask_ropc.migrations.add_version_location)
    return app, db, ropc


def test_upgrade_to_heads_matches_the_models(
    empty_database: str, tmp_path: Path
) -> None:
    """``flask db upgrade heads`` with our version location creates every
    table, column and index; autogenerate then finds nothing to change."""
    app, db, _ = _app_with_migrate(empty_database, tmp_path)
    with app.app_context():
        flask_migrate.init(directory=str(tmp_path / "migrations"))
        flask_migrate.upgrade(directory=str(tmp_path / "migrations"), revision="heads")
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, db.metadata)
            heads = context.get_current_heads()
        db.engine.dispose()
    assert differences == []
    assert heads == ("ropc_0001",)


def test_migrated_database_serves_tokens(empty_database: str, tmp_path: Path) -> None:
    app, db, ropc = _app_with_migrate(empty_database, tmp_path)
    with app.app_context():
        flask_migrate.init(directory=str(tmp_path / "migrations"))
        flask_migrate.upgrade(directory=str(tmp_path / "migrations"), revision="heads")
        client, secret = ropc.clients.create("Migrated", scopes=["api"])
    assert secret is not None
    form = password_form()
    form["password"] = "pw"
    response = app.test_client().post(
        "/oauth/token", data=form, headers=basic_auth(client.client_id, secret)
    )
    assert response.status_code == 200, response.json
    with app.app_context():
        flask_migrate.downgrade(
            directory=str(tmp_path / "migrations"), revision="flask_ropc@base"
        )
        remaining = set(sa.inspect(db.engine).get_table_names())
        db.engine.dispose()
    assert not {name for name in remaining if name.startswith("ropc_")}
