"""The example apps work as their docstrings and the README say."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SECRET_KEY
from conftest import basic_auth
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


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
    port = free_port()
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


@contextlib.contextmanager
def _example_server(cwd: Path, script: str, timeout: float = 60) -> Iterator[str]:
    """Start ``python SCRIPT`` in ``cwd`` on a free port, yield what it printed
    up to "Running on" (waiting at most ``timeout`` s), stop it on exit."""
    env = dict(
        os.environ, PORT=str(free_port()), PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT)
    )
    proc = subprocess.Popen(
        [sys.executable, script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        printed = ""
        deadline = time.monotonic() + timeout
        while "Running on" not in printed:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"{script} exited early:\n{printed}")
            printed += line
        yield printed
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _flask_cli(cwd: Path, app: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app APP ARGS...`` in ``cwd``, importing this tree's flask_ropc."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.live
def test_minimal_app_keeps_one_database_however_it_is_started(tmp_path: Path) -> None:
    """``python examples/minimal_app.py`` (what scripts/serve-example runs) and
    ``flask --app examples/minimal_app.py ropc ...`` use one SQLite file, from
    whichever directory they are started: the CLI lists the client the server
    made, a second start from elsewhere finds it again, and no other (empty)
    database file appears anywhere."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", checkout / "examples")

    with _example_server(checkout, "examples/minimal_app.py") as printed:
        client_id = re.search(r"curl -s -u '([^:]+):", printed)
        assert client_id is not None, printed

    def listed(cwd: Path, app: str) -> list[str]:
        result = _flask_cli(cwd, app, "ropc", "list-clients", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return [
            client["client_id"]
            for client in json.loads(result.stdout)["clients"]
            if client["name"] == "Example app"
        ]

    assert listed(checkout, "examples/minimal_app.py") == [client_id.group(1)]
    assert listed(checkout / "examples", "minimal_app.py") == [client_id.group(1)]
    assert listed(tmp_path, "checkout/examples/minimal_app.py") == [client_id.group(1)]
    # Started from inside examples/, the server rotates the same client's
    # secret rather than creating a second one in another file.
    with _example_server(checkout / "examples", "minimal_app.py") as printed:
        assert f"curl -s -u '{client_id.group(1)}:" in printed

    databases = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.sqlite3"))
    assert databases == [Path("checkout/instance/ropc.sqlite3")]
    assert (tmp_path / "checkout" / "instance" / "ropc.sqlite3").stat().st_size > 0
    assert not (checkout / "examples" / "instance").exists()


def _top_of_readme() -> str:
    """The README's part above its first rule: how to start the example."""
    return (ROOT / "README.md").read_text("utf-8").split("\n---\n", 1)[0]


def test_readme_states_the_example_servers_default_port_and_port_variable() -> None:
    """The port the README promises is the one examples/minimal_app.py uses
    when ``PORT`` is unset (scripts/serve-example passes ``PORT`` through)."""
    tree = ast.parse((ROOT / "examples" / "minimal_app.py").read_text("utf-8"))
    defaults = [
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "os.environ.get"
        and len(node.args) == 2
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == "PORT"
        and isinstance(node.args[1], ast.Constant)
    ]
    assert len(defaults) == 1, "minimal_app.py reads PORT with one default"
    top = _top_of_readme()
    assert "`PORT`" in top
    assert set(re.findall(r"http://127\.0\.0\.1:(\d+)", top)) == {str(defaults[0])}
    serve = (ROOT / "scripts" / "serve-example").read_text("utf-8")
    assert "examples/minimal_app.py" in serve
    assert not re.search(r"\bPORT=", serve), "serve-example must not override PORT"


#: Modules of flask_ropc that docs/api.rst documents as public.
PUBLIC_MODULES = {
    "flask_ropc",
    "flask_ropc.errors",
    "flask_ropc.signals",
    "flask_ropc.migrations",
}


def test_examples_use_only_the_public_api() -> None:
    """The examples are what users copy: they import only documented names and
    never reach into the extension's state (``get_state``, ``.store``) or a
    private attribute."""
    import flask_ropc

    problems = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text("utf-8"), str(where))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "flask_ropc"
            ):
                if node.module not in PUBLIC_MODULES:
                    problems.append(f"{where}:{node.lineno}: from {node.module}")
                elif node.module == "flask_ropc":
                    for alias in node.names:
                        if alias.name not in flask_ropc.__all__ + [
                            m.rsplit(".", 1)[-1] for m in PUBLIC_MODULES
                        ]:
                            problems.append(f"{where}:{node.lineno}: {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("flask_ropc.") and (
                        alias.name not in PUBLIC_MODULES
                    ):
                        problems.append(f"{where}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.Attribute) and (
                node.attr in {"get_state", "store"}
                # An example's own private attributes (self._x) are its own.
                or node.attr.startswith("_")
                and not node.attr.startswith("__")
                and ast.unparse(node.value) != "self"
            ):
                problems.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Name) and node.id == "get_state":
                problems.append(f"{where}:{node.lineno}: get_state")
    assert not problems, problems


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
