"""The example apps work as their docstrings and the README say."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from conftest import SECRET_KEY
from conftest import basic_auth

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_until(stream: t.IO[str], marker: str, limit: int = 200) -> list[str]:
    """Read lines until one contains ``marker`` (blocking reads, no polling)."""
    lines = []
    for _ in range(limit):
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never printed; got:\n{''.join(lines)}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")
def test_minimal_app_prints_a_curl_line_that_gets_a_token(tmp_path: Path) -> None:
    """The README's first command: the server starts on SQLite and its printed
    curl command returns a token that opens the protected route."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = _free_port()
    # PYTHONPATH: the server imports this tree's flask_ropc, not an installed one.
    env = dict(os.environ, PORT=str(port), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "examples/minimal_app.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = _read_until(proc.stdout, "Running on")
        curl_line = next(line.strip() for line in lines if "curl -s -u" in line)
        result = subprocess.run(
            shlex.split(curl_line), capture_output=True, text=True, timeout=30
        )
        token = json.loads(result.stdout)
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "api"
        me = subprocess.run(
            [
                "curl",
                "-s",
                "-H",
                f"Authorization: Bearer {token['access_token']}",
                f"http://127.0.0.1:{port}/api/me",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert json.loads(me.stdout)["sub"] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    # The SQLite database lives in the instance folder beside examples/.
    assert (tmp_path / "instance" / "ropc.sqlite3").exists()


@pytest.fixture
def factory_app(tmp_path: Path) -> t.Any:
    sys.path.insert(0, str(ROOT))
    try:
        from examples.factory_app import create_app
        from examples.factory_app import db
    finally:
        sys.path.remove(str(ROOT))
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'factory.sqlite3'}",
            "SECRET_KEY": SECRET_KEY,
        }
    )
    yield app
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_factory_app_user_model_login_end_to_end(factory_app: t.Any) -> None:
    """The factory example keeps ropc_* tables beside its own users table, and
    its hashed-password users log in through the password grant."""
    runner = factory_app.test_cli_runner()
    created = runner.invoke(
        args=["create-user", "Ann"], input="s3cret-passphrase\ns3cret-passphrase\n"
    )
    assert created.exit_code == 0, created.output
    assert runner.invoke(args=["ropc", "init-db"]).exit_code == 0
    result = runner.invoke(
        args=["ropc", "create-client", "Desktop tool", "--scope", "api", "--json"]
    )
    client = json.loads(result.output)
    http = factory_app.test_client()
    auth = basic_auth(client["client_id"], client["client_secret"])
    wrong = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ann", "password": "nope"},
        headers=auth,
    )
    assert wrong.status_code == 400
    assert wrong.json["error"] == "invalid_grant"
    unknown = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "zed", "password": "nope"},
        headers=auth,
    )
    assert unknown.json == wrong.json
    ok = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": " ANN ",
            "password": "s3cret-passphrase",
        },
        headers=auth,
    )
    assert ok.status_code == 200, ok.json
    profile = http.get(
        "/api/profile", headers={"Authorization": f"Bearer {ok.json['access_token']}"}
    )
    assert profile.json == {"username": "ann", "role": "member"}
    # Our tables share the app's metadata, so its migrations would see them.
    from examples.factory_app import db

    assert {"users", "ropc_clients", "ropc_access_tokens"} <= set(db.metadata.tables)
