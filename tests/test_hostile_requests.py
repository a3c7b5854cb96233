"""Never a 500, never an HTML page: hostile tokens and Host headers (#13).

* A bearer token whose JOSE header is JSON but not an object (``"alg"``,
  ``[1]``) is ``invalid_token``, not a 500 (item 7).
* A ``kid`` no database can be asked about (a lone surrogate, NUL, too long)
  is refused before any lookup, on SQLite and PostgreSQL (item 8).
* A Host (or, through ProxyFix, X-Forwarded-Host) that Werkzeug cannot use
  gets JSON ``invalid_request`` from every route we own: our endpoints, the
  discovery documents and views decorated with ``require_token`` (with its
  ``WWW-Authenticate``); the app's other views are left to the app (item 9).

Requests with such hosts go through :func:`conftest.wsgi_open`: the test
client itself raises on them after the response. One test sends them over a
real socket to a live server.
"""

from __future__ import annotations

import base64
import json
import typing as t

import flask
import pytest
from joserfc.jwk import ECKey

from flask_ropc import ROPC
from flask_ropc import ConfigurationError

from conftest import OAuthClient
from conftest import basic_auth
from conftest import bearer
from conftest import issue_token
from conftest import ropc_of


def b64url(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def token_with_header(header: str) -> str:
    """A compact JWS with ``header`` (JSON text) and a junk signature."""
    return f"{b64url(header)}.{b64url('{}')}.AAAA"


def assert_invalid_token(response: t.Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="invalid_token"'
    )


# -- item 7: JOSE headers of every JSON type --------------------------------------


@pytest.mark.parametrize(
    "header",
    ['"alg"', '""', '["alg", "ES256"]', "[]", "5", "1.5", "null", "true", "false"],
)
def test_a_jose_header_that_is_not_an_object_is_an_invalid_token(
    http: t.Any, make_client: t.Any, header: str
) -> None:
    token = token_with_header(header)
    assert_invalid_token(http.get("/api/me", headers=bearer(token)))
    api = make_client("API", scopes=[], is_resource_server=True)
    response = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(*api)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"active": False}


# -- item 8: kids no database can be asked about -----------------------------------


@pytest.mark.parametrize(
    "kid",
    ["\ud800", "a\udfffb", "a\x00b", "\x00", "k\x7f", "", "k" * 65, "k" * 10_000],
    ids=["surrogate", "low-surrogate", "nul", "only-nul", "del", "empty", "65", "10k"],
)
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_kid_that_cannot_be_ours_is_refused_before_any_lookup(
    http: t.Any, make_client: t.Any, kid: str, alg: str
) -> None:
    # A key exists, so that the database is asked about unknown kids.
    client = make_client()
    issue_token(http, client)
    token = token_with_header(json.dumps({"typ": "at+jwt", "alg": alg, "kid": kid}))
    assert_invalid_token(http.get("/api/me", headers=bearer(token)))
    api = make_client("API", scopes=[], is_resource_server=True)
    response = http.post(
        "/oauth/introspect", data={"token": token}, headers=basic_auth(*api)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"active": False}


def configured_jwk(kid: str) -> dict[str, t.Any]:
    key = ECKey.generate_key("P-256")
    return dict(key.as_dict(private=True), kid=kid)


@pytest.mark.parametrize("kid", ["a\x00b", "\ud800", "k" * 65, "tab\tkid"])
def test_a_configured_key_whose_kid_could_never_verify_is_refused_at_start(
    tmp_path: t.Any, kid: str
) -> None:
    app = flask.Flask("bad_kid", instance_path=str(tmp_path))
    app.config["ROPC_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app.config["ROPC_SIGNING_KEYS"] = [configured_jwk(kid)]
    with pytest.raises(ConfigurationError, match="kid"):
        ROPC(app)


def test_a_configured_kid_of_printable_characters_signs_and_verifies(
    make_app: t.Any,
) -> None:
    app = make_app(ROPC_SIGNING_KEYS=[configured_jwk("clé 2024-01")])
    with app.app_context():
        client, secret = ropc_of(app).clients.create("c", scopes=["api"])
    http = app.test_client()
    token = issue_token(http, OAuthClient(client.client_id, secret))
    assert http.get("/api/me", headers=bearer(token)).status_code == 200
