"""The ``flask ropc`` CLI group, through Flask's CLI runner, HTTP and the database."""

from __future__ import annotations

import json
import re
import typing as t
from collections.abc import Iterator

import click
import flask
import pytest

from flask_ropc import ROPC
from flask_ropc import GrantResult
from flask_ropc import hashing
from flask_ropc.cli import ropc_cli

from conftest import SECRET_KEY
from conftest import USERS
from conftest import basic_auth
from conftest import client_snapshot
from conftest import count_rows
from conftest import password_form
from conftest import ropc_of
from conftest import table_rows

TOKEN_URL = "/oauth/token"
IMPORTED_SECRET = "my-existing-secret-of-sufficient-length"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- helpers ------------------------------------------------------------------


def ropc(runner: t.Any, *args: str, input: str | None = None) -> t.Any:
    """Run ``flask ropc ARGS...`` and return click's result."""
    return runner.invoke(args=["ropc", *args], input=input)


def ropc_id(
    runner: t.Any, command: str, client_id: str, *options: str, input: str | None = None
) -> t.Any:
    """Run ``flask ropc COMMAND OPTIONS... -- CLIENT_ID``.

    The ``--`` keeps a generated id that starts with ``-`` from being parsed
    as an option (see test_generated_client_ids_never_start_with_a_dash).
    """
    return ropc(runner, command, *options, "--", client_id, input=input)


def ok(result: t.Any) -> str:
    """The output of a command that must have succeeded."""
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    return str(result.output)


def failed(result: t.Any) -> str:
    """The output of a command that must have failed cleanly (no traceback)."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return str(result.output)


def create_json(runner: t.Any, name: str = "CLI app", *args: str) -> dict[str, t.Any]:
    """``create-client NAME --json ARGS...`` parsed; defaults to ``--scope api``."""
    if not any(arg == "--scope" for arg in args):
        args = ("--scope", "api", *args)
    data = json.loads(ok(ropc(runner, "create-client", name, "--json", *args)))
    assert isinstance(data, dict)
    return data


def show_json(runner: t.Any, client_id: str) -> dict[str, t.Any]:
    data = json.loads(ok(ropc_id(runner, "show-client", client_id, "--json")))
    assert isinstance(data, dict)
    return data


def token_basic(http: t.Any, client_id: str, secret: str, **extra: str) -> t.Any:
    """A password-grant request for ann, the client authenticating with Basic."""
    return http.post(
        TOKEN_URL, data=password_form(**extra), headers=basic_auth(client_id, secret)
    )


def access_token(http: t.Any, client_id: str, secret: str, **extra: str) -> str:
    response = token_basic(http, client_id, secret, **extra)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def me(http: t.Any, token: str) -> t.Any:
    return http.get("/api/me", headers={"Authorization": f"Bearer {token}"})


def assert_invalid_client(response: t.Any) -> None:
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def client_row(app: flask.Flask, client_id: str) -> t.Any:
    """The raw ``ropc_clients`` row of a client."""
    (row,) = [r for r in table_rows(app, "ropc_clients") if r.client_id == client_id]
    return row


def assert_no_secret_field(output: str) -> None:
    """No secret or digest field, in text or JSON (auth method names aside)."""
    assert "client_secret:" not in output
    assert '"client_secret"' not in output
    assert "digest" not in output.lower()


def drop_tables(app: flask.Flask) -> None:
    with app.app_context():
        ropc_of(app).drop_all()


def _validator(req: t.Any) -> t.Any:
    user = USERS.get(req.username)
    if user is None or user[0] != req.password:
        return None
    return GrantResult.success(subject=user[1])


@pytest.fixture
def fresh_app(tmp_path: t.Any) -> Iterator[flask.Flask]:
    """An app on a new SQLite file whose tables were never created."""
    app = flask.Flask("ropc_fresh_app", instance_path=str(tmp_path / "instance"))
    uri = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app.config.update(TESTING=True, ROPC_DATABASE_URI=uri, SECRET_KEY=SECRET_KEY)
    ext = ROPC(app)
    ext.password_validator(_validator)
    app.extensions["test_ropc"] = ext  # what ropc_of() and count_rows() read
    yield app
    with app.app_context():
        ext.dispose()


# -- init-db ------------------------------------------------------------------


def test_init_db_again_keeps_existing_clients_working(
    app: flask.Flask, runner: t.Any, http: t.Any
) -> None:
    ok(ropc(runner, "init-db"))
    created = create_json(runner)
    ok(ropc(runner, "init-db"))

    assert show_json(runner, created["client_id"])["name"] == "CLI app"
    access_token(http, created["client_id"], created["client_secret"])
    assert count_rows(app)["ropc_clients"] == 1


def test_init_db_creates_tables_on_a_fresh_database(fresh_app: flask.Flask) -> None:
    runner = fresh_app.test_cli_runner()
    ok(ropc(runner, "init-db"))
    created = create_json(runner)

    assert count_rows(fresh_app) == {"ropc_clients": 1, "ropc_access_tokens": 0}
    token = access_token(
        fresh_app.test_client(), created["client_id"], created["client_secret"]
    )
    assert token


# -- create-client ------------------------------------------------------------


def test_create_client_json_is_one_object_with_id_and_secret(runner: t.Any) -> None:
    result = ropc(runner, "create-client", "Mobile app", "--scope", "api", "--json")
    data = json.loads(ok(result))

    assert isinstance(data, dict)
    assert data["client_id"]
    assert data["client_secret"]
    assert data["name"] == "Mobile app"


def test_create_public_client_json_has_no_secret(
    app: flask.Flask, runner: t.Any
) -> None:
    data = create_json(runner, "SPA", "--public")

    assert "client_secret" not in data
    assert data["public"] is True
    assert client_row(app, data["client_id"]).secret_digest is None


def test_public_client_created_by_cli_gets_tokens_with_its_id_only(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner, "SPA", "--public")
    response = http.post(TOKEN_URL, data=password_form(client_id=data["client_id"]))

    assert response.status_code == 200, response.get_json()
    assert me(http, response.get_json()["access_token"]).status_code == 200


def test_printed_secret_gets_a_token_that_works_at_the_api(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner)
    token = access_token(http, data["client_id"], data["client_secret"])

    response = me(http, token)
    assert response.status_code == 200
    assert response.get_json()["client_id"] == data["client_id"]
    assert response.get_json()["sub"] == "user-1"


def test_generated_secret_has_at_least_256_bits(runner: t.Any) -> None:
    secret = create_json(runner)["client_secret"]

    assert len(secret) >= 43
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)


def test_generated_client_ids_never_start_with_a_dash() -> None:
    """Users type the id as an argument: ``flask ropc show-client ID``.

    An id starting with ``-`` is parsed by click as an option ("No such option
    '-U'"), so that command fails unless the user knows to add ``--``.
    """
    ids = [hashing.generate_client_id() for _ in range(2000)]

    assert [client_id for client_id in ids if client_id.startswith("-")] == []


def test_generated_secrets_differ_between_clients(runner: t.Any) -> None:
    first = create_json(runner, "one")["client_secret"]
    second = create_json(runner, "two")["client_secret"]

    assert first != second


def test_secret_is_stored_only_as_a_digest(app: flask.Flask, runner: t.Any) -> None:
    data = create_json(runner)
    row = client_row(app, data["client_id"])

    assert row.secret_digest
    for value in row:
        assert data["client_secret"] not in str(value)


def test_create_client_text_output_shows_id_and_secret_once(
    runner: t.Any, http: t.Any
) -> None:
    output = ok(ropc(runner, "create-client", "Mobile app", "--scope", "api"))
    client_id = re.search(r"client_id:\s+(\S+)", output)
    secret = re.search(r"client_secret:\s+(\S+)", output)

    assert client_id and secret
    assert len(secret.group(1)) >= 43
    lowered = output.lower()
    assert "not shown again" in lowered or "only once" in lowered
    access_token(http, client_id.group(1), secret.group(1))


def test_scope_option_accepts_space_separated_and_repeated_values(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner, "app", "--scope", "api profile", "--scope", "email")

    assert data["scopes"] == ["api", "profile", "email"]
    response = token_basic(
        http, data["client_id"], data["client_secret"], scope="email"
    )
    assert response.status_code == 200
    assert response.get_json()["scope"] == "email"


@pytest.mark.parametrize("scope", ['a"b', "caf\u00e9", "back\\slash"])
def test_create_client_refuses_malformed_scope(
    app: flask.Flask, runner: t.Any, scope: str
) -> None:
    before = count_rows(app)
    output = failed(ropc(runner, "create-client", "app", "--scope", scope))

    assert "scope" in output
    assert count_rows(app) == before


def test_grant_type_password_is_accepted_and_repeatable(runner: t.Any) -> None:
    data = create_json(
        runner, "app", "--grant-type", "password", "--grant-type", "password"
    )

    assert data["grant_types"] == ["password"]


@pytest.mark.parametrize("grant_type", ["client_credentials", "implicit", "PASSWORD"])
def test_create_client_refuses_unknown_grant_type(
    app: flask.Flask, runner: t.Any, grant_type: str
) -> None:
    output = failed(
        ropc(
            runner, "create-client", "app", "--scope", "api", "--grant-type", grant_type
        )
    )

    assert grant_type in output
    assert count_rows(app)["ropc_clients"] == 0


def test_access_token_lifetime_sets_expires_in(runner: t.Any, http: t.Any) -> None:
    data = create_json(runner, "app", "--access-token-lifetime", "600")
    response = token_basic(http, data["client_id"], data["client_secret"])

    assert response.status_code == 200
    assert response.get_json()["expires_in"] == 600


@pytest.mark.parametrize("lifetime", ["0", "-5", "ten", "1.5", ""])
def test_create_client_refuses_bad_access_token_lifetime(
    app: flask.Flask, runner: t.Any, lifetime: str
) -> None:
    output = failed(
        ropc(runner, "create-client", "app", "--access-token-lifetime", lifetime)
    )

    assert "--access-token-lifetime" in output
    assert count_rows(app)["ropc_clients"] == 0


def test_client_secret_post_client_authenticates_with_body_credentials(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner, "app", "--auth-method", "client_secret_post")
    body = password_form(
        client_id=data["client_id"], client_secret=data["client_secret"]
    )

    response = http.post(TOKEN_URL, data=body)
    assert response.status_code == 200, response.get_json()
    # Its registered method is the body; Basic is refused.
    assert_invalid_client(token_basic(http, data["client_id"], data["client_secret"]))


@pytest.mark.parametrize(
    "extra", [["--auth-method", "client_secret_post"], ["--secret-stdin"]]
)
def test_public_client_refuses_secret_options(
    app: flask.Flask, runner: t.Any, extra: list[str]
) -> None:
    result = ropc(
        runner, "create-client", "app", "--public", *extra, input=IMPORTED_SECRET
    )
    output = failed(result)

    assert result.exit_code == 2
    assert "--public" in output
    assert count_rows(app)["ropc_clients"] == 0


# -- create-client --secret-stdin ----------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_imported_secret_works_and_is_not_echoed(
    runner: t.Any, http: t.Any, as_json: bool
) -> None:
    args = ["create-client", "Migrated", "--scope", "api", "--secret-stdin"]
    output = ok(
        ropc(
            runner,
            *args,
            *(["--json"] if as_json else []),
            input=IMPORTED_SECRET + "\n",
        )
    )

    assert IMPORTED_SECRET not in output
    if as_json:
        client_id = json.loads(output)["client_id"]
    else:
        found = re.search(r"client_id:\s+(\S+)", output)
        assert found
        client_id = found.group(1)
    token = access_token(http, client_id, IMPORTED_SECRET)
    assert me(http, token).status_code == 200


@pytest.mark.parametrize("secret", ["short-secret", "x" * 19, ""])
def test_short_imported_secret_is_refused_and_no_client_created(
    app: flask.Flask, runner: t.Any, secret: str
) -> None:
    before = count_rows(app)
    result = ropc(
        runner, "create-client", "Migrated", "--secret-stdin", input=secret + "\n"
    )
    output = failed(result)

    assert "rotate" in output
    assert "20" in output
    assert count_rows(app) == before


# -- list-clients -------------------------------------------------------------


def test_list_clients_with_no_clients_prints_a_helpful_line(runner: t.Any) -> None:
    output = ok(ropc(runner, "list-clients"))

    assert "No clients" in output
    assert "create-client" in output
    assert json.loads(ok(ropc(runner, "list-clients", "--json"))) == {"clients": []}


def test_list_clients_table_shows_id_name_type_scopes_and_last_use(
    runner: t.Any, http: t.Any
) -> None:
    used = create_json(runner, "Used app", "--scope", "api profile")
    unused = create_json(runner, "SPA", "--scope", "api", "--public")
    before = ok(ropc(runner, "list-clients"))
    assert "never" in _line_of(before, used["client_id"])

    access_token(http, used["client_id"], used["client_secret"])
    output = ok(ropc(runner, "list-clients"))

    header = output.splitlines()[0].upper()
    for column in ("ID", "NAME", "TYPE", "SCOPES", "LAST USED"):
        assert column in header
    used_line = _line_of(output, used["client_id"])
    assert "Used app" in used_line
    assert "confidential" in used_line
    assert "api profile" in used_line
    assert DATE.search(used_line)
    assert "never" not in used_line
    unused_line = _line_of(output, unused["client_id"])
    assert "SPA" in unused_line
    assert "public" in unused_line
    assert "never" in unused_line


def _line_of(output: str, client_id: str) -> str:
    lines = [line for line in output.splitlines() if client_id in line]
    assert len(lines) == 1, output
    return lines[0]


def test_list_clients_json_lists_every_client(runner: t.Any, http: t.Any) -> None:
    first = create_json(runner, "one")
    second = create_json(runner, "two", "--public")
    access_token(http, first["client_id"], first["client_secret"])

    data = json.loads(ok(ropc(runner, "list-clients", "--json")))

    assert set(data) == {"clients"}
    by_id = {c["client_id"]: c for c in data["clients"]}
    assert set(by_id) == {first["client_id"], second["client_id"]}
    assert by_id[first["client_id"]]["last_used_at"] is not None
    assert by_id[second["client_id"]]["last_used_at"] is None
    assert by_id[second["client_id"]]["public"] is True


@pytest.mark.parametrize("as_json", [False, True])
def test_list_clients_never_prints_a_secret_or_digest(
    app: flask.Flask, runner: t.Any, as_json: bool
) -> None:
    data = create_json(runner)
    digest = client_row(app, data["client_id"]).secret_digest

    output = ok(ropc(runner, "list-clients", *(["--json"] if as_json else [])))

    assert data["client_id"] in output
    assert data["client_secret"] not in output
    assert digest not in output
    assert_no_secret_field(output)


# -- show-client --------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_show_client_describes_the_client_without_secret_or_digest(
    app: flask.Flask, runner: t.Any, as_json: bool
) -> None:
    data = create_json(runner, "Mobile app", "--scope", "api profile")
    digest = client_row(app, data["client_id"]).secret_digest

    options = ["--json"] if as_json else []
    output = ok(ropc_id(runner, "show-client", data["client_id"], *options))

    assert data["client_id"] in output
    assert "Mobile app" in output
    assert "api profile" in output or '"profile"' in output
    assert data["client_secret"] not in output
    assert digest not in output
    assert_no_secret_field(output)


def test_show_client_json_matches_the_settings(runner: t.Any) -> None:
    data = create_json(
        runner, "app", "--scope", "api", "--access-token-lifetime", "600"
    )
    shown = show_json(runner, data["client_id"])

    assert shown["client_id"] == data["client_id"]
    assert shown["scopes"] == ["api"]
    assert shown["grant_types"] == ["password"]
    assert shown["access_token_lifetime"] == 600
    assert shown["enabled"] is True
    assert shown["public"] is False


@pytest.mark.parametrize(
    "command",
    [
        ["show-client"],
        ["show-client", "--json"],
        ["update-client", "--name", "x"],
        ["update-client"],
        ["rotate-secret"],
        ["delete-client", "--yes"],
        ["delete-client"],
    ],
)
def test_unknown_client_id_fails_with_a_message_naming_it(
    app: flask.Flask, runner: t.Any, command: list[str]
) -> None:
    create_json(runner)
    before = client_snapshot(app)

    output = failed(ropc_id(runner, command[0], "no-such-client", *command[1:]))

    assert "no-such-client" in output
    assert client_snapshot(app) == before


# -- update-client ------------------------------------------------------------


def test_update_scope_replaces_scopes(runner: t.Any, http: t.Any) -> None:
    data = create_json(runner, "app", "--scope", "api profile")
    cid, secret = data["client_id"], data["client_secret"]

    updated = json.loads(
        ok(ropc_id(runner, "update-client", cid, "--scope", "api", "--json"))
    )

    assert updated["scopes"] == ["api"]
    response = token_basic(http, cid, secret, scope="profile")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    assert token_basic(http, cid, secret, scope="api").status_code == 200


def test_update_scope_accepts_space_separated_and_repeated_values(
    runner: t.Any,
) -> None:
    cid = create_json(runner)["client_id"]
    scopes = ["--scope", "api profile", "--scope", "email"]
    ok(ropc_id(runner, "update-client", cid, *scopes))

    assert show_json(runner, cid)["scopes"] == ["api", "profile", "email"]


def test_update_grant_type_allows_the_password_grant(
    runner: t.Any, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(scopes=["api"], grant_types=[])
    refused = token_basic(http, client.client_id, client.secret)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "unauthorized_client"

    ok(ropc_id(runner, "update-client", client.client_id, "--grant-type", "password"))

    assert show_json(runner, client.client_id)["grant_types"] == ["password"]
    access_token(http, client.client_id, client.secret)


def test_update_access_token_lifetime_and_back_to_default(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner)
    cid, secret = data["client_id"], data["client_secret"]

    ok(ropc_id(runner, "update-client", cid, "--access-token-lifetime", "900"))
    assert token_basic(http, cid, secret).get_json()["expires_in"] == 900

    ok(ropc_id(runner, "update-client", cid, "--default-access-token-lifetime"))
    assert show_json(runner, cid)["access_token_lifetime"] is None
    assert token_basic(http, cid, secret).get_json()["expires_in"] == 3600


def test_update_name_changes_only_the_name(runner: t.Any) -> None:
    data = create_json(runner, "Old name", "--scope", "api profile")
    before = show_json(runner, data["client_id"])

    ok(ropc_id(runner, "update-client", data["client_id"], "--name", "New name"))

    after = show_json(runner, data["client_id"])
    assert after["name"] == "New name"
    assert {**after, "name": "Old name"} == before


def test_disable_stops_token_requests_and_existing_tokens(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner)
    cid, secret = data["client_id"], data["client_secret"]
    token = access_token(http, cid, secret)
    assert me(http, token).status_code == 200

    ok(ropc_id(runner, "update-client", cid, "--disable"))

    assert show_json(runner, cid)["enabled"] is False
    assert_invalid_client(token_basic(http, cid, secret))
    assert me(http, token).status_code == 401


def test_disable_stops_a_public_client(runner: t.Any, http: t.Any) -> None:
    cid = create_json(runner, "SPA", "--public")["client_id"]
    ok(ropc_id(runner, "update-client", cid, "--disable"))

    response = http.post(TOKEN_URL, data=password_form(client_id=cid))
    assert_invalid_client(response)


def test_enable_lets_a_disabled_client_get_tokens_again(
    runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner)
    cid, secret = data["client_id"], data["client_secret"]
    ok(ropc_id(runner, "update-client", cid, "--disable"))
    assert_invalid_client(token_basic(http, cid, secret))

    ok(ropc_id(runner, "update-client", cid, "--enable"))

    assert show_json(runner, cid)["enabled"] is True
    assert me(http, access_token(http, cid, secret)).status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["--access-token-lifetime", "600", "--default-access-token-lifetime"],
        ["--name", "New", "--access-token-lifetime", "0"],
        ["--name", "New", "--access-token-lifetime", "soon"],
        ["--name", "New", "--scope", 'bad"scope'],
        ["--name", "   "],
        ["--name", "n" * 201],
        ["--scope", "email", "--grant-type", "client_credentials"],
    ],
    ids=[
        "conflicting-lifetimes",
        "zero-lifetime",
        "non-number-lifetime",
        "malformed-scope",
        "blank-name",
        "long-name",
        "unknown-grant-type",
    ],
)
def test_failing_update_exits_non_zero_and_changes_nothing(
    app: flask.Flask, runner: t.Any, args: list[str]
) -> None:
    cid = create_json(runner, "app", "--scope", "api profile")["client_id"]
    before = client_snapshot(app)

    failed(ropc_id(runner, "update-client", cid, *args))

    assert client_snapshot(app) == before


# -- rotate-secret ------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_rotate_secret_new_one_works_old_one_fails_at_once(
    runner: t.Any, http: t.Any, as_json: bool
) -> None:
    data = create_json(runner)
    cid, old = data["client_id"], data["client_secret"]
    access_token(http, cid, old)

    output = ok(ropc_id(runner, "rotate-secret", cid, *(["--json"] if as_json else [])))
    if as_json:
        rotated = json.loads(output)
        assert rotated["client_id"] == cid
        new = rotated["client_secret"]
    else:
        assert cid in output
        found = re.search(r"client_secret:\s+(\S+)", output)
        assert found
        new = found.group(1)

    assert new != old
    assert len(new) >= 43
    assert_invalid_client(token_basic(http, cid, old))
    access_token(http, cid, new)


def test_rotate_secret_of_public_client_fails_with_a_message(
    app: flask.Flask, runner: t.Any
) -> None:
    cid = create_json(runner, "SPA", "--public")["client_id"]
    before = client_snapshot(app)

    output = failed(ropc_id(runner, "rotate-secret", cid))

    assert "public" in output
    assert client_snapshot(app) == before


# -- delete-client ------------------------------------------------------------


def test_delete_client_answering_no_keeps_the_client(
    app: flask.Flask, runner: t.Any, http: t.Any
) -> None:
    data = create_json(runner)
    token = access_token(http, data["client_id"], data["client_secret"])
    before = count_rows(app)

    result = ropc_id(runner, "delete-client", data["client_id"], input="n\n")

    assert result.exit_code != 0
    assert data["client_id"] in result.output  # the prompt names the client
    assert count_rows(app) == before
    assert me(http, token).status_code == 200


@pytest.mark.parametrize(
    ("args", "answer"), [([], "y\n"), (["--yes"], None)], ids=["confirmed", "--yes"]
)
def test_delete_client_removes_it_and_its_tokens(
    app: flask.Flask,
    runner: t.Any,
    http: t.Any,
    args: list[str],
    answer: str | None,
) -> None:
    data = create_json(runner)
    other = create_json(runner, "other")
    token = access_token(http, data["client_id"], data["client_secret"])
    other_token = access_token(http, other["client_id"], other["client_secret"])
    assert count_rows(app) == {"ropc_clients": 2, "ropc_access_tokens": 2}

    ok(ropc_id(runner, "delete-client", data["client_id"], *args, input=answer))

    assert count_rows(app) == {"ropc_clients": 1, "ropc_access_tokens": 1}
    assert me(http, token).status_code == 401
    assert me(http, other_token).status_code == 200
    assert_invalid_client(token_basic(http, data["client_id"], data["client_secret"]))
    failed(ropc_id(runner, "show-client", data["client_id"]))


# -- help and errors ----------------------------------------------------------


def test_the_group_has_every_command() -> None:
    assert ropc_cli.help
    assert set(ropc_cli.commands) >= {
        "init-db",
        "create-client",
        "list-clients",
        "show-client",
        "update-client",
        "rotate-secret",
        "delete-client",
    }


@pytest.mark.parametrize("name", sorted(ropc_cli.commands))
def test_every_command_and_option_has_help_text(name: str) -> None:
    command = ropc_cli.commands[name]

    assert command.help and command.help.strip()
    assert command.get_short_help_str().strip()
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{name} {param.opts}"


@pytest.mark.parametrize("name", sorted(ropc_cli.commands))
def test_help_output_shows_every_option(runner: t.Any, name: str) -> None:
    output = ok(ropc(runner, name, "--help"))

    for param in ropc_cli.commands[name].params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert opt in output


def test_list_clients_without_tables_says_to_run_init_db(
    fresh_app: flask.Flask,
) -> None:
    runner = fresh_app.test_cli_runner()

    output = failed(ropc(runner, "list-clients"))

    assert "init-db" in output


@pytest.mark.parametrize(
    "command",
    [
        ["list-clients"],
        ["list-clients", "--json"],
        ["show-client", "some-id"],
        ["create-client", "app", "--scope", "api"],
        ["update-client", "some-id", "--name", "x"],
        ["rotate-secret", "some-id"],
        ["delete-client", "some-id", "--yes"],
    ],
)
def test_database_errors_give_a_clear_message(
    app: flask.Flask, runner: t.Any, command: list[str]
) -> None:
    drop_tables(app)

    output = failed(ropc(runner, *command))

    assert "init-db" in output
    # and init-db then repairs it
    ok(ropc(runner, "init-db"))
    assert json.loads(ok(ropc(runner, "list-clients", "--json"))) == {"clients": []}


def test_create_client_can_keep_an_existing_client_id(
    app: flask.Flask, runner: t.Any, http: t.Any
) -> None:
    """Moving a client from another server keeps its id and secret."""
    secret = "an-existing-secret-from-identityserver"
    result = runner.invoke(
        args=[
            "ropc",
            "create-client",
            "Legacy",
            "--client-id",
            "legacy.app",
            "--secret-stdin",
            "--scope",
            "api",
            "--json",
        ],
        input=secret + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["client_id"] == "legacy.app"
    token = http.post(
        "/oauth/token",
        data=password_form(),
        headers=basic_auth("legacy.app", secret),
    )
    assert token.status_code == 200


@pytest.mark.parametrize("bad_id", ["-dash", "has space", "a:b", "x" * 65, "é"])
def test_create_client_refuses_unusable_or_taken_client_ids(
    app: flask.Flask, runner: t.Any, bad_id: str
) -> None:
    before = count_rows(app)
    result = runner.invoke(
        args=["ropc", "create-client", "Legacy", "--client-id", bad_id]
    )
    assert result.exit_code != 0
    assert count_rows(app) == before
    first = runner.invoke(args=["ropc", "create-client", "A", "--client-id", "taken"])
    assert first.exit_code == 0
    again = runner.invoke(args=["ropc", "create-client", "B", "--client-id", "taken"])
    assert again.exit_code != 0
    assert "already exists" in again.output
