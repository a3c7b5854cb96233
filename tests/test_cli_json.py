"""``--json`` on every ``flask ropc`` command, ``cleanup``'s progress and
summary, ``--scope`` with commas, and ``unlock`` of a user who was not locked.

Through Flask's CLI runner on the test database (SQLite, PostgreSQL), the
real token endpoint, and the real ``flask`` command under a pseudo-terminal
for the progress bar.
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import re
import secrets
import subprocess
import sys
import typing as t

import click
import flask
import pytest

from flask_ropc.cli import ropc_cli

from conftest import OAuthClient
from conftest import basic_auth
from conftest import build_app
from conftest import clock_shifted
from conftest import delete_redis_keys
from conftest import dispose_app
from conftest import login
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows

REDIS_URL = os.environ.get("ROPC_TEST_REDIS_URL")
WORKTREE = pathlib.Path(__file__).resolve().parent.parent
DAY = 86400


def ropc(runner: t.Any, *args: str, input: str | None = None) -> t.Any:
    return runner.invoke(args=["ropc", *args], input=input)


def one_json_object(result: t.Any) -> dict[str, t.Any]:
    """The whole stdout of a successful command, parsed as one JSON object."""
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # fails on any text around the object
    assert isinstance(data, dict)
    return data


def summed(output: str) -> int:
    """The sum of the ``TABLE: deleted N`` lines of ``cleanup``'s output."""
    counts = re.findall(r"^ropc_\w+: deleted (\d+)\r?$", output, re.MULTILINE)
    assert len(counts) >= 2, output
    return sum(int(count) for count in counts)


def every_command() -> list[tuple[str, ...]]:
    """The path of every leaf command of ``flask ropc``."""
    paths: list[tuple[str, ...]] = []
    for name, command in ropc_cli.commands.items():
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.commands]
        else:
            paths.append((name,))
    return paths


def command_at(path: tuple[str, ...]) -> click.Command:
    command: t.Any = ropc_cli
    for name in path:
        command = command.commands[name]
    return t.cast(click.Command, command)


@pytest.mark.parametrize("path", every_command(), ids=" ".join)
def test_every_command_has_a_json_flag(runner: t.Any, path: tuple[str, ...]) -> None:
    options = [o for p in command_at(path).params for o in getattr(p, "opts", [])]
    assert "--json" in options
    assert "--json" in ropc(runner, *path, "--help").stdout


# -- one JSON object per command ------------------------------------------------


def test_cleanup_json_counts_what_it_deleted(
    app: flask.Flask, runner: t.Any, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(access_token_lifetime=60)
    with clock_shifted(app, -DAY):
        login(http, client)
        login(http, client)
    login(http, client)  # live

    data = one_json_object(ropc(runner, "cleanup", "--json"))

    assert data["deleted"]["ropc_access_tokens"] == 2
    assert data["total"] == sum(data["deleted"].values())
    assert len(table_rows(app, "ropc_access_tokens")) == 1
    again = one_json_object(ropc(runner, "cleanup", "--json"))
    assert again["total"] == 0


def test_cleanup_without_a_terminal_prints_a_summary_and_no_progress_bar(
    app: flask.Flask, runner: t.Any, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(access_token_lifetime=60)
    with clock_shifted(app, -DAY):
        for _ in range(3):
            login(http, client)

    result = ropc(runner, "cleanup", "--batch-size", "1")

    assert result.exit_code == 0, result.output
    assert "ropc_access_tokens: deleted 3" in result.stdout
    assert "ropc_refresh_tokens: deleted 0" in result.stdout
    assert f"Deleted {summed(result.stdout)} rows in total." in result.stdout
    assert "Deleting" not in result.output and "%" not in result.output


@pytest.mark.parametrize("by", ["subject", "client"])
def test_revoke_json_says_how_many_and_whose(
    runner: t.Any, http: t.Any, oauth_client: OAuthClient, by: str
) -> None:
    token = login(http, oauth_client).get_json()["access_token"]
    login(http, oauth_client, "bob")
    target = "user-1" if by == "subject" else oauth_client.client_id

    data = one_json_object(ropc(runner, "revoke", f"--{by}", target, "--json"))

    key = "subject" if by == "subject" else "client_id"
    assert data == {"revoked": 1 if by == "subject" else 2, key: target}
    assert (
        http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )


@pytest.mark.parametrize("confirm", ["--yes", "prompt"])
def test_delete_client_json_is_one_object_even_when_it_asks(
    runner: t.Any, http: t.Any, oauth_client: OAuthClient, confirm: str
) -> None:
    args = ["delete-client", "--json"]
    args += ["--yes"] if confirm == "--yes" else []
    result = ropc(runner, *args, "--", oauth_client.client_id, input="y\n")

    data = one_json_object(result)

    assert data == {"client_id": oauth_client.client_id, "deleted": True}
    if confirm == "prompt":
        assert "Delete client" in result.stderr
    response = login(http, oauth_client)
    assert response.status_code == 401


def test_key_commands_json(app: flask.Flask, runner: t.Any) -> None:
    first = one_json_object(ropc(runner, "keys", "generate", "--json"))
    assert first["status"] == "active"
    pending = one_json_object(ropc(runner, "keys", "generate", "--json"))
    assert pending["status"] == "pending"
    rotated = one_json_object(ropc(runner, "keys", "rotate", "--json"))
    assert rotated["kid"] == pending["kid"] and rotated["status"] == "active"
    listed = one_json_object(ropc(runner, "keys", "list", "--json"))
    states = {key["kid"]: key["status"] for key in listed["keys"]}
    assert states == {first["kid"]: "previous", pending["kid"]: "active"}

    retired = ropc(runner, "keys", "retire", "--json", "--", first["kid"])

    assert one_json_object(retired) == {"kid": first["kid"], "status": "retired"}
    kids = {key["kid"] for key in app.test_client().get("/oauth/jwks").json["keys"]}
    assert kids == {pending["kid"]}


def test_keys_encrypt_json_counts_the_keys(make_app: t.Any) -> None:
    app = make_app(ROPC_KEY_ENCRYPTION_KEYS=secrets.token_urlsafe(32))
    runner = app.test_cli_runner()
    ropc(runner, "keys", "generate")
    ropc(runner, "keys", "generate")

    assert one_json_object(ropc(runner, "keys", "encrypt", "--json")) == {
        "encrypted": 2
    }


def test_init_db_json(runner: t.Any) -> None:
    first = one_json_object(ropc(runner, "init-db", "--json"))
    again = one_json_object(ropc(runner, "init-db", "--json"))

    assert first["ready"] is True and again["ready"] is True
    assert again["generated_key"] is None  # the tables and keys were kept
    listed = one_json_object(ropc(runner, "keys", "list", "--json"))["keys"]
    if first["generated_key"] is not None:
        assert [key["kid"] for key in listed] == [first["generated_key"]["kid"]]


# -- cleanup's progress bar on a terminal ------------------------------------------


APP_MODULE = """
import os
import flask
from flask_ropc import ROPC

app = flask.Flask(__name__)
app.config["ROPC_DATABASE_URI"] = os.environ["TEST_DATABASE_URI"]
app.config["ROPC_ISSUER"] = "https://cli.test"
app.config["SECRET_KEY"] = os.environ["TEST_SECRET_KEY"]
ROPC(app)
"""


def run_flask(
    tmp_path: pathlib.Path, database_uri: str, secret_key: str, *args: str, tty: bool
) -> str:
    """``flask --app ... ARGS`` in a subprocess; stdout (and stderr) is a
    pseudo-terminal when ``tty``, else a pipe."""
    (tmp_path / "cli_app.py").write_text(APP_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": str(WORKTREE),
        "TEST_DATABASE_URI": database_uri,
        "TEST_SECRET_KEY": secret_key,
        "COLUMNS": "100",
    }
    command = [sys.executable, "-m", "flask", "--app", "cli_app", *args]
    if not tty:
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, b"".join(chunks)
    return b"".join(chunks).decode()


def test_cleanup_shows_a_progress_bar_on_a_terminal_only(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    database_uri: str,
    tmp_path: pathlib.Path,
) -> None:
    client = make_client(access_token_lifetime=60)
    with clock_shifted(app, -DAY):
        for _ in range(4):
            login(http, client)
    with clock_shifted(app, -DAY):
        for _ in range(2):
            login(http, client)
    cleanup = ("ropc", "cleanup", "--batch-size", "2")

    on_terminal = run_flask(
        tmp_path, database_uri, str(app.secret_key), *cleanup, tty=True
    )

    assert "Deleting expired and revoked tokens" in on_terminal
    assert "100%" in on_terminal
    assert "ropc_access_tokens: deleted 6" in on_terminal
    assert f"Deleted {summed(on_terminal)} rows in total." in on_terminal
    for _ in range(2):
        with clock_shifted(app, -DAY):
            login(http, client)
    piped = run_flask(tmp_path, database_uri, str(app.secret_key), *cleanup, tty=False)
    assert "Deleting" not in piped and "%" not in piped
    assert "ropc_access_tokens: deleted 2" in piped
    as_json = run_flask(
        tmp_path, database_uri, str(app.secret_key), *cleanup, "--json", tty=True
    )
    assert json.loads(as_json)["total"] == 0


# -- --scope with commas, and the characters RFC 6749 §3.3 forbids ------------------


@pytest.mark.parametrize("command", ["create-client", "update-client"])
def test_a_comma_in_a_scope_warns_and_says_how_to_give_several(
    runner: t.Any, oauth_client: OAuthClient, command: str
) -> None:
    target = ["App"] if command == "create-client" else ["--", oauth_client.client_id]
    options = ["--scope", "api,admin", "--json"]
    result = runner.invoke(args=["ropc", command, *options, *target])

    data = one_json_object(result)

    assert data["scopes"] == ["api,admin"]  # legal, kept as given
    assert "api,admin" in result.stderr
    assert '--scope "api admin"' in result.stderr
    assert "repeat --scope" in result.stderr


def test_space_separated_scopes_do_not_warn(runner: t.Any) -> None:
    result = ropc(runner, "create-client", "App", "--scope", "api admin", "--json")

    assert one_json_object(result)["scopes"] == ["api", "admin"]
    assert result.stderr == ""


@pytest.mark.parametrize("scope", ['a"b', "caf\u00e9", "back\\slash", "ctl\x01"])
def test_update_client_refuses_characters_rfc_6749_forbids(
    runner: t.Any, oauth_client: OAuthClient, scope: str
) -> None:
    result = ropc(
        runner, "update-client", "--scope", scope, "--", oauth_client.client_id
    )

    assert result.exit_code == 2, result.output
    assert "RFC 6749" in result.output


# -- unlock -------------------------------------------------------------------


def lock_out_ann(http: t.Any, client: OAuthClient) -> None:
    for _ in range(5):
        login(http, client, password="wrong")
    assert login(http, client).status_code == 429


@pytest.fixture(params=["database", "memory", "redis"])
def throttled_app(
    request: pytest.FixtureRequest, database_uri: str, tmp_path: pathlib.Path
) -> t.Iterator[flask.Flask]:
    """An app whose throttle counters live in the database, memory or Redis."""
    config: dict[str, t.Any] = {}
    prefix = f"ropc-test-{secrets.token_hex(6)}"
    if request.param == "memory":
        config["ROPC_RATELIMIT_STORAGE_URI"] = "memory://"
    elif request.param == "redis":
        if not REDIS_URL:
            pytest.skip("set ROPC_TEST_REDIS_URL to run the Redis storage tests")
        config["ROPC_RATELIMIT_STORAGE_URI"] = REDIS_URL
        config["ROPC_RATELIMIT_KEY_PREFIX"] = prefix
    app = build_app(database_uri, str(tmp_path / "instance"), **config)
    yield app
    dispose_app(app)
    if request.param == "redis":
        assert REDIS_URL is not None
        delete_redis_keys(REDIS_URL, prefix)


def test_unlock_says_when_nothing_was_locked(throttled_app: flask.Flask) -> None:
    runner = throttled_app.test_cli_runner()
    http = throttled_app.test_client()
    with throttled_app.app_context():
        created, secret = ropc_of(throttled_app).clients.create("App", scopes=["api"])
    client = OAuthClient(created.client_id, secret)
    lock_out_ann(http, client)

    nobody = ropc(runner, "unlock", "nobody")
    assert nobody.exit_code == 0, nobody.output
    assert "Nothing to unlock" in nobody.stdout and "nobody" in nobody.stdout
    assert "Unlocked" not in nobody.stdout
    as_json = one_json_object(ropc(runner, "unlock", "nobody", "--json"))
    assert as_json == {"username": "nobody", "unlocked": False, "cleared": 0}

    ann = one_json_object(ropc(runner, "unlock", " ANN ", "--json"))

    assert ann["username"] == "ANN" and ann["unlocked"] is True
    assert ann["cleared"] >= 2  # at least the failures and the lock
    assert "Nothing to unlock" in ropc(runner, "unlock", "ann").stdout
    assert login(http, client).status_code == 200


def test_unlock_does_not_count_counters_that_have_expired(
    app: flask.Flask, runner: t.Any, http: t.Any, oauth_client: OAuthClient
) -> None:
    """Database counters: expired rows wait for cleanup, but unlocking them
    unlocks nothing."""
    with clock_shifted(app, -2 * DAY):
        lock_out_ann(http, oauth_client)
    assert table_rows(app, "ropc_throttle")  # still stored

    result = ropc(runner, "unlock", "ann")

    assert "Nothing to unlock" in result.stdout, result.output


def test_unlock_from_python_returns_what_it_cleared(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    ropc_ext = ropc_of(app)
    with app.app_context():
        assert ropc_ext.unlock("ann") == 0
    lock_out_ann(http, oauth_client)
    with app.app_context():
        assert ropc_ext.unlock("ann") >= 2
    response = http.post(
        "/oauth/token", data=password_form(), headers=basic_auth(*oauth_client)
    )
    assert response.status_code == 200
