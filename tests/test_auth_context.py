"""How the user authenticated, on every token (``amr``, ``acr``, ``auth_time``),
and RFC 9470 step-up at ``require_token`` (``acr=``, ``max_age=``).

Both token formats carry the context: JWTs as claims, both formats on their
rows, which introspection and ``current_token`` read. A refresh keeps the
family's context. A view asking for a stronger or more recent login answers
401 ``insufficient_user_authentication`` with what it needs.
"""

from __future__ import annotations

import secrets
import typing as t

import flask
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from flask_ropc import ROPC
from flask_ropc import ConfigurationError
from flask_ropc import current_token
from flask_ropc.auth_context import AuthContext
from flask_ropc.state import get_state
from flask_ropc.token_service import RefreshPlan
from flask_ropc.token_service import issue_tokens

from conftest import SECRET_KEY
from conftest import Clock
from conftest import OAuthClient
from conftest import assert_oauth_error
from conftest import bearer
from conftest import introspect
from conftest import login
from conftest import password_form
from conftest import post_as
from conftest import ropc_of
from conftest import table_rows
from dpop_proofs import ISSUER
from dpop_proofs import TOKEN_URL
from dpop_proofs import DPoPKey
from dpop_proofs import token_request

PWD = "urn:flask-ropc:acr:pwd"
MFA = "urn:flask-ropc:acr:mfa"
FORMATS = pytest.mark.parametrize("token_format", ["jwt", "reference"])


@pytest.fixture
def app_config() -> dict[str, t.Any]:
    return {"ROPC_ISSUER": ISSUER}


@pytest.fixture
def views(app: flask.Flask) -> flask.Flask:
    """Step-up views on the test app, added before its first request."""
    ropc = ropc_of(app)

    def context() -> dict[str, t.Any]:
        return {
            "amr": list(current_token.amr),
            "acr": current_token.acr,
            "auth_time": current_token.auth_time,
        }

    app.add_url_rule("/step/mfa", "mfa", ropc.require_token("api", acr=MFA)(context))
    app.add_url_rule(
        "/step/either", "either", ropc.require_token("api", acr=[MFA, PWD])(context)
    )
    app.add_url_rule(
        "/step/recent", "recent", ropc.require_token("api", max_age=300)(context)
    )
    app.add_url_rule(
        "/step/strong-and-recent",
        "strong_and_recent",
        ropc.require_token("api", acr=MFA, max_age=300)(context),
    )
    app.add_url_rule(
        "/step/admin-mfa", "admin_mfa", ropc.require_token("admin", acr=MFA)(context)
    )
    return app


@pytest.fixture
def offline_client(make_client: t.Any, token_format: str) -> t.Any:
    """A confidential client with refresh tokens, issuing ``token_format``."""
    return make_client(
        grant_types=["password", "refresh_token"], access_token_format=token_format
    )


def _context(info: t.Mapping[str, t.Any]) -> tuple[t.Any, ...]:
    """What introspection, claims or a view report of the login:
    ``(amr, acr, auth_time)``."""
    return info["amr"], info["acr"], info["auth_time"]


def _row_context(row: t.Any) -> tuple[t.Any, ...]:
    """What a stored token row holds of the login: ``(amr, acr, auth_time)``."""
    return row.amr, row.acr, row.auth_time


def _jwt_claims(http: t.Any, token: str) -> dict[str, t.Any]:
    keys = KeySet.import_key_set(http.get("/oauth/jwks").json)
    return dict(jwt.decode(token, keys).claims)


def _password_login(http: t.Any, client: t.Any, **form: str) -> dict[str, t.Any]:
    response = login(http, client, **form)
    assert response.status_code == 200, response.json
    return t.cast(dict[str, t.Any], response.json)


def _refresh(http: t.Any, client: t.Any, refresh_token: str) -> dict[str, t.Any]:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    response = post_as(http, "/oauth/token", client, data)
    assert response.status_code == 200, response.json
    return t.cast(dict[str, t.Any], response.json)


def _mfa_tokens(
    app: flask.Flask, client_id: str, auth_time: int, *, offline: bool = False
) -> dict[str, t.Any]:
    """Tokens as the MFA grant will issue them: through ``issue_tokens`` with
    a second-factor context (the seam that grant plugs into)."""
    with app.app_context():
        state = get_state()
        client = state.store.clients.get(client_id)
        assert client is not None
        now = state.store.now()
        scopes = ("api", "offline_access") if offline else ("api",)
        plan = None
        if offline:
            plan = RefreshPlan(
                family_id=secrets.token_hex(16),
                scope=" ".join(scopes),
                family_expires_at=now + 86400,
            )
        return issue_tokens(
            state,
            client=client,
            subject="user-1",
            scopes=scopes,
            claims={},
            grant_type="password",
            auth_context=AuthContext(
                amr=("pwd", "otp", "mfa"),
                acr=state.settings.acr_mfa,
                auth_time=auth_time,
            ),
            now=now,
            refresh=plan,
        )


# -- the context on tokens ------------------------------------------------------


@FORMATS
def test_a_password_login_carries_pwd_its_acr_and_the_login_time(
    views: flask.Flask,
    http: t.Any,
    clock: Clock,
    offline_client: t.Any,
    token_format: str,
) -> None:
    start = int(clock.freeze())
    body = _password_login(http, offline_client, scope="api offline_access")
    token = body["access_token"]
    info = introspect(http, offline_client, token).json
    assert _context(info) == (["pwd"], PWD, start)
    if token_format == "jwt":
        claims = _jwt_claims(http, token)
        assert _context(claims) == (["pwd"], PWD, start)
    else:
        assert token.count(".") == 0  # nothing to read in a reference token
    seen = http.get("/step/either", headers=bearer(token)).json
    assert seen == {"amr": ["pwd"], "acr": PWD, "auth_time": start}
    # Both rows hold it; the refresh token's introspection reports it too.
    access_row = table_rows(views, "ropc_access_tokens")[0]
    refresh_row = table_rows(views, "ropc_refresh_tokens")[0]
    assert _row_context(access_row) == ("pwd", PWD, start)
    assert _row_context(refresh_row) == ("pwd", PWD, start)
    refresh_info = introspect(http, offline_client, body["refresh_token"]).json
    assert _context(refresh_info) == (["pwd"], PWD, start)


@FORMATS
def test_a_refresh_keeps_the_familys_context_and_its_auth_time(
    views: flask.Flask,
    http: t.Any,
    clock: Clock,
    offline_client: t.Any,
    token_format: str,
) -> None:
    start = int(clock.freeze())
    first = _password_login(http, offline_client, scope="api offline_access")
    clock.at(1000)
    second = _refresh(http, offline_client, first["refresh_token"])
    info = introspect(http, offline_client, second["access_token"]).json
    assert _context(info) == (["pwd"], PWD, start)
    assert info["iat"] == start + 1000
    if token_format == "jwt":
        claims = _jwt_claims(http, second["access_token"])
        assert _context(claims) == (["pwd"], PWD, start)
    # A refresh is no new login: a recent-login view still refuses it.
    response = http.get("/step/recent", headers=bearer(second["access_token"]))
    assert_oauth_error(response, 401, "insufficient_user_authentication")


@FORMATS
def test_a_second_factor_context_is_issued_kept_by_refresh_and_satisfies_mfa(
    views: flask.Flask,
    http: t.Any,
    clock: Clock,
    offline_client: t.Any,
    token_format: str,
) -> None:
    start = int(clock.freeze())
    body = _mfa_tokens(views, offline_client.client_id, start - 20, offline=True)
    mfa = ["pwd", "otp", "mfa"]
    info = introspect(http, offline_client, body["access_token"]).json
    assert _context(info) == (mfa, MFA, start - 20)
    response = http.get("/step/mfa", headers=bearer(body["access_token"]))
    assert response.status_code == 200, response.json
    assert response.json == {"amr": mfa, "acr": MFA, "auth_time": start - 20}
    clock.at(100)
    refreshed = _refresh(http, offline_client, body["refresh_token"])
    response = http.get("/step/mfa", headers=bearer(refreshed["access_token"]))
    assert response.json == {"amr": mfa, "acr": MFA, "auth_time": start - 20}
    if token_format == "jwt":
        claims = _jwt_claims(http, refreshed["access_token"])
        assert (claims["amr"], claims["acr"]) == (mfa, MFA)


@FORMATS
def test_rows_from_before_the_context_was_stored_read_as_a_password_login(
    views: flask.Flask,
    http: t.Any,
    clock: Clock,
    offline_client: t.Any,
    token_format: str,
) -> None:
    """Revision 0007's columns are NULL in older rows: ``pwd`` and
    ``ROPC_ACR_PASSWORD``; the password login's time where it is known.

    The rows are written with a second-factor context first, so that what
    is read back can only come from the NULL columns.
    """
    start = int(clock.freeze())
    body = _mfa_tokens(views, offline_client.client_id, start, offline=True)
    with views.app_context():
        with ropc_of(views).engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE ropc_access_tokens SET amr = NULL, acr = NULL, auth_time = NULL"
            )
            conn.exec_driver_sql(
                "UPDATE ropc_refresh_tokens SET amr = NULL, acr = NULL"
            )
    info = introspect(http, offline_client, body["access_token"]).json
    # A JWT still carries its auth_time; a password login's reference token
    # was issued at it.
    assert _context(info) == (["pwd"], PWD, start)
    response = http.get("/step/mfa", headers=bearer(body["access_token"]))
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert http.get("/step/either", headers=bearer(body["access_token"])).json == {
        "amr": ["pwd"],
        "acr": PWD,
        "auth_time": start,
    }
    refresh_info = introspect(http, offline_client, body["refresh_token"]).json
    assert (refresh_info["amr"], refresh_info["acr"]) == (["pwd"], PWD)
    # The old family refreshes as a password login: nothing upgrades it.
    clock.at(50)
    refreshed = _refresh(http, offline_client, body["refresh_token"])
    info = introspect(http, offline_client, refreshed["access_token"]).json
    assert _context(info) == (["pwd"], PWD, start)


def test_an_old_refreshed_reference_token_has_no_auth_time_and_is_not_recent(
    views: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(
        grant_types=["password", "refresh_token"], access_token_format="reference"
    )
    first = _password_login(http, client, scope="api offline_access")
    second = _refresh(http, client, first["refresh_token"])
    with views.app_context():
        with ropc_of(views).engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE ropc_access_tokens SET amr = NULL, acr = NULL, "
                "auth_time = NULL WHERE grant_type = 'refresh_token'"
            )
    info = introspect(http, client, second["access_token"]).json
    assert (info["amr"], info["acr"]) == (["pwd"], PWD)
    assert "auth_time" not in info
    response = http.get("/step/recent", headers=bearer(second["access_token"]))
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert http.get("/step/either", headers=bearer(second["access_token"])).json == {
        "amr": ["pwd"],
        "acr": PWD,
        "auth_time": None,
    }


def test_discovery_lists_both_acr_values(views: flask.Flask, http: t.Any) -> None:
    metadata = http.get("/.well-known/oauth-authorization-server").json
    assert metadata["acr_values_supported"] == [PWD, MFA]


# -- step-up at require_token ---------------------------------------------------


@FORMATS
def test_a_password_token_at_an_mfa_view_is_asked_to_step_up(
    views: flask.Flask, http: t.Any, make_client: t.Any, token_format: str
) -> None:
    client = make_client(access_token_format=token_format)
    token = _password_login(http, client, scope="api")["access_token"]
    response = http.get("/step/mfa", headers=bearer(token))
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert response.json["error_description"] == (
        "A different authentication level is required."
    )
    assert response.headers.getlist("WWW-Authenticate") == [
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required.", '
        f'acr_values="{MFA}"',
        'DPoP algs="ES256 RS256 PS256 EdDSA"',
    ]
    # Any of several values: the password's is among them.
    assert http.get("/step/either", headers=bearer(token)).status_code == 200


def test_scope_is_judged_before_the_login(
    views: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(scopes=["api"])
    token = _password_login(http, client, scope="api")["access_token"]
    response = http.get("/step/admin-mfa", headers=bearer(token))
    assert_oauth_error(response, 403, "insufficient_scope")
    bad = http.get("/step/mfa", headers=bearer("not-a-token"))
    assert_oauth_error(bad, 401, "invalid_token")


@FORMATS
def test_a_login_older_than_max_age_is_asked_to_log_in_again(
    views: flask.Flask, http: t.Any, clock: Clock, make_client: t.Any, token_format: str
) -> None:
    client = make_client(access_token_format=token_format)
    clock.freeze()
    token = _password_login(http, client, scope="api")["access_token"]
    clock.at(300)
    assert http.get("/step/recent", headers=bearer(token)).status_code == 200
    clock.at(301)
    response = http.get("/step/recent", headers=bearer(token))
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert response.headers.getlist("WWW-Authenticate")[0] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required.", '
        'max_age="300"'
    )


def test_the_challenge_names_every_requirement(
    views: flask.Flask, http: t.Any, clock: Clock, oauth_client: t.Any
) -> None:
    clock.freeze()
    body = _mfa_tokens(views, oauth_client.client_id, int(clock()))
    token = body["access_token"]
    assert http.get("/step/strong-and-recent", headers=bearer(token)).status_code == 200
    clock.at(301)
    response = http.get("/step/strong-and-recent", headers=bearer(token))
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert response.headers.getlist("WWW-Authenticate")[0].endswith(
        f'acr_values="{MFA}", max_age="300"'
    )


def test_a_dpop_bound_token_gets_the_dpop_challenge(
    views: flask.Flask, http: t.Any, oauth_client: t.Any
) -> None:
    key = DPoPKey()
    login_response = token_request(
        http,
        oauth_client,
        key.proof("POST", TOKEN_URL),
        password_form(scope="api"),
    )
    assert login_response.status_code == 200, login_response.json
    token = login_response.json["access_token"]
    url = ISSUER + "/step/mfa"
    proof = key.proof("GET", url, token=token)
    response = http.get(
        "/step/mfa", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    assert_oauth_error(response, 401, "insufficient_user_authentication")
    assert response.headers.getlist("WWW-Authenticate") == [
        'DPoP error="insufficient_user_authentication", '
        'error_description="A different authentication level is required.", '
        f'acr_values="{MFA}", algs="ES256 RS256 PS256 EdDSA"',
        "Bearer",
    ]
    # With a view it may use, the same token and a new proof get through.
    proof = key.proof("GET", ISSUER + "/step/either", token=token)
    ok = http.get(
        "/step/either", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    assert ok.status_code == 200, ok.json


# -- misuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"acr": ""}, ValueError),
        ({"acr": []}, ValueError),
        ({"acr": "two words"}, ValueError),
        ({"acr": 'quo"te'}, ValueError),
        ({"acr": [MFA, ""]}, ValueError),
        ({"acr": 5}, TypeError),
        ({"acr": [MFA, 5]}, TypeError),
        ({"max_age": -1}, ValueError),
        ({"max_age": "300"}, TypeError),
        ({"max_age": 1.5}, TypeError),
        ({"max_age": True}, TypeError),
    ],
)
def test_wrong_step_up_arguments_fail_at_decoration(
    kwargs: dict[str, t.Any], error: type[Exception]
) -> None:
    ropc = ROPC()
    with pytest.raises(error, match="require_token"):
        ropc.require_token("api", **kwargs)


def test_max_age_zero_and_a_tuple_of_acr_are_accepted() -> None:
    ropc = ROPC()
    ropc.require_token("api", max_age=0)
    ropc.require_token(acr=(MFA, PWD))


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"ROPC_ACR_PASSWORD": ""}, "ROPC_ACR_PASSWORD"),
        ({"ROPC_ACR_MFA": "has space"}, "ROPC_ACR_MFA"),
        ({"ROPC_ACR_MFA": None}, "ROPC_ACR_MFA"),
        ({"ROPC_ACR_PASSWORD": 'a"b'}, "ROPC_ACR_PASSWORD"),
        ({"ROPC_ACR_PASSWORD": MFA}, "must differ"),
    ],
)
def test_bad_acr_settings_stop_init_app(
    tmp_path: t.Any, config: dict[str, t.Any], named: str
) -> None:
    app = flask.Flask("acr_config", instance_path=str(tmp_path / "instance"))
    app.config.update(
        ROPC_DATABASE_URI=f"sqlite:///{tmp_path / 'acr.sqlite3'}",
        ROPC_ISSUER="https://auth.example.com",
        SECRET_KEY=SECRET_KEY,
        **config,
    )
    with pytest.raises(ConfigurationError, match=named):
        ROPC(app)


def test_custom_acr_settings_are_what_tokens_carry(make_app: t.Any) -> None:
    app = make_app(ROPC_ISSUER=ISSUER, ROPC_ACR_PASSWORD="urn:example:password")
    with app.app_context():
        client, secret = ropc_of(app).clients.create("Custom", scopes=["api"])
    caller = OAuthClient(client.client_id, secret)
    http = app.test_client()
    response = login(http, caller, scope="api")
    assert response.status_code == 200, response.json
    info = introspect(http, caller, response.json["access_token"])
    assert info.json["acr"] == "urn:example:password"
    metadata = http.get("/.well-known/oauth-authorization-server").json
    assert metadata["acr_values_supported"] == ["urn:example:password", MFA]
