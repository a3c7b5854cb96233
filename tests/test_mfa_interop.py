"""A client written from Auth0's documentation, not from our code, live.

Auth0's Python SDK (``auth0-python``) has no method for the MFA grants, and
posts JSON bodies, which RFC 6749 §4.3.2 does not allow and our token
endpoint refuses; so this client follows Auth0's published HTTP
documentation instead ("Authenticate With One-Time Password", "Authenticate
With Recovery Code", "Resource Owner Password Flow" with MFA), with plain
``requests`` on a real server:

* ``POST /oauth/token`` ``application/x-www-form-urlencoded`` with
  ``grant_type=password``, ``username``, ``password``, ``client_id``,
  ``client_secret``, ``scope``; the answer ``403`` ``mfa_required`` carries
  ``mfa_token`` (and ``mfa_requirements``);
* then ``grant_type=http://auth0.com/oauth/grant-type/mfa-otp`` with
  ``client_id``, ``client_secret``, ``mfa_token``, ``otp``; or
  ``.../mfa-recovery-code`` with ``recovery_code``, whose answer may carry a
  new ``recovery_code``.
"""

from __future__ import annotations

import typing as t

import flask
import pytest
import requests

from conftest import USERS
from conftest import LiveServer
from conftest import bearer
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import MFA_RECOVERY
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now

pytestmark = pytest.mark.live


class Auth0DocsClient:
    """The token requests of Auth0's MFA documentation, verbatim."""

    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self.url = base_url + "/oauth/token"
        self.credentials = {"client_id": client_id, "client_secret": client_secret}

    def post(self, **fields: str) -> requests.Response:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        data = {**fields, **self.credentials}
        return requests.post(self.url, data=data, headers=headers, timeout=10)

    def password(self, username: str, password: str, scope: str) -> t.Any:
        return self.post(
            grant_type="password", username=username, password=password, scope=scope
        )


@pytest.fixture
def docs_client(
    app: flask.Flask, live_server: LiveServer, make_client: t.Any
) -> Auth0DocsClient:
    enable_mfa(app)
    client = make_client("Auth0 docs app", grant_types=MFA_GRANTS)
    assert client.secret is not None
    return Auth0DocsClient(live_server.url, client.client_id, client.secret)


def _mfa_token(client: Auth0DocsClient, scope: str) -> str:
    response = client.password("ann", USERS["ann"][0], scope)
    assert response.status_code == 403
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == "mfa_required"
    assert {"type": "otp"} in body["mfa_requirements"]["challenge"]
    return str(body["mfa_token"])


def test_the_documented_otp_flow_logs_in_refreshes_and_calls_the_api(
    app: flask.Flask, docs_client: Auth0DocsClient, live_server: LiveServer
) -> None:
    mfa_token = _mfa_token(docs_client, "api offline_access")
    response = docs_client.post(
        grant_type=MFA_OTP, mfa_token=mfa_token, otp=otp_now(app)
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    me = requests.get(
        f"{live_server.url}/api/me", headers=bearer(tokens["access_token"]), timeout=10
    )
    assert me.status_code == 200 and me.json()["sub"] == "user-1"
    refreshed = docs_client.post(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refreshed.status_code == 200, refreshed.text
    # Used once: the documented error shape for a spent mfa_token.
    again = docs_client.post(grant_type=MFA_OTP, mfa_token=mfa_token, otp=otp_now(app))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_the_documented_recovery_code_flow_returns_a_new_code(
    docs_client: Auth0DocsClient,
) -> None:
    mfa_token = _mfa_token(docs_client, "api")
    wrong = docs_client.post(grant_type=MFA_OTP, mfa_token=mfa_token, otp="000000")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert wrong.json()["error_description"] == "Invalid otp_code."
    response = docs_client.post(
        grant_type=MFA_RECOVERY, mfa_token=mfa_token, recovery_code="RC-user-1"
    )
    assert response.status_code == 200, response.text
    assert response.json()["recovery_code"].startswith("RC-")
