"""``acr_values`` and ``max_age`` at the token endpoint (our extension).

A client that a resource told ``insufficient_user_authentication`` (RFC 9470)
asks the token endpoint for more: the password and refresh grants answer
``mfa_required`` when the login would not meet ``acr_values``, and the MFA
grants then issue tokens that do; a refresh family older than ``max_age`` is
told to log in again.
"""

from __future__ import annotations

import typing as t

import flask
import pytest

from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import clock_of
from conftest import introspect
from conftest import login
from conftest import ropc_of
from conftest import table_rows
from mfa_helpers import MFA_GRANTS
from mfa_helpers import Factors
from mfa_helpers import otp_now
from mfa_helpers import post_form
from mfa_helpers import send_otp

PWD = "urn:flask-ropc:acr:pwd"
MFA = "urn:flask-ropc:acr:mfa"


@pytest.fixture
def client(app: flask.Flask, make_client: t.Any) -> t.Any:
    """A client allowed the MFA grants, on an app whose validator answers
    plain successes and that has a verifier."""
    clock_of(app).freeze()
    ropc_of(app).mfa_verifier(Factors(app))
    return make_client("Step-up app", grant_types=MFA_GRANTS)


def _refresh(http: t.Any, client: t.Any, token: str, **form: str) -> t.Any:
    data = {"grant_type": "refresh_token", "refresh_token": token, **form}
    return post_form(http, client, data)


def test_acr_values_of_mfa_turn_a_password_login_into_mfa_required(
    app: flask.Flask, http: t.Any, client: t.Any
) -> None:
    response = login(http, client, scope="api", acr_values=MFA)
    assert_oauth_error(response, 403, "mfa_required")
    token = response.get_json()["mfa_token"]
    tokens = send_otp(http, client, token, otp_now(app)).get_json()
    info = introspect(http, client, tokens["access_token"]).get_json()
    assert info["acr"] == MFA and info["amr"] == ["pwd", "otp", "mfa"]
    # The validator's extra fields come with the tokens, after the factor.
    assert tokens["display_name"] == "Ann"


def test_acr_values_a_password_meets_change_nothing(http: t.Any, client: t.Any) -> None:
    for values in (PWD, f"{MFA} {PWD}", f"urn:other {PWD}"):
        response = login(http, client, acr_values=values)
        assert response.status_code == 200, (values, response.get_json())


def test_a_wrong_password_stays_invalid_grant_whatever_acr_values_ask(
    app: flask.Flask, http: t.Any, client: t.Any
) -> None:
    response = login(http, client, password="wrong", acr_values=MFA)
    assert_oauth_error(response, 400, "invalid_grant")
    assert table_rows(app, "ropc_mfa_tokens") == []


@pytest.mark.parametrize(
    "form",
    [
        {"acr_values": "urn:unknown"},
        {"acr_values": ""},
        {"max_age": "soon"},
        {"max_age": "-1"},
        {"max_age": "1" * 11},
    ],
)
def test_malformed_step_up_parameters_are_invalid_request(
    app: flask.Flask, http: t.Any, client: t.Any, form: dict[str, str]
) -> None:
    assert_oauth_error(login(http, client, **form), 400, "invalid_request")
    refresh = login(http, client, scope="api offline_access").get_json()
    refused = _refresh(http, client, refresh["refresh_token"], **form)
    assert_oauth_error(refused, 400, "invalid_request")


def test_without_a_verifier_the_request_cannot_be_met(
    make_app: t.Any, database_uri: str
) -> None:
    app = make_app()
    with app.app_context():
        created, secret = ropc_of(app).clients.create(
            "c", scopes=["api"], grant_types=MFA_GRANTS
        )
    client = OAuthClient(created.client_id, secret)
    http = app.test_client()
    for _ in range(6):  # refused before the throttle: no lock-out, no oracle
        response = login(http, client, acr_values=MFA)
        assert_oauth_error(response, 400, "invalid_request")
        assert "cannot be met" in response.get_json()["error_description"]
    wrong = login(http, client, password="wrong", acr_values=MFA)
    assert wrong.get_json() == response.get_json()
    assert login(http, client).status_code == 200
    tokens = login(http, client, scope="api offline_access").get_json()
    refused = _refresh(http, client, tokens["refresh_token"], acr_values=MFA)
    assert_oauth_error(refused, 400, "invalid_request")


def test_a_refresh_asking_for_mfa_steps_up_and_leaves_the_token_alone(
    app: flask.Flask, http: t.Any, client: t.Any
) -> None:
    login_time = int(clock_of(app)())
    tokens = login(http, client, scope="api offline_access").get_json()
    clock_of(app).advance(100)
    stepped = _refresh(http, client, tokens["refresh_token"], acr_values=MFA)
    assert_oauth_error(stepped, 403, "mfa_required")
    mfa_token = stepped.get_json()["mfa_token"]
    clock_of(app).advance(20)
    strong = send_otp(http, client, mfa_token, otp_now(app)).get_json()
    info = introspect(http, client, strong["access_token"]).get_json()
    # A refresh never renews the login: auth_time stays the password's.
    assert (info["acr"], info["auth_time"]) == (MFA, login_time)
    assert strong["refresh_token"] != tokens["refresh_token"]
    # The password family was not rotated by the refused refresh.
    assert _refresh(http, client, tokens["refresh_token"]).status_code == 200
    # An MFA family meets acr_values=MFA on refresh, and a password acr too.
    again = _refresh(http, client, strong["refresh_token"], acr_values=MFA)
    assert again.status_code == 200, again.get_json()
    weaker = _refresh(http, client, again.get_json()["refresh_token"], acr_values=PWD)
    assert weaker.status_code == 200, weaker.get_json()


def test_a_refresh_older_than_max_age_must_log_in_again(
    app: flask.Flask, http: t.Any, client: t.Any
) -> None:
    tokens = login(http, client, scope="api offline_access").get_json()
    clock_of(app).advance(60)
    fresh = _refresh(http, client, tokens["refresh_token"], max_age="60")
    assert fresh.status_code == 200, fresh.get_json()
    clock_of(app).advance(1)
    stale = _refresh(http, client, fresh.get_json()["refresh_token"], max_age="60")
    assert_oauth_error(stale, 400, "invalid_grant")
    assert "log in again" in stale.get_json()["error_description"]
    # The family was not touched; a new password login meets max_age.
    assert _refresh(http, client, fresh.get_json()["refresh_token"]).status_code == 200
    assert login(http, client, max_age="0").status_code == 200
