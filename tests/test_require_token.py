"""``@ropc.require_token`` answers as RFC 6750 §3.1 says."""

from __future__ import annotations

import typing as t

import flask
import pytest

from flask_ropc import ROPC

from conftest import SECRET_KEY
from conftest import bearer
from conftest import clock_shifted
from conftest import issue_token


def test_valid_token_reaches_the_view_with_current_token(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client)
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {
        "sub": "user-1",
        "client_id": oauth_client.client_id,
        "scopes": ["api", "profile"],
        "claims": {"role": "member"},
    }


def test_no_credentials_is_401_bearer_challenge_without_error_code(
    http: t.Any,
) -> None:
    """RFC 6750 §3.1: a request without authentication gets no error code."""
    response = http.get("/api/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" not in response.json


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Token abc", "bearer", ""],
    ids=["basic", "other-scheme", "scheme-only", "empty"],
)
def test_other_schemes_count_as_no_bearer_credentials(http: t.Any, header: str) -> None:
    response = http.get("/api/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "unknown-token-value",
        "a" * 43,
        "not a b64token",
        "tok\u00e9n",
        "x" * 10_000,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    ],
    ids=["unknown", "right-length", "spaces", "non-ascii", "huge", "alg-none-jwt"],
)
def test_unknown_or_malformed_token_is_401_invalid_token(
    http: t.Any, token: str
) -> None:
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


def test_expired_token_is_401_invalid_token(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(access_token_lifetime=60)
    token = issue_token(http, client)
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
    with clock_shifted(app, 61):  # the token's lifetime has passed
        response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_insufficient_scope_is_403_naming_the_scope(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client, scope="profile")
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="api"' in challenge


def test_all_space_separated_scopes_are_required(
    http: t.Any, make_client: t.Any
) -> None:
    """``require_token("api admin")`` needs both scopes."""
    only_api = issue_token(http, make_client(scopes=["api"]))
    denied = http.get("/api/admin", headers=bearer(only_api))
    assert denied.status_code == 403
    assert 'scope="api admin"' in denied.headers["WWW-Authenticate"]
    both = issue_token(http, make_client(scopes=["api", "admin"]))
    assert http.get("/api/admin", headers=bearer(both)).status_code == 200


def test_bare_decorator_accepts_any_live_token(http: t.Any, make_client: t.Any) -> None:
    token = issue_token(http, make_client(scopes=[]))
    response = http.get("/api/any", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"sub": "user-1"}
    assert http.get("/api/any").status_code == 401


def test_disabling_the_client_stops_its_tokens_at_once(
    app: flask.Flask, http: t.Any, ropc: ROPC, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client)
    with app.app_context():
        ropc.clients.update(oauth_client.client_id, enabled=False)
    response = http.get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"


def test_deleting_the_client_stops_its_tokens(
    app: flask.Flask, http: t.Any, ropc: ROPC, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client)
    with app.app_context():
        ropc.clients.delete(oauth_client.client_id)
    assert http.get("/api/me", headers=bearer(token)).status_code == 401


def test_current_token_is_none_outside_protected_views(app: flask.Flask) -> None:
    from flask_ropc import current_token

    with app.test_request_context("/"):
        assert current_token == None  # noqa: E711 (a proxy: compare its value)


def test_token_lookup_with_database_down_is_503(tmp_path: t.Any) -> None:
    """A store outage while checking a token is 503, not a 500 page."""
    app = flask.Flask("outage", instance_path=str(tmp_path))
    app.config["ROPC_DATABASE_URI"] = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    app.config["SECRET_KEY"] = SECRET_KEY
    ropc = ROPC(app)

    @app.get("/api")
    @ropc.require_token("api")
    def api() -> str:
        return "never"

    response = app.test_client().get("/api", headers=bearer("a" * 43))
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
