"""DPoP with clients we did not write, against a live server: Python's
``requests-oauth2client`` (its ``dpop=True`` on the password grant, refresh
and ``DPoPToken`` as requests auth) and Node's ``oauth4webapi`` (its generic
token endpoint request with ``grant_type=password``, then refresh and a
protected call), each with and without server nonces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import typing as t

import pytest
import requests
from requests_oauth2client import DPoPKey
from requests_oauth2client import DPoPToken
from requests_oauth2client import OAuth2Client
from test_interop import NODE_DIR

from conftest import USERS
from conftest import LiveServer

pytestmark = pytest.mark.live

NODE_FLOW = NODE_DIR / "dpop_flow.mjs"


@pytest.fixture(params=["no-nonce", "nonce", "client-nonce"])
def nonce_mode(request: pytest.FixtureRequest) -> str:
    """No nonces; nonces for every client (``ROPC_DPOP_NONCE``); or only for
    the test's client (its ``dpop_nonce = required``, the global one off)."""
    return str(request.param)


@pytest.fixture
def app_config(nonce_mode: str) -> dict[str, t.Any]:
    return {"ROPC_DPOP_NONCE": nonce_mode == "nonce"}


@pytest.fixture
def dpop_nonce(nonce_mode: str) -> str:
    """The test client's nonce setting."""
    return "required" if nonce_mode == "client-nonce" else "default"


def test_requests_oauth2client_password_refresh_and_api(
    live_server: LiveServer, make_client: t.Any, dpop_nonce: str
) -> None:
    """A public client: the refresh must prove the login's key."""
    client = make_client(
        auth_methods=["none"],
        grant_types=["password", "refresh_token"],
        dpop_nonce=dpop_nonce,
    )
    oauth = OAuth2Client(
        token_endpoint=f"{live_server.url}/oauth/token",
        client_id=client.client_id,
        testing=True,  # plain http on 127.0.0.1
    )
    key = DPoPKey.generate(alg="ES256")
    password = USERS["ann"][0]
    token = oauth.resource_owner_password(
        "ann", password, scope="api offline_access", dpop=True, dpop_key=key
    )
    assert isinstance(token, DPoPToken)
    assert token.token_type == "DPoP"
    me = requests.get(f"{live_server.url}/api/me", auth=token, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "user-1"

    # Its refresh_token() proves with the DPoPToken's own key.
    refreshed = oauth.refresh_token(token)
    assert isinstance(refreshed, DPoPToken)
    again = requests.get(f"{live_server.url}/api/me", auth=refreshed, timeout=30)
    assert again.status_code == 200, again.text

    # A thief holding the refresh token but not the key gets nothing.
    stolen = requests.post(
        f"{live_server.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed.refresh_token,
            "client_id": client.client_id,
        },
        timeout=30,
    )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    # And the access token alone, as Bearer, is refused (RFC 9449 §7.2).
    downgrade = requests.get(
        f"{live_server.url}/api/me",
        headers={"Authorization": f"Bearer {refreshed.access_token}"},
        timeout=30,
    )
    assert downgrade.status_code == 401


def test_requests_oauth2client_confidential_client_rotates_its_key(
    live_server: LiveServer, make_client: t.Any, dpop_nonce: str
) -> None:
    client = make_client(
        grant_types=["password", "refresh_token"], dpop_nonce=dpop_nonce
    )
    oauth = OAuth2Client(
        token_endpoint=f"{live_server.url}/oauth/token",
        auth=(client.client_id, client.secret),
        testing=True,
    )
    token = oauth.resource_owner_password(
        "ann", USERS["ann"][0], scope="api offline_access", dpop=True
    )
    new_key = DPoPKey.generate(alg="EdDSA")
    refreshed = oauth.token_request(
        {"grant_type": "refresh_token", "refresh_token": token.refresh_token},
        dpop_key=new_key,
    )
    assert refreshed.token_type == "DPoP"
    me = requests.get(f"{live_server.url}/api/me", auth=refreshed, timeout=30)
    assert me.status_code == 200, me.text


def test_node_oauth4webapi(
    live_server: LiveServer, make_client: t.Any, dpop_nonce: str
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "oauth4webapi").is_dir():
        pytest.skip("oauth4webapi is not installed: run scripts/install-node-client")
    client = make_client(
        auth_methods=["none"],
        grant_types=["password", "refresh_token"],
        dpop_nonce=dpop_nonce,
    )
    env = dict(
        os.environ,
        ROPC_URL=live_server.url,
        ROPC_CLIENT_ID=client.client_id,
        ROPC_USERNAME="ann",
        ROPC_PASSWORD=USERS["ann"][0],
    )
    completed = subprocess.run(
        ["node", str(NODE_FLOW)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(completed.stdout)
    assert "crash" not in results, results
    assert results["login"] == {"ok": True, "token_type": "dpop"}, results
    assert results["api"]["status"] == 200, results
    assert results["api"]["body"]["sub"] == "user-1"
    assert results["refresh"]["ok"] is True, results
    assert results["api_after_refresh"]["status"] == 200, results
    assert results["bearer_downgrade"]["status"] == 401
    nonces = dpop_nonce == "required" or live_server.app.config["ROPC_DPOP_NONCE"]
    # With nonces: one use_dpop_nonce, at the login. oauth4webapi keeps the
    # nonce per origin, and ours is good at every endpoint of the server.
    assert results["nonce_retries"] == (1 if nonces else 0), results
