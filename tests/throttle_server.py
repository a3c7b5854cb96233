"""One server process for the multi-process throttling tests.

Run as ``python tests/throttle_server.py``; configured by the environment:

``ROPC_SERVER_DATABASE_URI``  the shared database (tables must exist)
``ROPC_SERVER_PORT``          the port to listen on (0: any free port)
``ROPC_SERVER_STORAGE_URI``   a ``limits`` storage URI, or unset for the database
``ROPC_SERVER_KEY_PREFIX``    the counters' key prefix
``ROPC_SERVER_CALLS_FILE``    the validator appends one line here per call

Prints ``listening on PORT`` once the socket is bound, then serves until
terminated. The validator knows no user: every guess is wrong.
"""

from __future__ import annotations

import os
import sys
import typing as t

import flask
from werkzeug.serving import make_server

from flask_ropc import ROPC


def create_app() -> flask.Flask:
    env = os.environ
    app = flask.Flask("throttle_server")
    app.config.update(
        # Both processes share the database, so they share the secret.
        SECRET_KEY="throttle-server-test-secret-not-secret",
        ROPC_DATABASE_URI=env["ROPC_SERVER_DATABASE_URI"],
        ROPC_ISSUER="http://127.0.0.1",
        ROPC_RATELIMIT_STORAGE_URI=env.get("ROPC_SERVER_STORAGE_URI") or None,
        ROPC_RATELIMIT_KEY_PREFIX=env.get("ROPC_SERVER_KEY_PREFIX", "ropc"),
    )
    ropc = ROPC(app)
    calls_file = env["ROPC_SERVER_CALLS_FILE"]

    @ropc.password_validator
    def validator(req: t.Any) -> None:
        # O_APPEND: each write lands whole at the end, across processes.
        fd = os.open(calls_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {req.username}\n".encode())
        finally:
            os.close(fd)
        return None

    return app


def main() -> None:
    app = create_app()
    port = int(os.environ.get("ROPC_SERVER_PORT", "0"))
    server = make_server("127.0.0.1", port, app, threaded=True)
    sys.stdout.write(f"listening on {server.server_port}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
