"""The DPoP nonce dance (RFC 9449 §8, §9) with ``ROPC_DPOP_NONCE``: at the
token endpoint and at ``require_token``, across the rollover and across
instances, with no endless loop."""

from __future__ import annotations

import typing as t

import flask
import pytest

from flask_ropc import ROPC
from flask_ropc.errors import ConfigurationError

from conftest import assert_oauth_error
from conftest import clock_of
from conftest import password_form
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request

API_URL = ISSUER + "/api/me"


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    return {"ROPC_ISSUER": ISSUER, "ROPC_DPOP_NONCE": True}


def ask_nonce(http: t.Any, client: t.Any, key: DPoPKey) -> str:
    """The first request, without a nonce: the server answers with one."""
    response = token_request(http, client, key.proof("POST", TOKEN_URL))
    assert_oauth_error(response, 400, "use_dpop_nonce")
    assert response.headers["Access-Control-Expose-Headers"] == "DPoP-Nonce"
    return str(response.headers["DPoP-Nonce"])


def test_the_dance_at_the_token_endpoint(
    http: t.Any, oauth_client: t.Any, validator: t.Any
) -> None:
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    assert validator.calls == []  # no password was checked for it
    response = token_request(
        http, oauth_client, key.proof("POST", TOKEN_URL, nonce=nonce)
    )
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "DPoP"
    # The nonce is current: nothing new to hand out.
    assert "DPoP-Nonce" not in response.headers


def test_the_refused_first_proof_did_not_burn_its_jti(
    http: t.Any, oauth_client: t.Any
) -> None:
    key = DPoPKey()
    response = token_request(http, oauth_client, key.proof("POST", TOKEN_URL, jti="j"))
    nonce = response.headers["DPoP-Nonce"]
    retry = key.proof("POST", TOKEN_URL, jti="j", nonce=nonce)
    assert token_request(http, oauth_client, retry).status_code == 200


def test_an_invented_nonce_gets_a_real_one(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    response = token_request(
        http, oauth_client, key.proof("POST", TOKEN_URL, nonce="made-up")
    )
    assert_oauth_error(response, 400, "use_dpop_nonce")
    nonce = response.headers["DPoP-Nonce"]
    assert nonce != "made-up"
    proof = key.proof("POST", TOKEN_URL, nonce=nonce)
    assert token_request(http, oauth_client, proof).status_code == 200


def test_the_rollover_window(http: t.Any, oauth_client: t.Any, clock: t.Any) -> None:
    """A nonce is good for its 60 s step and the two after; a response made
    with an older one than the current hands out the current one."""
    start = int(clock.freeze())
    clock.at(-(start % 60))  # the start of a step
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    now = int(clock())
    clock.advance(179)  # still in the third step
    later = key.proof("POST", TOKEN_URL, nonce=nonce, iat=now + 179)
    response = token_request(http, oauth_client, later)
    assert response.status_code == 200, response.json
    fresh = response.headers["DPoP-Nonce"]
    assert fresh != nonce
    clock.advance(1)  # the fourth step: the first nonce has expired
    old = key.proof("POST", TOKEN_URL, nonce=nonce, iat=now + 180)
    expired = token_request(http, oauth_client, old)
    assert_oauth_error(expired, 400, "use_dpop_nonce")
    newest = expired.headers["DPoP-Nonce"]
    assert newest not in (nonce, fresh)
    # The nonce handed out a second ago still works.
    recent = key.proof("POST", TOKEN_URL, nonce=fresh, iat=now + 180)
    assert token_request(http, oauth_client, recent).status_code == 200


def test_no_endless_loop(http: t.Any, oauth_client: t.Any, clock: t.Any) -> None:
    """A client that always sends the last nonce it got is asked for one at
    most once, over ten minutes of requests."""
    clock.freeze()
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    for _ in range(20):
        clock.advance(30)
        proof = key.proof("POST", TOKEN_URL, nonce=nonce, iat=int(clock()))
        response = token_request(http, oauth_client, proof)
        assert response.status_code == 200, response.json
        nonce = response.headers.get("DPoP-Nonce", nonce)


def test_a_nonce_from_another_instance_is_accepted(
    make_app: t.Any, http: t.Any, oauth_client: t.Any
) -> None:
    """Instances sharing SECRET_KEY (or ROPC_DPOP_NONCE_SECRET) share nonces."""
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    other = make_app(ROPC_ISSUER=ISSUER, ROPC_DPOP_NONCE=True)
    clock_of(other).offset = clock_of(http.application).offset
    proof = key.proof("POST", TOKEN_URL, nonce=nonce)
    assert token_request(other.test_client(), oauth_client, proof).status_code == 200


def test_a_nonce_from_a_server_with_another_secret_is_refused(
    make_app: t.Any, http: t.Any, oauth_client: t.Any
) -> None:
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    other = make_app(
        ROPC_ISSUER=ISSUER, ROPC_DPOP_NONCE=True, ROPC_DPOP_NONCE_SECRET="another" * 5
    )
    proof = key.proof("POST", TOKEN_URL, nonce=nonce)
    response = token_request(other.test_client(), oauth_client, proof)
    assert_oauth_error(response, 400, "use_dpop_nonce")


def test_the_dance_at_require_token(http: t.Any, oauth_client: t.Any) -> None:
    key = DPoPKey()
    nonce = ask_nonce(http, oauth_client, key)
    body = token_request(
        http,
        oauth_client,
        key.proof("POST", TOKEN_URL, nonce=nonce),
        password_form(scope="api"),
    ).json
    token = body["access_token"]
    bare = key.proof("GET", API_URL, token=token)
    response = http.get(
        "/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": bare}
    )
    assert_oauth_error(response, 401, "use_dpop_nonce")
    challenge = response.headers.getlist("WWW-Authenticate")[0]
    assert challenge.startswith('DPoP error="use_dpop_nonce"')
    fresh = response.headers["DPoP-Nonce"]
    proof = key.proof("GET", API_URL, token=token, nonce=fresh)
    ok = http.get("/api/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert ok.status_code == 200, ok.json


def test_nonces_without_a_secret_are_a_configuration_error(tmp_path: t.Any) -> None:
    app = flask.Flask("nonce_app", instance_path=str(tmp_path))
    app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        ROPC_ISSUER=ISSUER,
        ROPC_DPOP_NONCE=True,
        ROPC_ALLOW_PLAINTEXT_KEYS=True,
    )
    with pytest.raises(ConfigurationError, match="ROPC_DPOP_NONCE_SECRET"):
        ROPC(app)
