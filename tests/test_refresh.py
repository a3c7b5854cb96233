"""Refresh tokens: offline access, one-time rotation with reuse detection,
sliding and absolute lifetimes, and the user re-check on refresh.

Through the token, revocation and introspection endpoints (Flask test client),
the ``flask ropc`` CLI and the real database (SQLite, and PostgreSQL when
``ROPC_TEST_DATABASE_URL`` is set). Time is moved with the test app's clock
(the ``clock`` fixture), frozen at the test's start so that expiry boundaries
are exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import typing as t
from collections.abc import Callable

import flask
import jwt
import pytest

from flask_ropc import ROPC
from flask_ropc import ConfigurationError
from flask_ropc import signals

# From its defining module on purpose: one test checks that the package
# exports this very class.
from flask_ropc.validation import RefreshRequest

from conftest import Clock
from conftest import OAuthClient
from conftest import basic_auth
from conftest import clock_of
from conftest import count_rows
from conftest import introspect as post_introspection
from conftest import login as password_grant
from conftest import password_form
from conftest import post_as
from conftest import ropc_of
from conftest import table_rows

TOKEN_URL = "/oauth/token"
REVOKE_URL = "/oauth/revoke"
#: The grant types of a client with offline access.
OFFLINE = ["password", "refresh_token"]
OFFLINE_SCOPE = "api offline_access"
DAY = 24 * 3600


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def offline_client(make_client: t.Any) -> t.Any:
    """A confidential (Basic) client with offline access, scopes api profile."""
    return make_client("Offline app", grant_types=OFFLINE)


def login(
    http: t.Any, client: t.Any, username: str = "ann", scope: str | None = OFFLINE_SCOPE
) -> dict[str, t.Any]:
    """A successful password grant; its JSON body."""
    form = {} if scope is None else {"scope": scope}
    response = password_grant(http, client, username, **form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return t.cast(dict[str, t.Any], response.get_json())


def refresh(http: t.Any, client: t.Any, token: str | None, **form: str) -> t.Any:
    """``grant_type=refresh_token`` presenting ``token`` (omitted if ``None``)."""
    data = {"grant_type": "refresh_token", **form}
    if token is not None:
        data["refresh_token"] = token
    return post_as(http, TOKEN_URL, client, data)


def refreshed(http: t.Any, client: t.Any, token: str, **form: str) -> dict[str, t.Any]:
    """A refresh that must succeed; its JSON body."""
    response = refresh(http, client, token, **form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return t.cast(dict[str, t.Any], response.get_json())


def revoke(http: t.Any, client: t.Any, token: str) -> t.Any:
    return post_as(http, REVOKE_URL, client, {"token": token})


def introspect(http: t.Any, client: t.Any, token: str) -> dict[str, t.Any]:
    """Introspection that must succeed; its JSON body."""
    response = post_introspection(http, client, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return t.cast(dict[str, t.Any], response.get_json())


def me(http: t.Any, access_token: str) -> t.Any:
    return http.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


def assert_error(response: t.Any, status: int, error: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == error, body
    assert "access_token" not in body
    assert "refresh_token" not in body


def assert_refresh_fails(http: t.Any, client: t.Any, token: str) -> None:
    """The refresh token is dead: ``invalid_grant``."""
    assert_error(refresh(http, client, token), 400, "invalid_grant")


def assert_access_dead(http: t.Any, access_token: str) -> None:
    response = me(http, access_token)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_token"


def assert_access_live(http: t.Any, access_token: str) -> None:
    response = me(http, access_token)
    assert response.status_code == 200, response.get_data(as_text=True)


def db_state(app: flask.Flask) -> dict[str, list[tuple[t.Any, ...]]]:
    """Every row of the client and token tables, to prove nothing was written."""
    return {
        name: [tuple(row) for row in table_rows(app, name)]
        for name in ("ropc_clients", "ropc_access_tokens", "ropc_refresh_tokens")
    }


def refresh_rows(app: flask.Flask, family_id: str | None = None) -> list[t.Any]:
    """The stored refresh tokens (of one family), oldest first."""
    rows = table_rows(app, "ropc_refresh_tokens")
    if family_id is None:
        return rows
    return [row for row in rows if row.family_id == family_id]


def refresh_row(app: flask.Flask, token: str) -> t.Any:
    """The stored row of one refresh token, found by its SHA-256 digest."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    rows = [row for row in refresh_rows(app) if row.token_digest == digest]
    assert len(rows) == 1
    return rows[0]


def set_hook(app: flask.Flask, name: str, func: Callable[..., t.Any]) -> None:
    """Register ``@ropc.subject_is_active`` or ``@ropc.refresh_claims``."""
    getattr(ropc_of(app), name)(func)


def ropc(runner: t.Any, *args: str) -> t.Any:
    return runner.invoke(args=["ropc", *args])


def ok(result: t.Any) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.output
    return str(result.output)


# -- issuing refresh tokens ----------------------------------------------------


def test_offline_client_asking_for_offline_access_gets_a_refresh_token(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    token = body["refresh_token"]
    assert isinstance(token, str)
    assert len(token) >= 43
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert body["scope"] == OFFLINE_SCOPE
    assert body["token_type"] == "Bearer"
    assert token != body["access_token"]


def test_refresh_token_is_stored_only_as_its_sha256_digest(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    token = login(http, offline_client)["refresh_token"]
    rows = refresh_rows(app)
    assert len(rows) == 1
    assert rows[0].token_digest == hashlib.sha256(token.encode()).hexdigest()
    for row in rows:
        for value in tuple(row):
            assert token not in str(value)


def test_offline_client_not_asking_for_offline_access_gets_no_refresh_token(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    """Documented: a refresh token is only issued when asked for."""
    body = login(http, offline_client, scope="api")
    assert "refresh_token" not in body
    assert body["scope"] == "api"
    assert refresh_rows(app) == []


def test_client_without_offline_access_asking_for_it_is_invalid_scope(
    app: flask.Flask, http: t.Any, make_client: t.Any, validator: t.Any
) -> None:
    client = make_client(scopes=["api", "offline_access"])  # grant: password only
    before = db_state(app)
    response = post_as(http, TOKEN_URL, client, password_form(scope=OFFLINE_SCOPE))
    assert_error(response, 400, "invalid_scope")
    assert validator.calls == []
    assert db_state(app) == before


def test_no_scope_requested_grants_client_scopes_without_offline_access(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    client = make_client(
        scopes=["api", "offline_access", "profile"], grant_types=OFFLINE
    )
    body = login(http, client, scope=None)
    assert body["scope"] == "api profile"
    assert "refresh_token" not in body
    assert refresh_rows(app) == []


def test_public_client_with_offline_access_gets_a_refresh_token(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(auth_method="none", grant_types=OFFLINE)
    assert len(login(http, client)["refresh_token"]) >= 43


# -- refreshing ----------------------------------------------------------------


def test_refresh_returns_new_access_and_refresh_token(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    response = refresh(http, offline_client, first["refresh_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == OFFLINE_SCOPE
    assert body["access_token"] != first["access_token"]
    assert body["refresh_token"] != first["refresh_token"]
    assert len(body["refresh_token"]) >= 43
    assert_access_live(http, body["access_token"])
    # Rotation: the new refresh token works, once.
    assert "refresh_token" in refreshed(http, offline_client, body["refresh_token"])


def test_public_client_refreshes_with_client_id_in_the_body(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(auth_method="none", grant_types=OFFLINE)
    first = login(http, client)
    response = http.post(
        TOKEN_URL,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["refresh_token"] != first["refresh_token"]
    assert me(http, body["access_token"]).get_json()["sub"] == "user-1"


def test_refreshed_access_token_lives_for_the_clients_access_token_lifetime(
    http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    """Not Authlib's one-hour fallback for the refresh grant."""
    clock.freeze()
    client = make_client(grant_types=OFFLINE, access_token_lifetime=600)
    body = refreshed(http, client, login(http, client)["refresh_token"])
    assert body["expires_in"] == 600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
    clock.at(599)
    assert_access_live(http, body["access_token"])
    clock.at(600)
    assert_access_dead(http, body["access_token"])


def test_refreshed_access_token_follows_the_apps_access_token_lifetime(
    make_app: Callable[..., flask.Flask],
) -> None:
    app = make_app(ROPC_ACCESS_TOKEN_LIFETIME=900)
    with app.app_context():
        created, secret = ropc_of(app).clients.create(
            "App", scopes=["api"], grant_types=OFFLINE
        )
    client = OAuthClient(created.client_id, secret)
    http = app.test_client()
    body = refreshed(http, client, login(http, client)["refresh_token"])
    assert body["expires_in"] == 900


def test_refreshed_access_token_keeps_subject_and_claims_of_the_login(
    http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client, username="bob")
    body = refreshed(http, offline_client, first["refresh_token"])
    response = me(http, body["access_token"])
    assert response.status_code == 200
    assert response.get_json() == {
        "sub": "user-2",
        "client_id": offline_client.client_id,
        "scopes": ["api", "offline_access"],
        "claims": {"role": "member"},
    }
    # The validator's response extras are for the login only.
    assert "display_name" not in body


def test_refreshed_jwt_keeps_the_auth_time_of_the_password_login(
    http: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    """RFC 9068 ``auth_time`` is when the user typed the password."""
    start = clock.freeze()
    first = login(http, offline_client)
    clock.at(500)
    body = refreshed(http, offline_client, first["refresh_token"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iat"] == start + 500
    assert claims["auth_time"] == start


def test_refresh_does_not_call_the_password_validator(
    http: t.Any, offline_client: t.Any, validator: t.Any
) -> None:
    first = login(http, offline_client)
    calls = len(validator.calls)
    refreshed(http, offline_client, first["refresh_token"])
    assert len(validator.calls) == calls


def test_previous_access_token_keeps_working_until_it_expires(
    http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    client = make_client(grant_types=OFFLINE, access_token_lifetime=600)
    first = login(http, client)
    clock.at(300)
    second = refreshed(http, client, first["refresh_token"])
    assert_access_live(http, first["access_token"])
    assert_access_live(http, second["access_token"])
    clock.at(600)
    assert_access_dead(http, first["access_token"])
    assert_access_live(http, second["access_token"])


def test_refresh_sends_token_issued_signal(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    events: list[dict[str, t.Any]] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        events.append({"sender": sender, **payload})

    signals.token_issued.connect(receiver)
    try:
        refreshed(http, offline_client, first["refresh_token"], scope="api")
    finally:
        signals.token_issued.disconnect(receiver)
    assert len(events) == 1
    event = events[0]
    assert event["sender"] is app
    assert event["grant_type"] == "refresh_token"
    assert event["client_id"] == offline_client.client_id
    assert event["subject"] == "user-1"
    assert tuple(event["scopes"]) == ("api",)
    assert event["refresh_token_issued"] is True


# -- scope on refresh ----------------------------------------------------------


def test_narrowed_refresh_gets_only_the_requested_scope_but_keeps_the_grant(
    http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    narrow = refreshed(http, offline_client, first["refresh_token"], scope="api")
    assert narrow["scope"] == "api"
    assert me(http, narrow["access_token"]).get_json()["scopes"] == ["api"]
    # RFC 6749 §6: the new refresh token carries the original grant.
    full = refreshed(http, offline_client, narrow["refresh_token"], scope=OFFLINE_SCOPE)
    assert full["scope"] == OFFLINE_SCOPE
    assert me(http, full["access_token"]).get_json()["scopes"] == [
        "api",
        "offline_access",
    ]
    again = refreshed(http, offline_client, full["refresh_token"])
    assert again["scope"] == OFFLINE_SCOPE


@pytest.mark.parametrize(
    "scope",
    ["api admin", "api profile", "admin", 'api "quoted"'],
    ids=["never-allowed", "allowed-but-not-granted", "only-foreign", "malformed"],
)
def test_widening_scope_is_invalid_scope_and_does_not_consume_the_token(
    app: flask.Flask, http: t.Any, offline_client: t.Any, scope: str
) -> None:
    first = login(http, offline_client)
    before = db_state(app)
    response = refresh(http, offline_client, first["refresh_token"], scope=scope)
    assert_error(response, 400, "invalid_scope")
    assert db_state(app) == before
    assert refreshed(http, offline_client, first["refresh_token"])["scope"] == (
        OFFLINE_SCOPE
    )


def test_a_scope_taken_from_the_client_is_dropped_at_its_next_refresh(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client, scope="api profile offline_access")
    with app.app_context():
        ropc_of(app).clients.update(offline_client.client_id, scopes=["api"])
    before = db_state(app)
    asked = refresh(http, offline_client, first["refresh_token"], scope="profile")
    assert_error(asked, 400, "invalid_scope")
    assert db_state(app) == before  # the refresh token was not used up
    narrowed = refreshed(http, offline_client, first["refresh_token"])
    assert narrowed["scope"] == "api offline_access"
    assert me(http, narrowed["access_token"]).get_json()["scopes"] == [
        "api",
        "offline_access",
    ]
    # The family keeps its grant: given back to the client, the scope
    # returns at the next refresh.
    with app.app_context():
        ropc_of(app).clients.update(offline_client.client_id, scopes=["api", "profile"])
    restored = refreshed(http, offline_client, narrowed["refresh_token"])
    assert restored["scope"] == "api profile offline_access"


# -- reuse detection -----------------------------------------------------------


@pytest.mark.parametrize(
    "app_config",
    [{}, {"ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 30}],
    ids=["no-reuse-interval", "reuse-30s"],
)
def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    """Also within a reuse interval: the first token's successor was used, so
    the first response reached its client and this is a replay, not a retry."""
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    third = refreshed(http, offline_client, second["refresh_token"])
    assert_refresh_fails(http, offline_client, first["refresh_token"])
    # The newest refresh token, which the attacker or the user may hold, is dead.
    assert_refresh_fails(http, offline_client, third["refresh_token"])
    for body in (first, second, third):
        assert_access_dead(http, body["access_token"])
    family = refresh_row(app, first["refresh_token"]).family_id
    assert all(row.revoked_at is not None for row in refresh_rows(app, family))


def test_reuse_leaves_other_families_and_users_alone(
    http: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    other_client = make_client("Other app", grant_types=OFFLINE)
    stolen = login(http, offline_client)
    same_client = login(http, offline_client)
    other_app = login(http, other_client)
    bob = login(http, offline_client, username="bob")
    refreshed(http, offline_client, stolen["refresh_token"])
    assert_refresh_fails(http, offline_client, stolen["refresh_token"])
    for client, body in (
        (offline_client, same_client),
        (other_client, other_app),
        (offline_client, bob),
    ):
        assert_access_live(http, body["access_token"])
        assert_access_live(
            http, refreshed(http, client, body["refresh_token"])["access_token"]
        )


def test_reuse_sends_refresh_token_reused_signal_once(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    refreshed(http, offline_client, first["refresh_token"])
    family = refresh_row(app, first["refresh_token"]).family_id
    events: list[dict[str, t.Any]] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        events.append({"sender": sender, **payload})

    signals.refresh_token_reused.connect(receiver)
    try:
        response = http.post(
            TOKEN_URL,
            data={
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
            },
            headers={**basic_auth(*offline_client), "X-Request-ID": "req-42"},
        )
    finally:
        signals.refresh_token_reused.disconnect(receiver)
    assert_error(response, 400, "invalid_grant")
    assert events == [
        {
            "sender": app,
            "client_id": offline_client.client_id,
            "subject": "user-1",
            "family_id": family,
            "request_id": "req-42",
            "client_ip": "127.0.0.1",
        }
    ]
    assert first["refresh_token"] not in json.dumps(events, default=str)


def test_token_of_an_already_revoked_family_fails_without_another_reuse_signal(
    http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    assert_refresh_fails(http, offline_client, first["refresh_token"])
    events: list[t.Any] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        events.append(payload)

    signals.refresh_token_reused.connect(receiver)
    try:
        assert_refresh_fails(http, offline_client, second["refresh_token"])
    finally:
        signals.refresh_token_reused.disconnect(receiver)
    assert events == []


def test_reuse_logs_a_warning_without_the_token(
    http: t.Any, offline_client: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_ropc"):
        assert_refresh_fails(http, offline_client, first["refresh_token"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "reuse" in message
    assert offline_client.client_id in message
    assert "user-1" in message
    for secret in (first["refresh_token"], second["refresh_token"]):
        assert secret not in caplog.text


# -- exchanging again within the reuse interval --------------------------------

#: An app whose refresh tokens may be exchanged again for 30 seconds.
with_reuse_interval = pytest.mark.parametrize(
    "app_config", [{"ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 30}], ids=["reuse-30s"]
)


@with_reuse_interval
def test_a_lost_refresh_response_can_be_retried_within_the_reuse_interval(
    http: t.Any, offline_client: t.Any, clock: Clock, caplog: t.Any
) -> None:
    clock.freeze()
    first = login(http, offline_client)
    lost = refreshed(http, offline_client, first["refresh_token"])
    clock.at(30)
    with caplog.at_level(logging.INFO, logger="flask_ropc"):
        retry = refreshed(http, offline_client, first["refresh_token"])
    assert retry["refresh_token"] != lost["refresh_token"]
    assert_access_live(http, retry["access_token"])
    # The lost response's tokens are revoked: the family has one live branch.
    assert_access_dead(http, lost["access_token"])
    assert_access_live(
        http, refreshed(http, offline_client, retry["refresh_token"])["access_token"]
    )
    assert "exchanged again" in caplog.text
    for secret in (first["refresh_token"], lost["refresh_token"]):
        assert secret not in caplog.text


@with_reuse_interval
def test_a_second_use_after_the_reuse_interval_is_reuse(
    http: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    clock.at(31)
    assert_refresh_fails(http, offline_client, first["refresh_token"])
    assert_refresh_fails(http, offline_client, second["refresh_token"])
    assert_access_dead(http, second["access_token"])


@with_reuse_interval
def test_a_thiefs_repeat_within_the_interval_is_caught_at_the_clients_next_refresh(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    clients_copy = refreshed(http, offline_client, first["refresh_token"])
    thiefs_copy = refreshed(http, offline_client, first["refresh_token"])
    reused: list[dict[str, t.Any]] = []
    with signals.refresh_token_reused.connected_to(
        lambda sender, **event: reused.append(event), sender=app
    ):
        assert_refresh_fails(http, offline_client, clients_copy["refresh_token"])
        # Reported once: the family was revoked by the first failure.
        assert_refresh_fails(http, offline_client, clients_copy["refresh_token"])
    assert [event["client_id"] for event in reused] == [offline_client.client_id]
    assert_refresh_fails(http, offline_client, thiefs_copy["refresh_token"])
    assert_access_dead(http, thiefs_copy["access_token"])


@pytest.mark.parametrize("value", [-1, 301, 1.5, True, "30", None])
def test_reuse_interval_must_be_0_to_300_seconds(value: t.Any, tmp_path: t.Any) -> None:
    app = flask.Flask(__name__, instance_path=str(tmp_path))
    app.config["ROPC_REFRESH_TOKEN_REUSE_INTERVAL"] = value
    with pytest.raises(ConfigurationError, match="ROPC_REFRESH_TOKEN_REUSE_INTERVAL"):
        ROPC(app)


# -- errors --------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""], ids=["absent", "empty"])
def test_missing_refresh_token_is_invalid_request(
    app: flask.Flask, http: t.Any, offline_client: t.Any, token: str | None
) -> None:
    login(http, offline_client)
    before = db_state(app)
    assert_error(refresh(http, offline_client, token), 400, "invalid_request")
    assert db_state(app) == before


@pytest.mark.parametrize(
    "token",
    [
        "unknown-refresh-token",
        "a" * 43,
        "tok\u00e9n",
        "nul\x00byte",
        "x" * 257,
        "x" * 10_000,
    ],
    ids=["unknown", "right-length", "non-ascii", "nul-byte", "just-too-long", "huge"],
)
def test_unknown_or_garbage_refresh_token_is_invalid_grant(
    app: flask.Flask, http: t.Any, offline_client: t.Any, token: str
) -> None:
    login(http, offline_client)
    before = db_state(app)
    assert_refresh_fails(http, offline_client, token)
    assert db_state(app) == before


def test_access_token_is_not_accepted_as_refresh_token(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    before = db_state(app)
    assert_refresh_fails(http, offline_client, body["access_token"])
    assert db_state(app) == before


def test_another_clients_refresh_token_is_invalid_grant_and_stays_usable(
    app: flask.Flask, http: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    thief = make_client("Thief", grant_types=OFFLINE)
    body = login(http, offline_client)
    before = db_state(app)
    assert_refresh_fails(http, thief, body["refresh_token"])
    assert db_state(app) == before
    assert_access_live(http, body["access_token"])
    refreshed(http, offline_client, body["refresh_token"])


def test_client_without_refresh_grant_is_unauthorized_client(
    app: flask.Flask, http: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    password_only = make_client("Password only", grant_types=["password"])
    body = login(http, offline_client)
    before = db_state(app)
    for token in (body["refresh_token"], "unknown-refresh-token"):
        assert_error(refresh(http, password_only, token), 400, "unauthorized_client")
    assert db_state(app) == before
    refreshed(http, offline_client, body["refresh_token"])


def test_disabled_client_cannot_refresh_and_its_token_is_not_consumed(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    with app.app_context():
        ropc_of(app).clients.update(offline_client.client_id, enabled=False)
    before = db_state(app)
    assert_error(
        refresh(http, offline_client, body["refresh_token"]), 401, "invalid_client"
    )
    assert db_state(app) == before
    with app.app_context():
        ropc_of(app).clients.update(offline_client.client_id, enabled=True)
    refreshed(http, offline_client, body["refresh_token"])


def test_wrong_client_secret_is_invalid_client_and_token_is_not_consumed(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    before = db_state(app)
    response = http.post(
        TOKEN_URL,
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic_auth(offline_client.client_id, "wrong-secret"),
    )
    assert_error(response, 401, "invalid_client")
    assert db_state(app) == before
    refreshed(http, offline_client, body["refresh_token"])


def test_refresh_token_in_the_query_string_is_refused_and_not_consumed(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    before = db_state(app)
    response = http.post(
        TOKEN_URL + "?refresh_token=" + body["refresh_token"],
        data={"grant_type": "refresh_token"},
        headers=basic_auth(*offline_client),
    )
    assert_error(response, 400, "invalid_request")
    assert db_state(app) == before
    refreshed(http, offline_client, body["refresh_token"])


# -- lifetimes -----------------------------------------------------------------


def test_refresh_token_works_until_the_second_before_its_sliding_expiry(
    http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    client = make_client(grant_types=OFFLINE, refresh_token_sliding_lifetime=100)
    body = login(http, client)
    clock.at(99)
    refreshed(http, client, body["refresh_token"])


def test_refresh_token_unused_for_its_sliding_lifetime_is_invalid_grant(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    client = make_client(grant_types=OFFLINE, refresh_token_sliding_lifetime=100)
    body = login(http, client)
    clock.at(100)
    before = db_state(app)
    assert_refresh_fails(http, client, body["refresh_token"])
    assert db_state(app) == before
    assert introspect(http, client, body["refresh_token"]) == {"active": False}


def test_rotation_within_the_sliding_lifetime_continues_past_the_first_expiry(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    client = make_client(grant_types=OFFLINE, refresh_token_sliding_lifetime=100)
    token = login(http, client)["refresh_token"]
    for at in (90, 180, 270, 360):
        clock.at(at)
        token = refreshed(http, client, token)["refresh_token"]
        assert refresh_row(app, token).expires_at == start + at + 100


def test_absolute_lifetime_ends_the_chain_counted_from_the_password_login(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    client = make_client(
        grant_types=OFFLINE,
        refresh_token_sliding_lifetime=100,
        refresh_token_absolute_lifetime=250,
    )
    token = login(http, client)["refresh_token"]
    family = refresh_row(app, token).family_id
    for at in (90, 180):
        clock.at(at)
        token = refreshed(http, client, token)["refresh_token"]
    assert introspect(http, client, token)["exp"] == start + 250
    clock.at(270)
    assert_refresh_fails(http, client, token)
    rows = refresh_rows(app, family)
    assert len(rows) == 3
    assert all(row.expires_at <= start + 250 for row in rows)
    assert all(row.family_expires_at == start + 250 for row in rows)


def test_absolute_lifetime_boundary_is_exact(
    http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    client = make_client(
        grant_types=OFFLINE,
        refresh_token_sliding_lifetime=100,
        refresh_token_absolute_lifetime=250,
    )
    token = login(http, client)["refresh_token"]
    for at in (90, 180, 249):
        clock.at(at)
        token = refreshed(http, client, token)["refresh_token"]
    clock.at(250)
    assert_refresh_fails(http, client, token)


def test_raising_the_absolute_lifetime_does_not_extend_existing_families(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    """The absolute limit is fixed at the password login (a stolen chain
    cannot be stretched by a later setting)."""
    start = clock.freeze()
    client = make_client(
        grant_types=OFFLINE,
        refresh_token_sliding_lifetime=100,
        refresh_token_absolute_lifetime=250,
    )
    token = login(http, client)["refresh_token"]
    with app.app_context():
        ropc_of(app).clients.update(
            client.client_id, refresh_token_absolute_lifetime=10_000
        )
    for at in (90, 180):
        clock.at(at)
        token = refreshed(http, client, token)["refresh_token"]
    clock.at(250)
    assert_refresh_fails(http, client, token)
    # A new login gets the new limit.
    fresh = refresh_row(app, login(http, client)["refresh_token"])
    assert fresh.family_expires_at == start + 250 + 10_000


def test_default_lifetimes_are_fourteen_days_sliding_and_thirty_days_absolute(
    app: flask.Flask, http: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    token = login(http, offline_client)["refresh_token"]
    row = refresh_row(app, token)
    assert row.expires_at == start + 14 * DAY
    assert row.family_expires_at == start + 30 * DAY
    clock.at(14 * DAY - 1)
    token = refreshed(http, offline_client, token)["refresh_token"]
    clock.at(28 * DAY - 2)
    token = refreshed(http, offline_client, token)["refresh_token"]
    assert refresh_row(app, token).expires_at == start + 30 * DAY
    clock.at(30 * DAY)
    assert_refresh_fails(http, offline_client, token)


def test_app_refresh_lifetime_settings_apply_when_the_client_has_none(
    make_app: Callable[..., flask.Flask],
) -> None:
    app = make_app(
        ROPC_REFRESH_TOKEN_SLIDING_LIFETIME=100,
        ROPC_REFRESH_TOKEN_ABSOLUTE_LIFETIME=250,
    )
    with app.app_context():
        clients = ropc_of(app).clients
        created, secret = clients.create("App", scopes=["api"], grant_types=OFFLINE)
        own, own_secret = clients.create(
            "Own lifetimes",
            scopes=["api"],
            grant_types=OFFLINE,
            refresh_token_sliding_lifetime=1000,
            refresh_token_absolute_lifetime=5000,
        )
    client = OAuthClient(created.client_id, secret)
    own_client = OAuthClient(own.client_id, own_secret)
    http = app.test_client()
    clock = clock_of(app)
    clock.freeze()
    unused = login(http, client)["refresh_token"]
    chained = login(http, client)["refresh_token"]
    overridden = login(http, own_client)["refresh_token"]
    clock.at(90)
    chained = refreshed(http, client, chained)["refresh_token"]
    clock.at(100)
    assert_refresh_fails(http, client, unused)
    clock.at(180)
    chained = refreshed(http, client, chained)["refresh_token"]
    clock.at(250)
    assert_refresh_fails(http, client, chained)
    # The client's own lifetimes win over the app's.
    clock.at(999)
    refreshed(http, own_client, overridden)


# -- re-checking the user ------------------------------------------------------


def test_inactive_subject_fails_refresh_and_revokes_the_family_for_good(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    other_user = login(http, offline_client, username="bob")
    active = {"user-1": False, "user-2": True}
    claims_calls: list[t.Any] = []
    set_hook(app, "subject_is_active", lambda req: active[req.subject])
    set_hook(app, "refresh_claims", lambda req: claims_calls.append(req))
    assert_refresh_fails(http, offline_client, second["refresh_token"])
    assert claims_calls == []
    for body in (first, second):
        assert_access_dead(http, body["access_token"])
    # Reactivating the user does not bring the old tokens back.
    active["user-1"] = True
    assert_refresh_fails(http, offline_client, second["refresh_token"])
    # Bob was never affected.
    assert_access_live(http, other_user["access_token"])
    refreshed(http, offline_client, other_user["refresh_token"])


def test_subject_is_active_receives_the_refresh_request(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    seen: list[RefreshRequest] = []

    def hook(req: RefreshRequest) -> bool:
        seen.append(req)
        return True

    set_hook(app, "subject_is_active", hook)
    first = login(http, offline_client)
    refreshed(http, offline_client, first["refresh_token"], scope="api")
    assert len(seen) == 1
    req = seen[0]
    assert isinstance(req, RefreshRequest)
    assert req.subject == "user-1"
    assert req.client.client_id == offline_client.client_id
    assert req.scopes == ("api",)
    assert dict(req.claims) == {"role": "member"}
    assert req.request.form["grant_type"] == "refresh_token"


def test_refresh_request_is_importable_from_the_package() -> None:
    """The hooks' docstrings name ``flask_ropc.RefreshRequest``, as
    ``flask_ropc.PasswordRequest`` is for the validator."""
    import flask_ropc

    assert flask_ropc.RefreshRequest is RefreshRequest
    assert "RefreshRequest" in flask_ropc.__all__


def test_async_subject_is_active_hook_is_awaited(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    async def hook(req: RefreshRequest) -> bool:
        return req.subject != "user-1"

    set_hook(app, "subject_is_active", hook)
    assert_refresh_fails(
        http, offline_client, login(http, offline_client)["refresh_token"]
    )
    refreshed(http, offline_client, login(http, offline_client, "bob")["refresh_token"])


@pytest.mark.parametrize("verdict", [None, 1, "yes"], ids=["none", "int", "str"])
def test_subject_is_active_returning_a_non_bool_is_server_error(
    app: flask.Flask,
    http: t.Any,
    offline_client: t.Any,
    verdict: t.Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = login(http, offline_client)
    set_hook(app, "subject_is_active", lambda req: verdict)
    before = db_state(app)
    with caplog.at_level(logging.ERROR, logger="flask_ropc"):
        response = refresh(http, offline_client, body["refresh_token"])
    assert_error(response, 500, "server_error")
    assert db_state(app) == before
    assert body["refresh_token"] not in caplog.text
    # Once the hook is fixed, the untouched token still works.
    set_hook(app, "subject_is_active", lambda req: True)
    refreshed(http, offline_client, body["refresh_token"])


def test_refresh_claims_updates_the_claims_and_they_are_kept(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    seen: list[dict[str, t.Any]] = []

    def promote(req: RefreshRequest) -> dict[str, t.Any]:
        seen.append(dict(req.claims))
        return {"role": "admin"}

    set_hook(app, "refresh_claims", promote)
    second = refreshed(http, offline_client, first["refresh_token"])
    assert me(http, second["access_token"]).get_json()["claims"] == {"role": "admin"}
    jwt_claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert jwt_claims["role"] == "admin"
    # The login's access token keeps what it was issued with.
    assert me(http, first["access_token"]).get_json()["claims"] == {"role": "member"}

    def keep(req: RefreshRequest) -> None:
        seen.append(dict(req.claims))

    set_hook(app, "refresh_claims", keep)
    third = refreshed(http, offline_client, second["refresh_token"])
    assert me(http, third["access_token"]).get_json()["claims"] == {"role": "admin"}
    assert seen == [{"role": "member"}, {"role": "admin"}]


def test_refresh_claims_returning_none_keeps_the_login_claims(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    set_hook(app, "refresh_claims", lambda req: None)
    body = refreshed(http, offline_client, login(http, offline_client)["refresh_token"])
    assert me(http, body["access_token"]).get_json()["claims"] == {"role": "member"}


def test_refresh_claims_returning_a_non_mapping_is_server_error(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    set_hook(app, "refresh_claims", lambda req: [("role", "admin")])
    before = db_state(app)
    assert_error(
        refresh(http, offline_client, body["refresh_token"]), 500, "server_error"
    )
    assert db_state(app) == before


# -- revocation and introspection endpoints ------------------------------------


def test_revoking_a_refresh_token_revokes_its_whole_family(
    app: flask.Flask, http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    other = login(http, offline_client)
    response = revoke(http, offline_client, second["refresh_token"])
    assert response.status_code == 200
    assert response.get_json() == {}
    assert_refresh_fails(http, offline_client, second["refresh_token"])
    for body in (first, second):
        assert_access_dead(http, body["access_token"])
    assert_access_live(http, other["access_token"])
    refreshed(http, offline_client, other["refresh_token"])


def test_revoking_a_rotated_refresh_token_also_ends_its_family(
    http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    assert revoke(http, offline_client, first["refresh_token"]).status_code == 200
    assert_refresh_fails(http, offline_client, second["refresh_token"])
    assert_access_dead(http, second["access_token"])


def test_public_client_revokes_its_refresh_token(
    http: t.Any, make_client: t.Any
) -> None:
    client = make_client(auth_method="none", grant_types=OFFLINE)
    body = login(http, client)
    assert revoke(http, client, body["refresh_token"]).get_json() == {}
    assert_refresh_fails(http, client, body["refresh_token"])


def test_another_client_cannot_revoke_a_refresh_token(
    http: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    other = make_client("Other app", grant_types=OFFLINE)
    body = login(http, offline_client)
    response = revoke(http, other, body["refresh_token"])
    assert response.status_code == 200
    assert response.get_json() == {}
    assert_access_live(http, body["access_token"])
    refreshed(http, offline_client, body["refresh_token"])


def test_introspecting_a_live_refresh_token_reports_it_active(
    http: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    token = login(http, offline_client)["refresh_token"]
    payload = introspect(http, offline_client, token)
    assert payload["active"] is True
    assert payload["token_type"] == "refresh_token"
    assert payload["client_id"] == offline_client.client_id
    assert payload["sub"] == "user-1"
    assert payload["scope"] == OFFLINE_SCOPE
    assert payload["iat"] == start
    assert payload["exp"] == start + 14 * DAY


def test_introspecting_a_rotated_or_revoked_refresh_token_reports_it_inactive(
    http: t.Any, offline_client: t.Any
) -> None:
    first = login(http, offline_client)
    second = refreshed(http, offline_client, first["refresh_token"])
    assert introspect(http, offline_client, first["refresh_token"]) == {"active": False}
    assert introspect(http, offline_client, second["refresh_token"])["active"] is True
    revoke(http, offline_client, second["refresh_token"])
    assert introspect(http, offline_client, second["refresh_token"]) == {
        "active": False
    }


# -- CLI and API -------------------------------------------------------------


def test_cli_create_client_with_offline_access_gets_refresh_tokens(
    app: flask.Flask, http: t.Any, runner: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    data = json.loads(
        ok(
            ropc(
                runner,
                "create-client",
                "Mobile",
                "--scope",
                "api",
                "--offline-access",
                "--refresh-token-sliding-lifetime",
                "100",
                "--refresh-token-absolute-lifetime",
                "250",
                "--json",
            )
        )
    )
    assert data["offline_access"] is True
    client = OAuthClient(data["client_id"], data["client_secret"])
    token = login(http, client)["refresh_token"]
    row = refresh_row(app, token)
    assert row.expires_at == start + 100
    assert row.family_expires_at == start + 250
    clock.at(99)
    token = refreshed(http, client, token)["refresh_token"]
    clock.at(199)
    assert_refresh_fails(http, client, token)


def test_cli_create_client_without_offline_access_gets_no_refresh_tokens(
    http: t.Any, runner: t.Any
) -> None:
    data = json.loads(
        ok(ropc(runner, "create-client", "Web", "--scope", "api", "--json"))
    )
    assert data["offline_access"] is False
    client = OAuthClient(data["client_id"], data["client_secret"])
    response = post_as(http, TOKEN_URL, client, password_form(scope=OFFLINE_SCOPE))
    assert_error(response, 400, "invalid_scope")


def test_cli_update_client_no_offline_access_stops_refreshing(
    app: flask.Flask, http: t.Any, runner: t.Any, offline_client: t.Any
) -> None:
    body = login(http, offline_client)
    ok(
        ropc(
            runner,
            "update-client",
            "--no-offline-access",
            "--",
            offline_client.client_id,
        )
    )
    assert_error(
        refresh(http, offline_client, body["refresh_token"]), 400, "unauthorized_client"
    )
    response = post_as(
        http, TOKEN_URL, offline_client, password_form(scope=OFFLINE_SCOPE)
    )
    assert_error(response, 400, "invalid_scope")
    assert "refresh_token" not in login(http, offline_client, scope="api")
    # The password grant itself still works.
    ok(
        ropc(
            runner, "update-client", "--offline-access", "--", offline_client.client_id
        )
    )
    assert "refresh_token" in login(http, offline_client)


def test_cli_update_client_refresh_lifetimes_and_back_to_defaults(
    app: flask.Flask, http: t.Any, runner: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    start = clock.freeze()
    client_id = offline_client.client_id
    ok(
        ropc(
            runner,
            "update-client",
            "--refresh-token-sliding-lifetime",
            "100",
            "--refresh-token-absolute-lifetime",
            "250",
            "--",
            client_id,
        )
    )
    row = refresh_row(app, login(http, offline_client)["refresh_token"])
    assert (row.expires_at, row.family_expires_at) == (
        start + 100,
        start + 250,
    )
    ok(
        ropc(
            runner,
            "update-client",
            "--default-refresh-token-lifetimes",
            "--",
            client_id,
        )
    )
    row = refresh_row(app, login(http, offline_client)["refresh_token"])
    assert (row.expires_at, row.family_expires_at) == (
        start + 14 * DAY,
        start + 30 * DAY,
    )


def _sessions(
    http: t.Any, offline_client: t.Any, make_client: t.Any
) -> dict[str, t.Any]:
    """Ann: two refresh families on one client (one rotated), one on another
    client and a login without refresh token; Bob: one family."""
    second_client = make_client("Second app", grant_types=OFFLINE)
    ann_a = login(http, offline_client)
    ann_a2 = refreshed(http, offline_client, ann_a["refresh_token"])
    return {
        "second_client": second_client,
        "ann": [
            (offline_client, ann_a2),
            (offline_client, login(http, offline_client)),
            (second_client, login(http, second_client)),
        ],
        "ann_plain": login(http, offline_client, scope="api"),
        "ann_old_access": ann_a["access_token"],
        "bob": [(offline_client, login(http, offline_client, username="bob"))],
    }


def assert_signed_out(http: t.Any, sessions: list[tuple[t.Any, t.Any]]) -> None:
    for client, body in sessions:
        assert_access_dead(http, body["access_token"])
        assert_refresh_fails(http, client, body["refresh_token"])


def assert_signed_in(http: t.Any, sessions: list[tuple[t.Any, t.Any]]) -> None:
    for client, body in sessions:
        assert_access_live(http, body["access_token"])
        refreshed(http, client, body["refresh_token"])


def test_cli_revoke_subject_signs_the_user_out_everywhere(
    http: t.Any, runner: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    sessions = _sessions(http, offline_client, make_client)
    output = ok(ropc(runner, "revoke", "--subject", "user-1"))
    # Ann: 5 access tokens (4 logins + 1 refresh), 4 refresh tokens.
    assert re.search(r"\b9\b", output), output
    assert "user-1" in output
    assert_signed_out(http, sessions["ann"])
    assert_access_dead(http, sessions["ann_plain"]["access_token"])
    assert_access_dead(http, sessions["ann_old_access"])
    assert_signed_in(http, sessions["bob"])
    # Nothing left to revoke the second time.
    assert re.search(r"\b0\b", ok(ropc(runner, "revoke", "--subject", "user-1")))


def test_revoke_subject_from_python_does_what_the_cli_does(
    app: flask.Flask, http: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    sessions = _sessions(http, offline_client, make_client)
    with app.app_context():
        count = ropc_of(app).revoke_subject("user-1")
    assert count == 9
    assert_signed_out(http, sessions["ann"])
    assert_access_dead(http, sessions["ann_plain"]["access_token"])
    assert_signed_in(http, sessions["bob"])


def test_cli_revoke_client_revokes_every_token_of_that_client(
    http: t.Any, runner: t.Any, offline_client: t.Any, make_client: t.Any
) -> None:
    sessions = _sessions(http, offline_client, make_client)
    output = ok(ropc(runner, "revoke", "--client", offline_client.client_id))
    # offline_client: ann 4 access + 3 refresh tokens, bob 1 + 1.
    assert re.search(r"\b9\b", output), output
    assert offline_client.client_id in output
    mine = [s for s in sessions["ann"] + sessions["bob"] if s[0] is offline_client]
    others = [s for s in sessions["ann"] if s[0] is not offline_client]
    assert_signed_out(http, mine)
    assert_access_dead(http, sessions["ann_plain"]["access_token"])
    assert_signed_in(http, others)


@pytest.mark.parametrize(
    "args",
    [[], ["--subject", "user-1", "--client", "CLIENT"]],
    ids=["neither", "both"],
)
def test_cli_revoke_needs_exactly_one_of_subject_and_client(
    app: flask.Flask, http: t.Any, runner: t.Any, offline_client: t.Any, args: list[str]
) -> None:
    body = login(http, offline_client)
    args = [offline_client.client_id if a == "CLIENT" else a for a in args]
    before = db_state(app)
    result = ropc(runner, "revoke", *args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert db_state(app) == before
    assert_access_live(http, body["access_token"])


def test_cli_revoke_unknown_client_fails(app: flask.Flask, runner: t.Any) -> None:
    result = ropc(runner, "revoke", "--client", "0123456789abcdef")
    assert result.exit_code != 0
    assert "Traceback" not in result.output


@pytest.mark.parametrize("batch_size", ["1", "1000"])
def test_cli_cleanup_deletes_expired_and_long_revoked_tokens(
    app: flask.Flask,
    http: t.Any,
    runner: t.Any,
    make_client: t.Any,
    clock: Clock,
    batch_size: str,
) -> None:
    clock.freeze()
    client = make_client(
        grant_types=OFFLINE,
        access_token_lifetime=60,
        refresh_token_sliding_lifetime=100,
    )
    login(http, client)  # expires: access at 60 s, refresh at 100 s
    revoked_long_ago = login(http, client)
    revoke(http, client, revoked_long_ago["refresh_token"])
    clock.at(101)
    revoked_recently = login(http, client)
    revoke(http, client, revoked_recently["refresh_token"])
    live = login(http, client)
    assert count_rows(app)["ropc_access_tokens"] == 4
    assert len(refresh_rows(app)) == 4
    output = ok(
        ropc(runner, "cleanup", "--revoked-for", "50", "--batch-size", batch_size)
    )
    assert "ropc_access_tokens: deleted 2" in output
    assert "ropc_refresh_tokens: deleted 2" in output
    assert count_rows(app)["ropc_access_tokens"] == 2
    assert len(refresh_rows(app)) == 2
    assert_access_live(http, live["access_token"])
    refreshed(http, client, live["refresh_token"])
    again = ok(ropc(runner, "cleanup", "--revoked-for", "50"))
    assert "ropc_access_tokens: deleted 0" in again
    assert "ropc_refresh_tokens: deleted 0" in again


def test_cli_cleanup_keeps_used_refresh_tokens_so_reuse_is_still_detected(
    app: flask.Flask, http: t.Any, runner: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    first = login(http, offline_client)
    clock.at(10)
    second = refreshed(http, offline_client, first["refresh_token"])
    clock.at(20)
    before = len(refresh_rows(app))
    output = ok(ropc(runner, "cleanup", "--revoked-for", "0"))
    assert "ropc_refresh_tokens: deleted 0" in output
    assert len(refresh_rows(app)) == before
    assert_refresh_fails(http, offline_client, first["refresh_token"])
    assert_refresh_fails(http, offline_client, second["refresh_token"])


def test_cli_cleanup_by_default_keeps_tokens_revoked_less_than_a_day_ago(
    app: flask.Flask, http: t.Any, runner: t.Any, offline_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    body = login(http, offline_client)
    revoke(http, offline_client, body["refresh_token"])
    clock.at(DAY - 1)  # the access token has expired, the refresh token not
    output = ok(ropc(runner, "cleanup"))
    assert "ropc_access_tokens: deleted 1" in output
    assert "ropc_refresh_tokens: deleted 0" in output
    assert len(refresh_rows(app)) == 1
    clock.at(DAY + 1)
    assert "ropc_refresh_tokens: deleted 1" in ok(ropc(runner, "cleanup"))
    assert refresh_rows(app) == []
