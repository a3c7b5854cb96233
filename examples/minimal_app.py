"""The smallest Flask-ROPC server: users in memory, clients in SQLite.

Run it with ``python examples/minimal_app.py`` (or ``bash scripts/serve-example``).
On start it creates its tables in ``instance/ropc.sqlite3`` (next to
``examples/``), makes sure an "Example app" client exists, gives it a fresh
secret and prints a ``curl`` command that gets a token. Set ``PORT`` to use
another port than 5000, ``SECRET_KEY`` to choose the app's secret (else one is
made on the first run and kept in ``instance/secret_key``).

``flask --app examples/minimal_app.py ropc ...`` manages the same database:
the app names its instance folder itself, so the file is the same whichever
way, and from whichever directory, the example is started.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import PasswordRequest
from flask_ropc import current_token


def instance_secret(app: Flask) -> str:
    """A SECRET_KEY kept in the instance folder, made on the first run.

    It must not change between runs: it also encrypts the signing keys that
    Flask-ROPC keeps in the database. In production set ``SECRET_KEY``.
    """
    path = os.path.join(app.instance_path, "secret_key")
    os.makedirs(app.instance_path, exist_ok=True)
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
    with open(path) as file:
        return file.read().strip()


#: username -> (user id, password hash, role). A real app reads its database.
USERS = {
    "ann": ("1", generate_password_hash("correct horse battery staple"), "admin"),
    "bob": ("2", generate_password_hash("hunter2-but-longer"), "member"),
}
# Checked when the username is unknown, so that a wrong username costs as much
# time as a wrong password and response times do not reveal who exists.
DUMMY_HASH = generate_password_hash("not a real password")

# Flask would derive the instance folder from how the module was loaded: the
# working directory for ``python examples/minimal_app.py``, ``examples/`` for
# ``flask --app examples/minimal_app.py``. One explicit place instead.
INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"

app = Flask(__name__, instance_path=str(INSTANCE_PATH))
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or instance_secret(app)
ropc = ROPC(app)


@ropc.password_validator
def check_password(req: PasswordRequest) -> GrantResult | None:
    """Return the user's id for a right password, ``None`` otherwise."""
    user = USERS.get(req.username.strip().lower())
    if user is None:
        check_password_hash(DUMMY_HASH, req.password)
        return None
    user_id, password_hash, role = user
    if not check_password_hash(password_hash, req.password):
        return None
    return GrantResult.success(
        subject=user_id, claims={"role": role}, extra={"display_name": req.username}
    )


@app.get("/api/me")
@ropc.require_token("api")
def me() -> dict[str, object]:
    """A protected route: who is calling, with which scopes."""
    return {
        "sub": current_token.subject,
        "client_id": current_token.client_id,
        "scopes": list(current_token.scopes),
        "role": current_token.claims.get("role"),
    }


def prepare_example_client() -> tuple[str, str]:
    """Create the tables and the example client; return its id and new secret."""
    with app.app_context():
        ropc.create_all()
        existing = [c for c in ropc.clients.list() if c.name == "Example app"]
        if existing:
            client, secret = ropc.clients.rotate_secret(existing[0].client_id)
        else:
            client, plain = ropc.clients.create("Example app", scopes=["api"])
            assert plain is not None
            secret = plain
        return client.client_id, secret


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    client_id, secret = prepare_example_client()
    print("Flask-ROPC example server. Get a token with:\n")
    print(
        f"  curl -s -u '{client_id}:{secret}' "
        "-d grant_type=password -d username=ann "
        "--data-urlencode 'password=correct horse battery staple' -d scope=api "
        f"http://127.0.0.1:{port}/oauth/token\n"
    )
    print(
        "then call the protected route with:\n\n"
        "  curl -s -H 'Authorization: Bearer ACCESS_TOKEN' "
        f"http://127.0.0.1:{port}/api/me\n",
        flush=True,
    )
    app.run(host="127.0.0.1", port=port)
