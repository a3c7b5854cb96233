"""Building an app's :class:`~flask_ropc.store.Store`: which engine, which
tables, which key cipher.

Split from :mod:`~flask_ropc.extension` so that the extension reads as wiring.
Imports ``store``, ``models``, ``config``, ``key_encryption`` and leaves.
"""

from __future__ import annotations

import logging
import os
import typing as t

import flask

from .config import Settings
from .key_encryption import KeyCipher
from .models import new_tables
from .models import tables_for
from .store import Clock
from .store import Database
from .store import Store
from .store import Timeouts
from .store import create_engine

if t.TYPE_CHECKING:  # pragma: no cover
    from flask_sqlalchemy import SQLAlchemy

log = logging.getLogger("flask_ropc")


def build_store(
    app: flask.Flask, settings: Settings, db: SQLAlchemy | None, clock: Clock
) -> Store:
    """The store of one app: on the Flask-SQLAlchemy ``db`` (passed, or
    registered on the app) unless ``ROPC_DATABASE_URI`` is set, else an engine
    of our own on that URI, ``SQLALCHEMY_DATABASE_URI`` or an SQLite file in
    the instance folder; private keys encrypted when a secret is configured."""
    cipher = None
    if settings.key_encryption_keys or settings.secret_keys:
        cipher = KeyCipher(settings.key_encryption_keys, settings.secret_keys)
    if settings.stores_plaintext_keys:  # only with ROPC_ALLOW_PLAINTEXT_KEYS
        log.warning(
            "ROPC_ALLOW_PLAINTEXT_KEYS is on: private signing keys are "
            "stored in the database unencrypted. Set SECRET_KEY or "
            "ROPC_KEY_ENCRYPTION_KEYS to encrypt them, then run "
            "'flask ropc keys encrypt'."
        )
    timeouts = Timeouts(
        settings.database_lock_timeout, settings.database_statement_timeout
    )
    db = db if db is not None else app.extensions.get("sqlalchemy")
    if db is not None and settings.database_uri is None:
        # Flask-SQLAlchemy looks its engine up per app context.
        database = Database(lambda: db.engine, clock, timeouts=timeouts)
        return Store(database, tables_for(db.metadata), cipher)
    uri = (
        settings.database_uri
        or app.config.get("SQLALCHEMY_DATABASE_URI")
        or _instance_sqlite_uri(app)
    )
    engine = create_engine(uri, timeouts)
    database = Database(lambda: engine, clock, engine, timeouts)
    return Store(database, new_tables(), cipher)


def _instance_sqlite_uri(app: flask.Flask) -> str:
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "ropc.sqlite3")
