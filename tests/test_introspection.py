"""Token introspection at ``POST /oauth/introspect`` (RFC 7662).

Through the Flask test client and the real database (SQLite, and PostgreSQL
when ``ROPC_TEST_DATABASE_URL`` is set), for JWT and reference access tokens.
"""

from __future__ import annotations

import base64
import json
import typing as t

import flask
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from flask_ropc import ROPC

from conftest import Clock
from conftest import assert_oauth_error
from conftest import basic_auth
from conftest import client_snapshot
from conftest import clock_shifted
from conftest import count_rows
from conftest import introspect
from conftest import issue_token
from conftest import post_client_token
from conftest import token_client

INTROSPECT_URL = "/oauth/introspect"
INACTIVE = {"active": False}

#: Both access token formats: the default RFC 9068 JWT, and opaque reference.
FORMATS = pytest.mark.parametrize("token_format", ["jwt", "reference"])


# -- helpers ------------------------------------------------------------------


def assert_inactive(response: t.Any) -> None:
    """RFC 7662 §2.2: an inactive token gets ``{"active": false}`` and no more."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json() == INACTIVE
    assert response.headers["Cache-Control"] == "no-store"


def assert_error_not_inactive(response: t.Any, status: int, error: str) -> None:
    """An OAuth error, never dressed up as ``{"active": false}``."""
    assert_oauth_error(response, status, error)
    assert "active" not in response.get_json()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(part: str) -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], json.loads(base64.urlsafe_b64decode(part + "==")))


# -- active tokens ------------------------------------------------------------


@FORMATS
def test_live_token_is_active_with_the_rfc7662_claims(
    http: t.Any, clock: Clock, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format)
    before = int(clock())
    token = issue_token(http, client)
    after = int(clock())

    response = introspect(http, client, token)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {
        "active",
        "scope",
        "client_id",
        "sub",
        "exp",
        "iat",
        "token_type",
        "iss",
        "aud",
        "amr",
        "acr",
        "auth_time",
    }
    assert body["active"] is True
    assert body["amr"] == ["pwd"]
    assert body["acr"] == "urn:flask-ropc:acr:pwd"
    assert body["auth_time"] == body["iat"]
    assert body["scope"] == "api profile"
    assert body["client_id"] == client.client_id
    assert body["sub"] == "user-1"
    assert before <= body["iat"] <= after
    assert body["exp"] == body["iat"] + 3600
    assert body["token_type"] == "Bearer"
    assert body["iss"] == "http://localhost"
    assert body["aud"] == "http://localhost"


def test_introspected_claims_match_the_jwt_itself(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client, scope="api")
    claims = jwt.decode(token, options={"verify_signature": False})

    body = introspect(http, oauth_client, token).get_json()

    assert body["active"] is True
    for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud"):
        assert body[name] == claims[name], name
    assert body["scope"] == "api"


@FORMATS
def test_aud_is_the_clients_own_audience_when_it_has_one(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format, audience="https://api.example")
    token = issue_token(http, client)

    body = introspect(http, client, token).get_json()

    assert body["active"] is True
    assert body["aud"] == "https://api.example"
    assert body["iss"] == "http://localhost"


def test_client_secret_post_client_may_introspect_with_body_credentials(
    http: t.Any, make_client: t.Any
) -> None:
    client, credentials, token = post_client_token(http, make_client)

    response = http.post(INTROSPECT_URL, data={"token": token, **credentials})

    assert response.status_code == 200
    assert response.get_json()["active"] is True
    assert response.get_json()["client_id"] == client.client_id


@FORMATS
def test_resource_server_may_introspect_other_clients_tokens(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    owner = token_client(make_client, token_format)
    resource_server = make_client("API", scopes=[], is_resource_server=True)
    token = issue_token(http, owner)

    body = introspect(http, resource_server, token).get_json()

    assert body["active"] is True
    assert body["client_id"] == owner.client_id
    assert body["sub"] == "user-1"
    assert body["scope"] == "api profile"


@FORMATS
def test_token_is_active_until_the_second_before_it_expires(
    app: flask.Flask, http: t.Any, clock: Clock, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format, access_token_lifetime=60)
    token = issue_token(http, client)
    body = introspect(http, client, token).get_json()
    remaining = body["exp"] - int(clock())

    with clock_shifted(app, remaining - 1):
        assert introspect(http, client, token).get_json()["active"] is True
    with clock_shifted(app, remaining):
        assert_inactive(introspect(http, client, token))


def test_introspection_writes_nothing(
    app: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    """Asking about a token neither changes it nor marks the client as used."""
    token = issue_token(http, oauth_client)
    rows, clients = count_rows(app), client_snapshot(app)

    assert introspect(http, oauth_client, token).get_json()["active"] is True
    assert_inactive(introspect(http, oauth_client, "unknown-token"))

    assert count_rows(app) == rows
    assert client_snapshot(app) == clients


# -- inactive tokens ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "unknown-token-value",
        "A" * 43,
        "not a token at all \u00e9",
        "x" * 5000,
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEifQ.",
    ],
    ids=["unknown", "reference-shaped", "garbage", "huge", "dots", "alg-none-jwt"],
)
def test_unknown_or_malformed_token_is_just_inactive(
    http: t.Any, oauth_client: t.Any, token: str
) -> None:
    assert_inactive(introspect(http, oauth_client, token))


@pytest.mark.parametrize("claim", ["sub", "scope", "exp"])
def test_jwt_with_tampered_payload_is_inactive(
    http: t.Any, oauth_client: t.Any, claim: str
) -> None:
    token = issue_token(http, oauth_client, scope="profile")
    header, payload, signature = token.split(".")
    claims = b64url_json(payload)
    claims[claim] = {"sub": "user-2", "scope": "api profile admin"}.get(
        claim, claims["exp"] + 86400
    )
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])

    assert_inactive(introspect(http, oauth_client, forged))
    # The untouched token is still fine: only the forgery was refused.
    assert introspect(http, oauth_client, token).get_json()["active"] is True


def test_jwt_resigned_with_a_foreign_key_under_our_kid_is_inactive(
    http: t.Any, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, foreign_key, algorithm="ES256", headers=header)

    assert_inactive(introspect(http, oauth_client, forged))


@FORMATS
def test_expired_token_is_inactive(
    app: flask.Flask, http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format)
    token = issue_token(http, client)

    with clock_shifted(app, 3600 + 5):
        assert_inactive(introspect(http, client, token))


@FORMATS
def test_revoked_token_is_inactive(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = token_client(make_client, token_format)
    token = issue_token(http, client)
    assert introspect(http, client, token).get_json()["active"] is True

    revoked = http.post(
        "/oauth/revoke", data={"token": token}, headers=basic_auth(*client)
    )
    assert revoked.status_code == 200

    assert_inactive(introspect(http, client, token))


@FORMATS
def test_token_of_a_disabled_client_is_inactive(
    app: flask.Flask, http: t.Any, ropc: ROPC, make_client: t.Any, token_format: str
) -> None:
    owner = token_client(make_client, token_format)
    resource_server = make_client("API", scopes=[], is_resource_server=True)
    token = issue_token(http, owner)
    assert introspect(http, resource_server, token).get_json()["active"] is True

    with app.app_context():
        ropc.clients.update(owner.client_id, enabled=False)

    assert_inactive(introspect(http, resource_server, token))


@FORMATS
def test_other_clients_token_is_inactive_for_a_client_that_is_no_resource_server(
    http: t.Any, make_client: t.Any, token_format: str
) -> None:
    """Telling a client about someone else's token would leak it (§4)."""
    owner = token_client(make_client, token_format)
    other = make_client("Other client")
    token = issue_token(http, owner)

    assert_inactive(introspect(http, other, token))
    assert introspect(http, owner, token).get_json()["active"] is True


# -- client authentication ----------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    ["none", "wrong-secret", "unknown-client", "bearer-token", "secret-in-body"],
)
def test_caller_that_fails_client_authentication_is_401_invalid_client(
    http: t.Any, make_client: t.Any, credentials: str
) -> None:
    basic_client = make_client(auth_method="client_secret_basic")
    token = issue_token(http, basic_client)
    data = {"token": token}
    headers: dict[str, str] = {}
    if credentials == "wrong-secret":
        headers = basic_auth(basic_client.client_id, "wrong-secret-" + "x" * 30)
    elif credentials == "unknown-client":
        headers = basic_auth("0" * 32, basic_client.secret)
    elif credentials == "bearer-token":
        headers = {"Authorization": f"Bearer {token}"}
    elif credentials == "secret-in-body":
        # Registered for client_secret_basic: the body method is refused.
        data.update(client_id=basic_client.client_id, client_secret=basic_client.secret)

    response = http.post(INTROSPECT_URL, data=data, headers=headers)

    assert_error_not_inactive(response, 401, "invalid_client")


def test_public_client_may_not_introspect_even_its_own_token(
    http: t.Any, make_client: t.Any
) -> None:
    public = make_client(auth_method="none")
    token = issue_token(http, public)

    response = http.post(
        INTROSPECT_URL, data={"token": token, "client_id": public.client_id}
    )

    assert_error_not_inactive(response, 401, "invalid_client")


def test_disabled_client_may_not_introspect(
    app: flask.Flask, http: t.Any, ropc: ROPC, oauth_client: t.Any
) -> None:
    token = issue_token(http, oauth_client)
    with app.app_context():
        ropc.clients.update(oauth_client.client_id, enabled=False)

    assert_error_not_inactive(
        introspect(http, oauth_client, token), 401, "invalid_client"
    )


# -- request parameters -------------------------------------------------------


@pytest.mark.parametrize("hint", ["foo", "access_token", "refresh_token"])
@FORMATS
def test_token_type_hint_is_ignored(
    http: t.Any, make_client: t.Any, token_format: str, hint: str
) -> None:
    """RFC 7662 §2.1: the server may ignore the hint; an unknown one is no error."""
    client = token_client(make_client, token_format)
    token = issue_token(http, client)

    live = introspect(http, client, token, token_type_hint=hint)
    unknown = introspect(http, client, "unknown-token", token_type_hint=hint)

    assert live.status_code == 200
    assert live.get_json()["active"] is True
    assert live.get_json()["client_id"] == client.client_id
    assert_inactive(unknown)
