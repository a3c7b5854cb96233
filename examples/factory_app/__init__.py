"""An app-factory example: the app's own Flask-SQLAlchemy ``User`` model.

Flask-ROPC is given the app's ``db``, so its tables live in the same database
and metadata as ``User`` (and the app's migrations see them). Passwords are
hashed with Werkzeug (scrypt). Try it::

    export FLASK_APP=examples.factory_app
    export FLASK_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_hex())')"
    flask create-user ann         # creates the users table, asks a password
    flask ropc init-db            # creates the ropc_* tables beside it
    flask ropc create-client "Desktop tool" --scope "api"
    flask run
"""

from __future__ import annotations

import typing as t

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import PasswordRequest
from flask_ropc import current_token


class Base(DeclarativeBase):
    """The app's declarative base."""


db = SQLAlchemy(model_class=Base)
ropc = ROPC(db=db)

# Verified when the username is unknown, so that response times do not reveal
# which usernames exist (the validator owns user-enumeration timing).
_DUMMY_HASH = generate_password_hash("dummy password for timing")


class User(db.Model):  # type: ignore[name-defined,misc]
    """An account of the app."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(40), default="member")
    active: Mapped[bool] = mapped_column(default=True)

    def set_password(self, password: str) -> None:
        """Store a salted, slow hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def verify(self, password: str) -> bool:
        """Check ``password`` against the stored hash."""
        return check_password_hash(self.password_hash, password)


@ropc.password_validator
def check_password(req: PasswordRequest) -> GrantResult | None:
    """Look the user up by normalised username and verify the password."""
    username = req.username.strip().lower()
    user = db.session.execute(
        db.select(User).filter_by(username=username)
    ).scalar_one_or_none()
    if user is None:
        check_password_hash(_DUMMY_HASH, req.password)
        return None
    if not user.verify(req.password):
        return None
    if not user.active:
        return GrantResult.error("invalid_grant", "The account is disabled.")
    return GrantResult.success(subject=str(user.id), claims={"role": user.role})


def create_app(config: t.Mapping[str, t.Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the defaults (e.g. in tests)."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///factory_app.sqlite3"
    # FLASK_SECRET_KEY: Flask's sessions and the encryption of signing keys.
    app.config.from_prefixed_env()
    app.config.update(config or {})
    db.init_app(app)
    ropc.init_app(app)

    @app.get("/api/profile")
    @ropc.require_token("api")
    def profile() -> t.Any:
        user = db.session.get(User, int(current_token.subject))
        if user is None:
            return {"error": "user not found"}, 404
        return {"username": user.username, "role": user.role}

    @app.cli.command("create-user")
    @click.argument("username")
    @click.password_option(help="The new user's password.")
    def create_user(username: str, password: str) -> None:
        """Create a user who can log in with the password grant."""
        db.create_all()
        user = User(username=username.strip().lower())
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        click.echo(f"Created user {user.username} with id {user.id}.")

    return app
