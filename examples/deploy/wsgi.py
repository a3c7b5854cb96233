"""A production-shaped Flask-ROPC server, configured from the environment.

Run several instances behind a TLS-terminating proxy, sharing PostgreSQL and
Redis; ``gunicorn.conf.py`` beside this file sets the workers::

    export DATABASE_URL=postgresql+psycopg://app@db.internal/auth
    export REDIS_URL=redis://redis.internal:6379/0
    export ROPC_ISSUER=https://auth.example.com
    export ROPC_SIGNING_KEY="$(cat /run/secrets/ropc-signing-key.pem)"
    # or, for keys kept (encrypted) in the database, one secret for all:
    # export SECRET_KEY="$(cat /run/secrets/flask-secret-key)"
    flask --app examples.deploy.wsgi ropc init-db      # or your migrations
    gunicorn -c examples/deploy/gunicorn.conf.py examples.deploy.wsgi:app

Every instance must share the signing key, the issuer, the database and the
throttling store: then any instance validates any other's tokens, detects
reuse of a refresh token rotated elsewhere, and counts failed passwords
together.
"""

from __future__ import annotations

import json
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import PasswordRequest
from flask_ropc import current_token

# A stand-in for the app's user store: username -> (id, password hash).
USERS = {
    "ann": ("1", generate_password_hash("correct horse battery staple")),
}
DUMMY_HASH = generate_password_hash("timing equaliser")


def create_app() -> Flask:
    """Build the app from environment variables (see the module docstring)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY"),
        ROPC_DATABASE_URI=os.environ["DATABASE_URL"],
        ROPC_ISSUER=os.environ["ROPC_ISSUER"],
        ROPC_RATELIMIT_STORAGE_URI=os.environ.get("REDIS_URL"),
        ROPC_RATELIMIT_KEY_PREFIX=os.environ.get("ROPC_RATELIMIT_KEY_PREFIX", "ropc"),
    )
    if "ROPC_SIGNING_KEY" in os.environ:
        app.config["ROPC_SIGNING_KEYS"] = [os.environ["ROPC_SIGNING_KEY"]]
    # Any other ROPC_* setting may come from the environment too, as JSON
    # (ROPC_THROTTLE_IP_LIMIT=500) or as a plain string.
    for key, value in os.environ.items():
        if (
            key.startswith("ROPC_")
            and key not in app.config
            and key != "ROPC_SIGNING_KEY"
        ):
            try:
                app.config[key] = json.loads(value)
            except ValueError:
                app.config[key] = value
    # One trusted proxy in front sets X-Forwarded-For/-Proto/-Host; without
    # it the HTTPS check and the per-IP throttling would see the proxy.
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=1, x_proto=1, x_host=1
    )
    ropc = ROPC(app)

    @ropc.password_validator
    def check(req: PasswordRequest) -> GrantResult | None:
        user = USERS.get(req.username.strip().lower())
        if user is None:
            check_password_hash(DUMMY_HASH, req.password)
            return None
        if not check_password_hash(user[1], req.password):
            return None
        return GrantResult.success(subject=user[0])

    @app.get("/api/me")
    @ropc.require_token("api")
    def me() -> dict[str, object]:
        return {"sub": current_token.subject, "scopes": list(current_token.scopes)}

    return app


app = create_app()
