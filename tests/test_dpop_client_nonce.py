"""Per-client DPoP nonces (RFC 9449 §8, §9): a client's ``dpop_nonce``
(``required``, ``off``, ``default``) decides at the token endpoint and, for
its tokens, at ``require_token``; ``default`` follows ``ROPC_DPOP_NONCE``.
The nonce dance itself (rollover, other instances) is tests/test_dpop_nonce.py's
with the global setting; here it runs with a client's own."""

from __future__ import annotations

import json
import typing as t

import pytest

from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import password_form
from conftest import ropc_of
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request

API_URL = ISSUER + "/api/me"
GLOBAL_ON = {"ROPC_ISSUER": ISSUER, "ROPC_DPOP_NONCE": True}


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    return {"ROPC_ISSUER": ISSUER}


def ask_nonce(http: t.Any, client: t.Any, key: DPoPKey) -> str:
    """A proof without a nonce: refused with ``use_dpop_nonce`` and one."""
    response = token_request(http, client, key.proof("POST", TOKEN_URL))
    assert_oauth_error(response, 400, "use_dpop_nonce")
    assert response.headers["Access-Control-Expose-Headers"] == "DPoP-Nonce"
    return str(response.headers["DPoP-Nonce"])


def api_call(http: t.Any, token: str, proof: str) -> t.Any:
    return http.get(
        "/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )


def test_a_client_requiring_nonces_with_the_global_setting_off(
    http: t.Any, make_client: t.Any, validator: t.Any
) -> None:
    client = make_client(dpop_nonce="required")
    key = DPoPKey()
    nonce = ask_nonce(http, client, key)
    assert validator.calls == []  # refused before the password
    retry = token_request(http, client, key.proof("POST", TOKEN_URL, nonce=nonce))
    assert retry.status_code == 200, retry.json
    assert retry.json["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in retry.headers  # the nonce is the current one
    # Another client of the same app, on the default, is not asked.
    other = make_client(name="Other")
    plain = token_request(http, other, DPoPKey().proof("POST", TOKEN_URL))
    assert plain.status_code == 200, plain.json
    assert "DPoP-Nonce" not in plain.headers


def test_a_request_without_a_proof_needs_no_nonce(
    http: t.Any, make_client: t.Any
) -> None:
    """Nonces are about proofs: an ``allowed`` client sending none still
    gets a Bearer token."""
    client = make_client(dpop_nonce="required")
    response = token_request(http, client, None)
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "Bearer"


@pytest.mark.parametrize("app_config", [GLOBAL_ON])
def test_a_client_with_nonces_off_while_the_global_setting_is_on(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(dpop_nonce="off")
    key = DPoPKey()
    form = password_form(scope="api")
    response = token_request(http, client, key.proof("POST", TOKEN_URL), form)
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "DPoP"
    assert "DPoP-Nonce" not in response.headers
    # Its tokens need no nonce at require_token either.
    token = response.json["access_token"]
    ok = api_call(http, token, key.proof("GET", API_URL, token=token))
    assert ok.status_code == 200, ok.json
    assert "DPoP-Nonce" not in ok.headers
    # A client on the default follows the global setting.
    ask_nonce(http, make_client(name="Default"), DPoPKey())


@pytest.mark.parametrize("global_on", [True, False], ids=["global-on", "global-off"])
def test_the_default_follows_the_global_setting(
    make_app: t.Any, global_on: bool
) -> None:
    app = make_app(ROPC_ISSUER=ISSUER, ROPC_DPOP_NONCE=global_on)
    with app.app_context():
        created, secret = ropc_of(app).clients.create("Default", dpop_nonce="default")
    assert created.dpop_nonce == "default"
    client = OAuthClient(created.client_id, secret)
    http = app.test_client()
    response = token_request(http, client, DPoPKey().proof("POST", TOKEN_URL))
    if global_on:
        assert_oauth_error(response, 400, "use_dpop_nonce")
    else:
        assert response.status_code == 200, response.json
        assert "DPoP-Nonce" not in response.headers


def test_an_invented_nonce_gets_a_real_one(http: t.Any, make_client: t.Any) -> None:
    client = make_client(dpop_nonce="required")
    key = DPoPKey()
    response = token_request(
        http, client, key.proof("POST", TOKEN_URL, nonce="made-up")
    )
    assert_oauth_error(response, 400, "use_dpop_nonce")
    nonce = response.headers["DPoP-Nonce"]
    assert nonce != "made-up"
    proof = key.proof("POST", TOKEN_URL, nonce=nonce)
    assert token_request(http, client, proof).status_code == 200


def test_a_rotated_nonce_is_handed_out_and_no_endless_loop(
    http: t.Any, make_client: t.Any, clock: t.Any
) -> None:
    """Over ten minutes, a client that always sends the last nonce it got
    is asked for one once; responses made with an older nonce than the
    current one carry the current one."""
    client = make_client(dpop_nonce="required")
    start = int(clock.freeze())
    clock.at(-(start % 60))  # the start of a step
    key = DPoPKey()
    nonce = ask_nonce(http, client, key)
    handed_out = []
    for _ in range(20):
        clock.advance(30)
        proof = key.proof("POST", TOKEN_URL, nonce=nonce, iat=int(clock()))
        response = token_request(http, client, proof)
        assert response.status_code == 200, response.json
        if "DPoP-Nonce" in response.headers:
            handed_out.append(response.headers["DPoP-Nonce"])
            nonce = response.headers["DPoP-Nonce"]
    # A new nonce every other request (every 60 s step), each a new one.
    assert len(handed_out) == 10
    assert len(set(handed_out)) == 10


def test_the_dance_at_require_token_follows_the_tokens_client(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(dpop_nonce="required")
    key = DPoPKey()
    nonce = ask_nonce(http, client, key)
    body = token_request(
        http,
        client,
        key.proof("POST", TOKEN_URL, nonce=nonce),
        password_form(scope="api"),
    ).json
    token = body["access_token"]
    response = api_call(http, token, key.proof("GET", API_URL, token=token))
    assert_oauth_error(response, 401, "use_dpop_nonce")
    challenge = response.headers.getlist("WWW-Authenticate")[0]
    assert challenge.startswith('DPoP error="use_dpop_nonce"')
    fresh = response.headers["DPoP-Nonce"]
    invented = api_call(
        http, token, key.proof("GET", API_URL, token=token, nonce="made-up")
    )
    assert_oauth_error(invented, 401, "use_dpop_nonce")
    ok = api_call(http, token, key.proof("GET", API_URL, token=token, nonce=fresh))
    assert ok.status_code == 200, ok.json


def test_a_changed_setting_takes_effect_at_once(
    http: t.Any, make_client: t.Any, ropc: t.Any, app: t.Any
) -> None:
    """The setting is read on every request, for tokens issued before too."""
    client = make_client()
    key = DPoPKey()
    form = password_form(scope="api")
    response = token_request(http, client, key.proof("POST", TOKEN_URL), form)
    assert response.status_code == 200, response.json
    token = response.json["access_token"]
    with app.app_context():
        ropc.clients.update(client.client_id, dpop_nonce="required")
    refused = api_call(http, token, key.proof("GET", API_URL, token=token))
    assert_oauth_error(refused, 401, "use_dpop_nonce")
    ask_nonce(http, client, key)
    with app.app_context():
        ropc.clients.update(client.client_id, dpop_nonce="default")
    ok = api_call(http, token, key.proof("GET", API_URL, token=token))
    assert ok.status_code == 200, ok.json


def test_an_unknown_nonce_setting_is_refused_and_nothing_stored(
    ropc: t.Any, app: t.Any, make_client: t.Any
) -> None:
    client = make_client(dpop_nonce="required")
    with app.app_context():
        with pytest.raises(ValueError, match="DPoP nonce setting 'always'"):
            ropc.clients.create("x", dpop_nonce="always")
        with pytest.raises(ValueError, match="choose from required, off, default"):
            ropc.clients.update(client.client_id, dpop_nonce="", name="Renamed")
        clients = ropc.clients.list()
    assert [(c.name, c.dpop_nonce) for c in clients] == [("Test client", "required")]


def test_a_client_requiring_nonces_without_a_secret_fails_closed(
    make_app: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No ``ROPC_DPOP_NONCE_SECRET`` nor ``SECRET_KEY``: no nonce can be
    made, so the client's proofs are refused with a logged server error
    rather than accepted without one."""
    app = make_app(ROPC_ISSUER=ISSUER, SECRET_KEY=None, ROPC_ALLOW_PLAINTEXT_KEYS=True)
    with app.app_context():
        created, secret = ropc_of(app).clients.create("App", dpop_nonce="required")
    client = OAuthClient(created.client_id, secret)
    response = token_request(
        app.test_client(), client, DPoPKey().proof("POST", TOKEN_URL)
    )
    assert_oauth_error(response, 500, "server_error")
    assert f"Client {created.client_id} requires DPoP nonces" in caplog.text


def test_the_cli_sets_shows_and_resets_the_nonce_setting(runner: t.Any) -> None:
    created = runner.invoke(
        args=["ropc", "create-client", "App", "--dpop-nonce", "required", "--json"]
    )
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert data["dpop_nonce"] == "required"
    client_id = data["client_id"]
    shown = runner.invoke(args=["ropc", "show-client", client_id])
    assert "dpop nonce:            required\n" in shown.output
    updated = runner.invoke(
        args=["ropc", "update-client", client_id, "--dpop-nonce", "off"]
    )
    assert updated.exit_code == 0, updated.output
    assert "dpop nonce:            off\n" in updated.output
    # Another change leaves it as it is.
    renamed = runner.invoke(
        args=["ropc", "update-client", client_id, "--name", "B", "--json"]
    )
    assert json.loads(renamed.output)["dpop_nonce"] == "off"
    reset = runner.invoke(
        args=["ropc", "update-client", client_id, "--dpop-nonce", "default"]
    )
    assert "dpop nonce:            app default (ROPC_DPOP_NONCE)\n" in reset.output
    listed = runner.invoke(args=["ropc", "list-clients", "--json"])
    assert json.loads(listed.output)["clients"][0]["dpop_nonce"] == "default"
    plain = runner.invoke(args=["ropc", "create-client", "Plain", "--json"])
    assert json.loads(plain.output)["dpop_nonce"] == "default"


@pytest.mark.parametrize("command", ["create-client", "update-client"])
def test_a_bad_cli_nonce_setting_is_a_clear_error(
    runner: t.Any, make_client: t.Any, command: str
) -> None:
    client = make_client(dpop_nonce="off")
    target = "App" if command == "create-client" else client.client_id
    result = runner.invoke(args=["ropc", command, target, "--dpop-nonce", "always"])
    assert result.exit_code == 2
    assert "Invalid value for '--dpop-nonce'" in result.output
    assert "'required', 'off', 'default'" in result.output
    listed = json.loads(runner.invoke(args=["ropc", "list-clients", "--json"]).output)
    assert [c["dpop_nonce"] for c in listed["clients"]] == ["off"]
