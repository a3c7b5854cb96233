"""Token revocation at ``POST /oauth/revoke`` (RFC 7009).

Through the Flask test client and the real database (SQLite, and PostgreSQL
when ``ROPC_TEST_DATABASE_URL`` is set), for JWT and reference access tokens.
"""

from __future__ import annotations

import typing as t

import flask
import pytest

from flask_ropc import ROPC
from flask_ropc import hashing

from conftest import Clock
from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import client_snapshot
from conftest import clock_shifted
from conftest import count_rows
from conftest import introspect
from conftest import issue_token
from conftest import post_as
from conftest import post_client_token
from conftest import table_rows
from conftest import token_client

REVOKE_URL = "/oauth/revoke"

#: Both access token formats: the default RFC 9068 JWT, and opaque reference.
FORMATS = pytest.mark.parametrize("token_format", ["jwt", "reference"])


# -- helpers ------------------------------------------------------------------


def revoke(http: t.Any, client: t.Any, token: str, **form: str) -> t.Any:
    """POST ``token`` for revocation as ``client`` (Basic, or body id if public)."""
    return post_as(http, REVOKE_URL, client, {"token": token, **form})


def assert_revocation_ok(response: t.Any) -> None:
    """RFC 7009 §2.2: 200; ours is always the JSON object ``{}``."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json() == {}
    assert response.get_data(as_text=True).strip() == "{}"
    assert response.headers["Cache-Control"] == "no-store"


def works(http: t.Any, token: str) -> bool:
    """Whether ``token`` opens the protected ``/api/me``."""
    response = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401), response.get_data(as_text=True)
    if response.status_code == 401:
        assert response.get_json()["error"] == "invalid_token"
    return bool(response.status_code == 200)


def introspected(http: t.Any, caller: t.Any, token: str) -> dict[str, t.Any]:
    """The introspection answer about ``token`` to ``caller``, which must be 200."""
    response = introspect(http, caller, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return t.cast(dict[str, t.Any], response.get_json())


def token_rows(app: flask.Flask) -> dict[str, dict[str, t.Any]]:
    """Every access token row as stored, keyed by digest."""
    rows = table_rows(app, "ropc_access_tokens")
    return {row.token_digest: dict(row._mapping) for row in rows}


# -- revoking -----------------------------------------------------------------


@FORMATS
def test_revoked_access_token_stops_working_at_once(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format)
    token = issue_token(http, client)
    assert works(http, token)

    response = revoke(http, client, token)

    assert_revocation_ok(response)
    assert not works(http, token)
    assert introspected(http, client, token) == {"active": False}


@pytest.mark.parametrize(
    "token",
    ["unknown-token-value", "A" * 43, "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "\u00e9" * 10],
    ids=["unknown", "reference-shaped", "jwt-shaped", "non-ascii"],
)
def test_unknown_token_answers_200_empty_object(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, token: str
) -> None:
    """RFC 7009 §2.2: an invalid token is no error for the client."""
    live = issue_token(http, oauth_client)
    rows = token_rows(app)

    assert_revocation_ok(revoke(http, oauth_client, token))

    assert token_rows(app) == rows
    assert works(http, live)


@FORMATS
def test_revoking_twice_answers_200_and_keeps_the_first_revocation_time(
    app: flask.Flask, http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format)
    token = issue_token(http, client)
    digest = hashing.digest(token)

    assert_revocation_ok(revoke(http, client, token))
    first = token_rows(app)[digest]["revoked_at"]
    with clock_shifted(app, 120):
        assert_revocation_ok(revoke(http, client, token))

    assert first is not None
    assert token_rows(app)[digest]["revoked_at"] == first
    assert not works(http, token)


@FORMATS
def test_client_cannot_revoke_another_clients_token(
    app: flask.Flask, http: t.Any, make_client: t.Any, token_format: str
) -> None:
    """200 ``{}`` (no hint that the token exists), and the token lives on."""
    owner = token_client(make_client, token_format)
    other = make_client("Other client")
    token = issue_token(http, owner)
    rows = token_rows(app)

    assert_revocation_ok(revoke(http, other, token))

    assert works(http, token)
    assert token_rows(app) == rows
    assert introspected(http, owner, token)["active"] is True


def test_resource_server_cannot_revoke_other_clients_tokens_either(
    app: flask.Flask, http: t.Any, oauth_client: t.Any, make_client: t.Any
) -> None:
    """Being allowed to introspect a token is not owning it."""
    resource_server = make_client("API", scopes=[], is_resource_server=True)
    token = issue_token(http, oauth_client)

    assert_revocation_ok(revoke(http, resource_server, token))

    assert works(http, token)


@FORMATS
def test_public_client_revokes_its_own_token_with_client_id_in_body(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    public = token_client(make_client, token_format, auth_method="none")
    token = issue_token(http, public)
    assert works(http, token)

    assert_revocation_ok(revoke(http, public, token))

    assert not works(http, token)


def test_public_client_cannot_revoke_a_confidential_clients_token(
    http: t.Any, oauth_client: t.Any, make_client: t.Any
) -> None:
    public = make_client(auth_method="none")
    token = issue_token(http, oauth_client)

    assert_revocation_ok(revoke(http, public, token))

    assert works(http, token)


def test_client_secret_post_client_revokes_with_body_credentials(
    http: t.Any, make_client: t.Any
) -> None:
    client, credentials, token = post_client_token(http, make_client)

    response = http.post(REVOKE_URL, data={"token": token, **credentials})

    assert_revocation_ok(response)
    assert not works(http, token)


def test_revocation_changes_only_the_revoked_at_of_that_one_token(
    app: flask.Flask,
    http: t.Any,
    clock: Clock,
    oauth_client: t.Any,
    make_client: t.Any,
) -> None:
    other_client = make_client("Other client", access_token_format="reference")
    target = issue_token(http, oauth_client)
    sibling = issue_token(http, oauth_client)
    bobs = issue_token(http, oauth_client, username="bob")
    foreign = issue_token(http, other_client)
    rows_before, tokens_before = count_rows(app), token_rows(app)
    clients_before = client_snapshot(app)
    now = int(clock())

    assert_revocation_ok(revoke(http, oauth_client, target))

    assert count_rows(app) == rows_before
    assert client_snapshot(app) == clients_before
    tokens_after = token_rows(app)
    digest = hashing.digest(target)
    assert tokens_after.keys() == tokens_before.keys()
    for key, row in tokens_before.items():
        if key != digest:
            assert tokens_after[key] == row
    assert row_without(tokens_after[digest], "revoked_at") == row_without(
        tokens_before[digest], "revoked_at"
    )
    assert tokens_before[digest]["revoked_at"] is None
    assert now <= tokens_after[digest]["revoked_at"] <= int(clock())
    assert not works(http, target)
    assert all(works(http, token) for token in (sibling, bobs, foreign))


def row_without(row: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    return {key: value for key, value in row.items() if key != name}


# -- client authentication ----------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        "none",
        "wrong-secret",
        "unknown-client-basic",
        "unknown-client-in-body",
        "confidential-id-without-secret",
        "public-client-with-secret",
        "disabled-client",
    ],
)
def test_failed_client_authentication_is_401_and_revokes_nothing(
    app: flask.Flask,
    http: t.Any,
    ropc: ROPC,
    oauth_client: t.Any,
    make_client: t.Any,
    credentials: str,
) -> None:
    token = issue_token(http, oauth_client)
    public = make_client("Public", auth_method="none")
    data = {"token": token}
    headers: dict[str, str] = {}
    if credentials == "wrong-secret":
        headers = basic_auth(oauth_client.client_id, "wrong-secret-" + "x" * 30)
    elif credentials == "unknown-client-basic":
        headers = basic_auth("0" * 32, oauth_client.secret)
    elif credentials == "unknown-client-in-body":
        data["client_id"] = "0" * 32
    elif credentials == "confidential-id-without-secret":
        data["client_id"] = oauth_client.client_id
    elif credentials == "public-client-with-secret":
        headers = basic_auth(public.client_id, "any-secret-" + "x" * 30)
    elif credentials == "disabled-client":
        other = make_client("Disabled")
        with app.app_context():
            ropc.clients.update(other.client_id, enabled=False)
        headers = basic_auth(*other)
    rows = token_rows(app)

    response = http.post(REVOKE_URL, data=data, headers=headers)

    assert_oauth_error(response, 401, "invalid_client")
    assert token_rows(app) == rows
    assert works(http, token)


# -- request parameters -------------------------------------------------------


@pytest.mark.parametrize("hint", ["foo", "access_token", "refresh_token"])
def test_token_type_hint_is_ignored(
    http: t.Any, oauth_client: t.Any, hint: str
) -> None:
    """RFC 7009 §2.1: a wrong or unknown hint still revokes the token."""
    token = issue_token(http, oauth_client)

    assert_revocation_ok(revoke(http, oauth_client, token, token_type_hint=hint))

    assert not works(http, token)
