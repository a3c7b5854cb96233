"""The WSGI app of the live signing key tests (``test_first_key.py``).

Served by gunicorn as ``keys_server:create_app()`` (``tests/`` on the path);
configured by the environment:

``ROPC_SERVER_DATABASE_URI``  the database (tables must exist)
``SECRET_KEY``                the app's secret (encrypts the stored keys)
``ROPC_SIGNING_ALG``          the algorithm of the keys it generates
``ROPC_SERVER_READY_DIR``     each worker creates a file named by its pid
                              here once its app is loaded

Every response names the worker that served it (``X-Worker-Pid``). It
knows one user, ``ann``, with the password of ``conftest.USERS``.
Throttling is off: these tests send many right-password logins at once,
which is not what they are about.
"""

from __future__ import annotations

import os
import typing as t

import flask

from flask_ropc import ROPC
from flask_ropc import GrantResult

PASSWORD = "correct horse battery staple"


def create_app() -> flask.Flask:
    env = os.environ
    app = flask.Flask("keys_server")
    app.config.update(
        SECRET_KEY=env["SECRET_KEY"],
        ROPC_DATABASE_URI=env["ROPC_SERVER_DATABASE_URI"],
        ROPC_ISSUER="http://127.0.0.1",
        ROPC_SIGNING_ALG=env.get("ROPC_SIGNING_ALG", "ES256"),
        ROPC_THROTTLE_ENABLED=False,
    )
    ropc = ROPC(app)

    @ropc.password_validator
    def validator(req: t.Any) -> t.Any:
        if req.username == "ann" and req.password == PASSWORD:
            return GrantResult.success(subject="user-1")
        return None

    @app.after_request
    def name_the_worker(response: flask.Response) -> flask.Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    ready = env.get("ROPC_SERVER_READY_DIR")
    if ready:
        open(os.path.join(ready, str(os.getpid())), "w").close()
    return app
