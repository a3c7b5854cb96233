"""Audit events: every signal fires with its documented payload.

Receivers are connected for the test's own app (``sender=app``) and
disconnected afterwards; requests go through the real endpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest

from flask_ropc import GrantResult
from flask_ropc import signals

from conftest import USERS
from conftest import OAuthClient
from conftest import basic_auth
from conftest import build_app
from conftest import dispose_app
from conftest import ropc_of

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.audit_log import write_audit_events_to  # noqa: E402

TOKEN_URL = "/oauth/token"
WRONG = "a wrong password, for sure"
COMMON = {"request_id", "client_ip"}
FRESH_ID = re.compile(r"[0-9a-f]{32}")


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def capture(app: flask.Flask, signal: t.Any) -> Iterator[list[dict[str, t.Any]]]:
    """Record the payloads ``signal`` sends for ``app`` inside the block."""
    received: list[dict[str, t.Any]] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        assert sender is app
        received.append(payload)

    signal.connect(receiver, sender=app, weak=False)
    try:
        yield received
    finally:
        signal.disconnect(receiver, sender=app)


def token_request(
    http: t.Any,
    client: OAuthClient,
    username: str = "ann",
    password: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    ip: str | None = None,
    **form: str,
) -> t.Any:
    assert client.secret is not None
    data = {
        "grant_type": "password",
        "username": username,
        "password": password if password is not None else USERS[username][0],
        **form,
    }
    kwargs: dict[str, t.Any] = {}
    if ip is not None:
        kwargs["environ_base"] = {"REMOTE_ADDR": ip}
    return http.post(
        TOKEN_URL,
        data=data,
        headers={**basic_auth(client.client_id, client.secret), **(headers or {})},
        **kwargs,
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def offline_client(make_client: t.Any) -> OAuthClient:
    client: OAuthClient = make_client(
        "Offline app", grant_types=["password", "refresh_token"]
    )
    return client


# -- token_issued -------------------------------------------------------------


def test_token_issued_carries_grant_client_subject_and_scopes(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    with capture(app, signals.token_issued) as events:
        response = token_request(http, oauth_client, ip="192.0.2.10")
    assert response.status_code == 200, response.get_data(as_text=True)

    assert len(events) == 1
    event = events[0]
    assert set(event) == COMMON | {
        "grant_type",
        "client_id",
        "subject",
        "scopes",
        "refresh_token_issued",
    }
    assert event["grant_type"] == "password"
    assert event["client_id"] == oauth_client.client_id
    assert event["subject"] == "user-1"
    assert tuple(event["scopes"]) == ("api", "profile")
    assert event["refresh_token_issued"] is False
    assert event["client_ip"] == "192.0.2.10"
    assert FRESH_ID.fullmatch(event["request_id"])


def test_token_issued_reports_refresh_tokens_and_the_refresh_grant(
    app: flask.Flask, http: t.Any, offline_client: OAuthClient
) -> None:
    assert offline_client.secret is not None
    with capture(app, signals.token_issued) as events:
        login = token_request(http, offline_client, scope="api offline_access")
        assert login.status_code == 200, login.get_data(as_text=True)
        refreshed = http.post(
            TOKEN_URL,
            data={
                "grant_type": "refresh_token",
                "refresh_token": login.json["refresh_token"],
            },
            headers=basic_auth(offline_client.client_id, offline_client.secret),
        )
        assert refreshed.status_code == 200, refreshed.get_data(as_text=True)

    assert [e["grant_type"] for e in events] == ["password", "refresh_token"]
    assert [e["refresh_token_issued"] for e in events] == [True, True]
    assert [tuple(e["scopes"]) for e in events] == [("api", "offline_access")] * 2
    assert {e["subject"] for e in events} == {"user-1"}
    assert events[0]["request_id"] != events[1]["request_id"]


# -- password_grant_failed ----------------------------------------------------


def test_password_grant_failed_carries_the_hashed_normalised_username(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    with capture(app, signals.password_grant_failed) as events:
        token_request(http, oauth_client, "  Ann ", WRONG, ip="192.0.2.11")

    assert len(events) == 1
    event = events[0]
    assert set(event) == COMMON | {"client_id", "username", "error", "reason"}
    assert event["username"] == sha256("ann")
    assert event["client_id"] == oauth_client.client_id
    assert event["error"] == "invalid_grant"
    assert event["reason"] == "invalid_credentials"
    assert event["client_ip"] == "192.0.2.11"
    assert WRONG not in repr(event)


def test_password_grant_failed_with_plain_usernames(
    database_uri: str, tmp_path: t.Any
) -> None:
    app = build_app(
        database_uri, str(tmp_path / "instance"), ROPC_EVENT_USERNAME="plain"
    )
    try:
        with app.app_context():
            client, secret = ropc_of(app).clients.create("App", scopes=["api"])
        with capture(app, signals.password_grant_failed) as events:
            token_request(
                app.test_client(),
                OAuthClient(client.client_id, secret),
                " ANN ",
                WRONG,
            )
        assert [e["username"] for e in events] == ["ann"]
    finally:
        dispose_app(app)


def test_password_grant_failed_carries_the_validators_reason_and_error(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    @ropc_of(app).password_validator
    def refuse(req: t.Any) -> GrantResult:
        return GrantResult.error(
            "account_locked",
            "Ask your administrator.",
            status_code=403,
            reason="disabled-by-admin",
            count_failure=False,
        )

    with capture(app, signals.password_grant_failed) as events:
        response = token_request(http, oauth_client)
    assert response.status_code == 403

    assert len(events) == 1
    assert events[0]["error"] == "account_locked"
    assert events[0]["reason"] == "disabled-by-admin"
    assert events[0]["username"] == sha256("ann")


def test_no_failure_event_for_a_success(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    with capture(app, signals.password_grant_failed) as failed:
        assert token_request(http, oauth_client).status_code == 200
    assert failed == []


# -- throttled ----------------------------------------------------------------


def test_throttled_names_the_username_budget_and_retry_after(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    for _ in range(5):
        token_request(http, oauth_client, "Ann", WRONG, ip="192.0.2.12")

    with (
        capture(app, signals.throttled) as throttled,
        capture(app, signals.password_grant_failed) as failed,
    ):
        response = token_request(http, oauth_client, "ann", ip="192.0.2.12")
    assert response.status_code == 429

    assert failed == []  # the validator never ran
    assert len(throttled) == 1
    event = throttled[0]
    assert set(event) == COMMON | {"client_id", "username", "scope", "retry_after"}
    assert event["scope"] == "username"
    assert event["username"] == sha256("ann")
    assert event["client_id"] == oauth_client.client_id
    assert event["retry_after"] == int(response.headers["Retry-After"])
    assert event["client_ip"] == "192.0.2.12"


def test_throttled_names_the_ip_budget(database_uri: str, tmp_path: t.Any) -> None:
    app = build_app(database_uri, str(tmp_path / "instance"), ROPC_THROTTLE_IP_LIMIT=2)
    try:
        with app.app_context():
            client, secret = ropc_of(app).clients.create("App", scopes=["api"])
        oauth_client = OAuthClient(client.client_id, secret)
        http = app.test_client()
        token_request(http, oauth_client, "someone", WRONG)
        token_request(http, oauth_client, "someone-else", WRONG)
        with capture(app, signals.throttled) as throttled:
            response = token_request(http, oauth_client, "a-third-one", WRONG)
        assert response.status_code == 429
        assert [e["scope"] for e in throttled] == ["ip"]
        assert throttled[0]["username"] == sha256("a-third-one")
    finally:
        dispose_app(app)


# -- client_authentication_failed ---------------------------------------------


def test_client_authentication_failed_at_the_token_endpoint(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    wrong_secret = "not-the-client-secret-at-all"
    with capture(app, signals.client_authentication_failed) as events:
        response = http.post(
            TOKEN_URL,
            data={"grant_type": "password", "username": "ann", "password": "x"},
            headers=basic_auth(oauth_client.client_id, wrong_secret),
            environ_base={"REMOTE_ADDR": "192.0.2.13"},
        )
        unknown = http.post(
            TOKEN_URL,
            data={
                "grant_type": "password",
                "username": "ann",
                "password": "x",
                "client_id": "no-such-client",
                "client_secret": wrong_secret,
            },
        )
    assert response.status_code == unknown.status_code == 401

    assert len(events) == 2
    assert set(events[0]) == COMMON | {"client_id", "endpoint"}
    assert events[0]["client_id"] == oauth_client.client_id
    assert events[0]["endpoint"] == "token"
    assert events[0]["client_ip"] == "192.0.2.13"
    assert events[1]["client_id"] == "no-such-client"
    assert wrong_secret not in repr(events)


def test_client_authentication_failed_without_credentials_has_no_client_id(
    app: flask.Flask, http: t.Any
) -> None:
    with capture(app, signals.client_authentication_failed) as events:
        response = http.post(
            TOKEN_URL,
            data={"grant_type": "password", "username": "ann", "password": "x"},
        )
    assert response.status_code == 401

    assert [(e["client_id"], e["endpoint"]) for e in events] == [(None, "token")]


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [("/oauth/introspect", "introspection"), ("/oauth/revoke", "revocation")],
)
def test_client_authentication_failed_names_the_endpoint(
    app: flask.Flask,
    http: t.Any,
    oauth_client: OAuthClient,
    path: str,
    endpoint: str,
) -> None:
    with capture(app, signals.client_authentication_failed) as events:
        response = http.post(
            path,
            data={"token": "whatever-token-value"},
            headers=basic_auth(oauth_client.client_id, "wrong-secret-value"),
        )
    assert response.status_code == 401

    assert [(e["client_id"], e["endpoint"]) for e in events] == [
        (oauth_client.client_id, endpoint)
    ]


# -- revocation and reuse -----------------------------------------------------


def test_token_revoked_for_access_and_refresh_tokens(
    app: flask.Flask, http: t.Any, offline_client: OAuthClient
) -> None:
    assert offline_client.secret is not None
    auth = basic_auth(offline_client.client_id, offline_client.secret)
    login = token_request(http, offline_client, scope="api offline_access").json

    with capture(app, signals.token_revoked) as events:
        for name in ("access_token", "refresh_token"):
            response = http.post(
                "/oauth/revoke", data={"token": login[name]}, headers=auth
            )
            assert response.status_code == 200
        # Unknown tokens are answered 200 too, but nothing was revoked.
        http.post("/oauth/revoke", data={"token": "unknown-token"}, headers=auth)

    assert len(events) == 2
    for event, token_type in zip(
        events, ["access_token", "refresh_token"], strict=True
    ):
        assert set(event) == COMMON | {"client_id", "token_type", "subject"}
        assert event["token_type"] == token_type
        assert event["client_id"] == offline_client.client_id
        assert event["subject"] == "user-1"
    assert login["access_token"] not in repr(events)
    assert login["refresh_token"] not in repr(events)


def refresh_form(
    http: t.Any, client: OAuthClient
) -> tuple[dict[str, t.Any], dict[str, str], dict[str, str]]:
    """Log ann in with offline access: the token response, a form that
    exchanges its refresh token, and the client's Basic header."""
    assert client.secret is not None
    auth = basic_auth(client.client_id, client.secret)
    old = token_request(http, client, scope="api offline_access").json
    form = {"grant_type": "refresh_token", "refresh_token": old["refresh_token"]}
    return old, form, auth


def assert_one_family_event(
    events: list[dict[str, t.Any]], client: OAuthClient
) -> None:
    """One event naming ann, ``client`` and a refresh token family."""
    assert len(events) == 1
    assert set(events[0]) == COMMON | {"client_id", "subject", "family_id"}
    assert events[0]["client_id"] == client.client_id
    assert events[0]["subject"] == "user-1"
    assert re.fullmatch(r"[0-9a-f]{32}", events[0]["family_id"])


def test_refresh_token_reused_names_the_revoked_family(
    app: flask.Flask, http: t.Any, offline_client: OAuthClient
) -> None:
    old, form, auth = refresh_form(http, offline_client)
    assert http.post(TOKEN_URL, data=form, headers=auth).status_code == 200

    with capture(app, signals.refresh_token_reused) as events:
        replay = http.post(TOKEN_URL, data=form, headers=auth)
    assert replay.status_code == 400

    assert_one_family_event(events, offline_client)


@pytest.mark.parametrize(
    "app_config", [{"ROPC_REFRESH_TOKEN_REUSE_INTERVAL": 30}], ids=["reuse-30s"]
)
def test_refresh_token_repeated_is_sent_for_an_exchange_within_the_interval(
    app: flask.Flask, http: t.Any, offline_client: OAuthClient
) -> None:
    old, form, auth = refresh_form(http, offline_client)
    with capture(app, signals.refresh_token_repeated) as events:
        assert http.post(TOKEN_URL, data=form, headers=auth).status_code == 200
        assert events == []  # the first exchange is no repeat
        repeat = http.post(TOKEN_URL, data=form, headers=auth)
    assert repeat.status_code == 200

    assert_one_family_event(events, offline_client)
    assert old["refresh_token"] not in repr(events)
    assert repeat.json["refresh_token"] not in repr(events)


# -- request_id and client_ip -------------------------------------------------


def test_request_id_is_a_sane_incoming_x_request_id(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    with capture(app, signals.token_issued) as events:
        token_request(http, oauth_client, headers={"X-Request-ID": "req-42.abc:7_Z"})
    assert events[0]["request_id"] == "req-42.abc:7_Z"


@pytest.mark.parametrize(
    "header", ["", "has spaces in it", "x" * 129, "new\\nline", "<script>", "ünï"]
)
def test_request_id_is_fresh_when_the_header_is_missing_or_insane(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, header: str
) -> None:
    headers = {"X-Request-ID": header} if header else {}
    with capture(app, signals.password_grant_failed) as events:
        token_request(http, oauth_client, "ann", WRONG, headers=headers)
        token_request(http, oauth_client, "ann", WRONG, headers=headers)

    ids = [e["request_id"] for e in events]
    assert all(FRESH_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]


def test_events_from_a_trusted_backend_carry_the_end_user_ip(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    backend = make_client("Backend", trusted_backend=True)
    normal = make_client("Normal")
    header = {"X-End-User-IP": "203.0.113.7"}
    with (
        capture(app, signals.token_issued) as issued,
        capture(app, signals.password_grant_failed) as failed,
    ):
        token_request(http, backend, headers=header, ip="10.0.0.5")
        token_request(http, backend, "ann", WRONG, headers=header, ip="10.0.0.5")
        token_request(http, normal, headers=header, ip="10.0.0.6")

    assert [e["client_ip"] for e in issued] == ["203.0.113.7", "10.0.0.6"]
    assert [e["client_ip"] for e in failed] == ["203.0.113.7"]


def test_events_are_only_sent_to_receivers_of_their_app(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient
) -> None:
    other = flask.Flask("another_app")
    received: list[t.Any] = []

    def receiver(sender: t.Any, **payload: t.Any) -> None:
        received.append(payload)

    signals.token_issued.connect(receiver, sender=other, weak=False)
    try:
        assert token_request(http, oauth_client).status_code == 200
    finally:
        signals.token_issued.disconnect(receiver, sender=other)
    assert received == []


# -- examples/audit_log.py ----------------------------------------------------


def test_audit_log_example_writes_one_json_line_per_event(
    app: flask.Flask, http: t.Any, oauth_client: OAuthClient, tmp_path: Path
) -> None:
    assert oauth_client.secret is not None
    path = tmp_path / "audit.jsonl"
    disconnect = write_audit_events_to(app, str(path))
    try:
        issued = token_request(http, oauth_client, headers={"X-Request-ID": "audit-1"})
        token_request(http, oauth_client, "bob", WRONG, ip="192.0.2.20")
        http.post(  # no client credentials at all
            TOKEN_URL,
            data={"grant_type": "password", "username": "ann", "password": "x"},
        )
        http.post(
            "/oauth/revoke",
            data={"token": issued.json["access_token"]},
            headers=basic_auth(oauth_client.client_id, oauth_client.secret),
        )
    finally:
        disconnect()
    # Disconnected: no more lines.
    token_request(http, oauth_client)

    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == [
        "token_issued",
        "password_grant_failed",
        "client_authentication_failed",
        "token_revoked",
    ]
    for record in records:
        assert {"event", "time", "request_id", "client_ip"} <= set(record)
    assert records[0]["request_id"] == "audit-1"
    assert records[0]["scopes"] == ["api", "profile"]
    assert records[1]["username"] == sha256("bob")
    assert records[1]["client_ip"] == "192.0.2.20"
    assert records[2]["client_id"] is None
    assert records[3]["token_type"] == "access_token"
    text = path.read_text(encoding="utf-8")
    for secret in [
        USERS["ann"][0],
        WRONG,
        oauth_client.secret,
        issued.json["access_token"],
    ]:
        assert secret not in text
