"""No credential ever reaches the logs; migration telemetry for clients.

The hygiene test captures every log record (root logger at DEBUG, so
Authlib's, Werkzeug's and SQLAlchemy's loggers speak too) across a full tour
of the endpoints and checks that no password, client secret, access token or
refresh token used on the way appears in it.
"""

from __future__ import annotations

import json
import logging
import typing as t
from datetime import UTC
from datetime import datetime
from email.utils import format_datetime

import flask
import pytest
import sqlalchemy as sa
import sqlalchemy.exc

from flask_ropc import hashing
from flask_ropc.tokens import IssuedToken

from conftest import USERS
from conftest import Clock
from conftest import OAuthClient
from conftest import basic_auth
from conftest import login
from conftest import ropc_of

TOKEN_URL = "/oauth/token"
OFFLINE = ["password", "refresh_token"]


def refresh(http: t.Any, client: OAuthClient, token: str) -> t.Any:
    assert client.secret is not None
    return http.post(
        TOKEN_URL,
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic_auth(client.client_id, client.secret),
    )


def ropc(app: flask.Flask, *args: str) -> t.Any:
    return app.test_cli_runner().invoke(args=["ropc", *args])


# -- log hygiene --------------------------------------------------------------


def test_no_password_secret_or_token_appears_in_any_log_record_or_repr(
    app: flask.Flask,
    http: t.Any,
    make_client: t.Any,
    validator: t.Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("flask_ropc", "authlib", "werkzeug", "sqlalchemy", app.logger.name):
        caplog.set_level(logging.DEBUG, logger=name)
    ext = ropc_of(app)
    web = make_client("Web")
    mobile = make_client("Mobile", grant_types=OFFLINE)
    assert web.secret is not None and mobile.secret is not None
    wrong_password = "Tr0ub4dor&3-wrong-guess"
    wrong_secret = "this-is-not-the-client-secret-0123"
    crash_password = "Pa55-in-a-crash-message!"
    db_password = "Pa55-in-a-database-error!"
    secrets = [
        USERS["ann"][0],
        USERS["bob"][0],
        wrong_password,
        wrong_secret,
        crash_password,
        db_password,
        web.secret,
        mobile.secret,
    ]
    # The Basic credentials as sent: base64 hides nothing.
    for client_id, secret in [
        (web.client_id, web.secret),
        (web.client_id, wrong_secret),
        (mobile.client_id, mobile.secret),
    ]:
        secrets.append(basic_auth(client_id, secret)["Authorization"].split()[1])

    # A success, a wrong password, a wrong client secret.
    ok = login(http, web)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    web_token = ok.json["access_token"]
    secrets.append(web_token)
    assert login(http, web, "ann", wrong_password).status_code == 400
    assert login(http, OAuthClient(web.client_id, wrong_secret)).status_code == 401

    # A lock.
    for _ in range(5):
        assert login(http, web, "bob", wrong_password).status_code == 400
    assert login(http, web, "bob").status_code == 429

    # A validator that raises with the password in its message, and one
    # whose database query fails with the password among the parameters.
    @ext.password_validator
    def crash(req: t.Any) -> None:
        raise ValueError(f"cannot check {req.username!r} with {req.password!r}")

    assert login(http, web, "ann", crash_password).status_code == 500

    @ext.password_validator
    def database_down(req: t.Any) -> None:
        raise sqlalchemy.exc.OperationalError(
            "SELECT id FROM users WHERE name = ? AND password = ?",
            (req.username, req.password),
            ConnectionRefusedError("could not connect to server"),
        )

    assert login(http, web, "ann", db_password).status_code == 503
    ext.password_validator(validator)

    # Revocation.
    revoked = http.post(
        "/oauth/revoke",
        data={"token": web_token},
        headers=basic_auth(web.client_id, web.secret),
    )
    assert revoked.status_code == 200

    # Offline access: login, refresh, a replayed refresh token.
    first = login(http, mobile, scope="api offline_access")
    assert first.status_code == 200, first.get_data(as_text=True)
    second = refresh(http, mobile, first.json["refresh_token"])
    assert second.status_code == 200, second.get_data(as_text=True)
    for body in (first.json, second.json):
        secrets += [body["access_token"], body["refresh_token"]]

    # Introspection (own tokens, and with a wrong secret), a protected view.
    for token in (second.json["access_token"], second.json["refresh_token"]):
        answer = http.post(
            "/oauth/introspect",
            data={"token": token},
            headers=basic_auth(mobile.client_id, mobile.secret),
        )
        assert answer.json["active"] is True
    assert (
        http.post(
            "/oauth/introspect",
            data={"token": second.json["access_token"]},
            headers=basic_auth(web.client_id, wrong_secret),
        ).status_code
        == 401
    )
    bearer = {"Authorization": f"Bearer {second.json['access_token']}"}
    assert http.get("/api/me", headers=bearer).status_code == 200
    assert (
        http.get(
            "/api/me", headers={"Authorization": f"Bearer {web_token}"}
        ).status_code
        == 401
    )

    # A replayed refresh token (reuse detection revokes the family).
    assert refresh(http, mobile, first.json["refresh_token"]).status_code == 400

    # Our own database failing while a token is being stored.
    with app.app_context():
        engine = ext.engine
        sa.Table("ropc_access_tokens", sa.MetaData(), autoload_with=engine).drop(engine)
    failed = login(http, web)
    assert failed.status_code >= 500
    assert web.secret not in failed.get_data(as_text=True)

    # Everything that was logged, tracebacks included.
    logged = caplog.text + "".join(
        f"{r.getMessage()}{r.exc_text or ''}{r.args!r}" for r in caplog.records
    )
    # The tour did log, including the failures (else this test proves nothing).
    assert "[redacted]" in logged
    assert "unexpected error" in logged
    assert "database unavailable" in logged
    assert "username locked" in logged
    assert "reuse detected" in logged

    # The objects a developer might log themselves.
    reprs = [repr(call) for call in validator.calls]
    assert any("ann" in text for text in reprs)
    with app.app_context():
        for client in (web, mobile):
            stored = ext.clients.require(client.client_id)
            reprs.append(repr(stored))
            assert stored.secret_digest is not None
            assert stored.secret_digest not in reprs[-1]
    for token in (web_token, second.json["access_token"]):
        reprs.append(repr(IssuedToken(value=token, digest=hashing.digest(token))))

    leaks = [s for s in secrets if s in logged]
    assert leaks == [], "credentials in the logs"
    leaks = [s for s in secrets if any(s in text for text in reprs)]
    assert leaks == [], "credentials in a repr()"


# -- migration telemetry --------------------------------------------------------


def _table(output: str) -> list[dict[str, str]]:
    """Parse ``list-clients`` output into rows by the header's column starts."""
    lines = output.rstrip("\n").splitlines()
    header = lines[0]
    names = [
        "CLIENT ID",
        "NAME",
        "TYPE",
        "ENABLED",
        "SCOPES",
        "LOGINS",
        "LAST USED",
        "SUNSET",
    ]
    starts = [header.index(name) for name in names]
    ends = [*starts[1:], None]
    return [
        {
            name: line[start:end].strip()
            for name, start, end in zip(names, starts, ends, strict=True)
        }
        for line in lines[1:]
    ]


def test_list_clients_counts_successful_password_logins_and_last_use(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    busy = make_client("Busy", grant_types=OFFLINE)
    idle = make_client("Idle")
    refresh_token = None
    for _ in range(3):
        response = login(http, busy, scope="api offline_access")
        assert response.status_code == 200, response.get_data(as_text=True)
        refresh_token = response.json["refresh_token"]
    assert login(http, busy, "ann", "wrong password").status_code == 400
    clock.advance(3600)
    assert refresh_token is not None
    assert refresh(http, busy, refresh_token).status_code == 200

    result = ropc(app, "list-clients")

    assert result.exit_code == 0, result.output
    rows = {row["CLIENT ID"]: row for row in _table(result.output)}
    # Refreshes and failures are not password logins; a refresh is a use.
    assert rows[busy.client_id]["LOGINS"] == "3"
    last_used = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    assert rows[busy.client_id]["LAST USED"] == last_used
    assert rows[idle.client_id]["LOGINS"] == "0"
    assert rows[idle.client_id]["LAST USED"] == "never"
    assert rows[idle.client_id]["SUNSET"] == "-"

    listed = json.loads(ropc(app, "list-clients", "--json").output)["clients"]
    data = {c["client_id"]: c for c in listed}
    assert data[busy.client_id]["password_grant_count"] == 3
    assert data[busy.client_id]["last_used_at"] == int(clock())


def test_sunset_makes_token_responses_carry_deprecation_and_sunset_headers(
    app: flask.Flask, http: t.Any, make_client: t.Any, clock: Clock
) -> None:
    clock.freeze()
    legacy = make_client("Legacy", grant_types=OFFLINE)
    other = make_client("Other")

    result = ropc(
        app, "update-client", "--sunset", "2027-06-30", "--", legacy.client_id
    )
    assert result.exit_code == 0, result.output

    sunset = format_datetime(datetime(2027, 6, 30, tzinfo=UTC), usegmt=True)
    assert sunset == "Wed, 30 Jun 2027 00:00:00 GMT"
    response = login(http, legacy, scope="api offline_access")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Deprecation"] == f"@{int(clock())}"
    assert response.headers["Sunset"] == sunset
    refreshed = refresh(http, legacy, response.json["refresh_token"])
    assert refreshed.status_code == 200
    assert refreshed.headers["Sunset"] == sunset
    assert refreshed.headers["Deprecation"] == f"@{int(clock())}"

    untouched = login(http, other)
    assert "Sunset" not in untouched.headers
    assert "Deprecation" not in untouched.headers

    rows = {row["CLIENT ID"]: row for row in _table(ropc(app, "list-clients").output)}
    assert rows[legacy.client_id]["SUNSET"] == "2027-06-30"
    assert rows[other.client_id]["SUNSET"] == "-"


def test_sunset_none_removes_the_headers(
    app: flask.Flask, http: t.Any, make_client: t.Any
) -> None:
    legacy = make_client("Legacy")
    assert (
        ropc(
            app, "update-client", "--sunset", "2027-06-30", "--", legacy.client_id
        ).exit_code
        == 0
    )
    assert "Sunset" in login(http, legacy).headers

    result = ropc(app, "update-client", "--sunset", "none", "--", legacy.client_id)

    assert result.exit_code == 0, result.output
    response = login(http, legacy)
    assert response.status_code == 200
    assert "Sunset" not in response.headers
    assert "Deprecation" not in response.headers
    rows = {row["CLIENT ID"]: row for row in _table(ropc(app, "list-clients").output)}
    assert rows[legacy.client_id]["SUNSET"] == "-"


@pytest.mark.parametrize("value", ["2027-02-30", "30/06/2027", "tomorrow", "2027-6"])
def test_sunset_with_a_bad_date_fails_and_changes_nothing(
    app: flask.Flask, http: t.Any, make_client: t.Any, value: str
) -> None:
    legacy = make_client("Legacy")

    result = ropc(app, "update-client", "--sunset", value, "--", legacy.client_id)

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "--sunset" in result.output
    with app.app_context():
        assert ropc_of(app).clients.require(legacy.client_id).sunset_at is None
    assert "Sunset" not in login(http, legacy).headers
