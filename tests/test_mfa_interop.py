"""Auth0's own Python SDK (``auth0-python``) through our MFA flow, live.

A client library we did not write: ``GetToken.login`` sends the password
grant and turns Auth0's ``mfa_required`` answer into an ``Auth0Error`` whose
``content`` carries the ``mfa_token``; the SDK has no method for the MFA
grants, so the continuation goes through its generic, client-authenticated
``authenticated_post``, with the fields of Auth0's documentation
("Authenticate with one-time password": ``grant_type``
``http://auth0.com/oauth/grant-type/mfa-otp``, ``mfa_token``, ``otp``).
Then the SDK's ``refresh_token`` and a protected call with ``requests``.
"""

from __future__ import annotations

import typing as t

import flask
import pytest
import requests
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error

from conftest import USERS
from conftest import LiveServer
from conftest import bearer
from mfa_helpers import MFA_GRANTS
from mfa_helpers import MFA_OTP
from mfa_helpers import MFA_RECOVERY
from mfa_helpers import enable_mfa
from mfa_helpers import otp_now

pytestmark = pytest.mark.live


@pytest.fixture
def sdk(app: flask.Flask, live_server: LiveServer, make_client: t.Any) -> GetToken:
    enable_mfa(app)
    client = make_client("Auth0 SDK app", grant_types=MFA_GRANTS)
    domain = live_server.url.removeprefix("http://")
    return GetToken(
        domain, client.client_id, client.secret, protocol="http", telemetry=False
    )


def _password_step(sdk: GetToken, scope: str = "api offline_access") -> str:
    with pytest.raises(Auth0Error) as raised:
        sdk.login("ann", USERS["ann"][0], scope=scope, grant_type="password")
    error = raised.value
    assert (error.status_code, error.error_code) == (403, "mfa_required")
    assert error.content["mfa_requirements"]["challenge"][0] == {"type": "otp"}
    return str(error.content["mfa_token"])


def _continue(sdk: GetToken, **fields: str) -> t.Any:
    url = f"{sdk.protocol}://{sdk.domain}/oauth/token"
    return sdk.authenticated_post(url, data={"client_id": sdk.client_id, **fields})


def test_auth0s_sdk_logs_in_with_an_otp_refreshes_and_calls_the_api(
    app: flask.Flask, sdk: GetToken, live_server: LiveServer
) -> None:
    mfa_token = _password_step(sdk)
    tokens = _continue(sdk, grant_type=MFA_OTP, mfa_token=mfa_token, otp=otp_now(app))
    assert tokens["token_type"] == "Bearer" and tokens["display_name"] == "Ann"
    me = requests.get(
        f"{live_server.url}/api/me", headers=bearer(tokens["access_token"]), timeout=10
    )
    assert me.status_code == 200 and me.json()["sub"] == "user-1"
    refreshed = sdk.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"] != tokens["access_token"]
    # The mfa_token was single-use: the SDK sees Auth0's error shape.
    with pytest.raises(Auth0Error) as again:
        _continue(sdk, grant_type=MFA_OTP, mfa_token=mfa_token, otp=otp_now(app))
    assert again.value.error_code == "invalid_grant"


def test_auth0s_sdk_sees_a_wrong_code_then_uses_a_recovery_code(
    sdk: GetToken,
) -> None:
    mfa_token = _password_step(sdk, scope="api")
    with pytest.raises(Auth0Error) as wrong:
        _continue(sdk, grant_type=MFA_OTP, mfa_token=mfa_token, otp="000000")
    assert (wrong.value.status_code, wrong.value.error_code) == (400, "invalid_grant")
    assert wrong.value.message == "Invalid otp_code."
    tokens = _continue(
        sdk, grant_type=MFA_RECOVERY, mfa_token=mfa_token, recovery_code="RC-user-1"
    )
    assert tokens["scope"] == "api" and tokens["recovery_code"].startswith("RC-")
