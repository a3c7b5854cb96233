"""A real OAuth client library, over real HTTP, gets and uses our tokens."""

from __future__ import annotations

import typing as t

import pytest
import requests
from oauthlib.oauth2 import LegacyApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from conftest import USERS

pytestmark = pytest.mark.live


@pytest.fixture(autouse=True)
def _allow_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// outright, even to 127.0.0.1; our server allows
    loopback (as Authlib does), so lift the client-side check for these tests."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_legacy_client_gets_token_and_calls_api(
    live_server: t.Any, oauth_client: t.Any
) -> None:
    """``LegacyApplicationClient`` is requests-oauthlib's password grant."""
    session = OAuth2Session(
        client=LegacyApplicationClient(client_id=oauth_client.client_id)
    )
    token = session.fetch_token(
        token_url=f"{live_server.url}/oauth/token",
        username="ann",
        password=USERS["ann"][0],
        scope=["api"],
        auth=HTTPBasicAuth(oauth_client.client_id, oauth_client.secret),
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ["api"]
    response = session.get(f"{live_server.url}/api/me")
    assert response.status_code == 200
    assert response.json()["sub"] == "user-1"


def test_requests_oauthlib_public_client_with_body_client_id(
    live_server: t.Any, make_client: t.Any
) -> None:
    client = make_client(auth_method="none")
    session = OAuth2Session(client=LegacyApplicationClient(client_id=client.client_id))
    token = session.fetch_token(
        token_url=f"{live_server.url}/oauth/token",
        username="bob",
        password=USERS["bob"][0],
        include_client_id=True,
    )
    assert set(token["scope"]) == {"api", "profile"}
    assert session.get(f"{live_server.url}/api/me").json()["sub"] == "user-2"


def test_wrong_password_is_invalid_grant_over_http(
    live_server: t.Any, oauth_client: t.Any
) -> None:
    response = requests.post(
        f"{live_server.url}/oauth/token",
        data={"grant_type": "password", "username": "ann", "password": "wrong"},
        auth=(oauth_client.client_id, oauth_client.secret),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }
    assert response.headers["Cache-Control"] == "no-store"
